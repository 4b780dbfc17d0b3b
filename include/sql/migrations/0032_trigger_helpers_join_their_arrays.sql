-- Two helpers of the statement triggers take what a statement touched as an array (the
-- accounting units whose dates it raised, migration 0026; the customers whose CDRs may
-- have to move aside for a hold, migration 0030) and found their rows by `= ANY (array)`.
-- In a SQL function the array is a parameter the planner cannot see, and it planned a
-- scan of the whole table comparing each row with every element: fine for the few of a
-- day's statement, quadratic for a bulk load (the demo seed of 1M customers and 50M CDRs
-- had not finished after 85 minutes, in lifecycle_carry_units). Joined with the array's
-- elements instead: a probe of the primary key or the customer index per element,
-- however many there are. Same rows, same result.

CREATE OR REPLACE FUNCTION public.lifecycle_carry_units(p_units bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO public.cdr_month_units AS m (month, latest_cdrs, latest_payments, latest_invoices, latest_fiscal_year)
    SELECT um.month, max(u.latest_cdrs), max(u.latest_payments), max(u.latest_invoices), max(u.latest_fiscal_year)
    FROM unnest(p_units) k(invoice_id)
    JOIN public.accounting_unit_months um ON um.invoice_id = k.invoice_id
    JOIN public.accounting_units u ON u.invoice_id = k.invoice_id
    GROUP BY um.month
    ON CONFLICT (month) DO UPDATE SET
        latest_cdrs = greatest(m.latest_cdrs, excluded.latest_cdrs),
        latest_payments = greatest(m.latest_payments, excluded.latest_payments),
        latest_invoices = greatest(m.latest_invoices, excluded.latest_invoices),
        latest_fiscal_year = greatest(m.latest_fiscal_year, excluded.latest_fiscal_year)
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_set_cdrs_aside(p_customers bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE public.cdrs r SET held = NOT r.held
    FROM (SELECT DISTINCT c FROM unnest(p_customers) c) k(customer_id)
    WHERE r.customer_id = k.customer_id
      AND r.held <> EXISTS (SELECT 1 FROM public.legal_holds h
                            WHERE h.customer_id = r.customer_id AND h.released_on IS NULL)
$$;
