-- Statements that write many rows at once (a bulk load; the demo seed of 1M customers
-- and 50M CDRs did not finish in 85 minutes) met two costs in the statement triggers.
--
-- 1. Two helpers of the statement triggers take what a statement touched as an array (the
-- accounting units whose dates it raised, migration 0026; the customers whose CDRs may
-- have to move aside for a hold, migration 0030) and found their rows by `= ANY (array)`.
-- In a SQL function the array is a parameter the planner cannot see, and it planned a
-- scan of the whole table comparing each row with every element: fine for the few of a
-- day's statement, quadratic for a bulk load (where the seed stood). Joined with the array's
-- elements instead: a probe of the primary key or the customer index per element,
-- however many there are. Same rows, same result.
-- 2. The unit triggers upsert the units and unit months a statement touched in the
-- order a hash aggregate gives them: a random walk over their primary keys, which for
-- millions of units outgrow the buffer cache (a read and a write per row). In key order
-- instead: the index is walked once. Same rows, same result.

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

CREATE OR REPLACE FUNCTION public.lifecycle_unit_cdrs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    units bigint[];
BEGIN
    INSERT INTO public.accounting_unit_months (invoice_id, month)
    SELECT DISTINCT invoice_id, public.lifecycle_cdr_month(started_at) FROM new_rows WHERE invoice_id IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    WITH raised AS (
        INSERT INTO public.accounting_units AS u (invoice_id, latest_cdrs)
        SELECT invoice_id, max(started_at) FROM new_rows WHERE invoice_id IS NOT NULL GROUP BY invoice_id
        ORDER BY invoice_id
        ON CONFLICT (invoice_id) DO UPDATE SET latest_cdrs = greatest(u.latest_cdrs, excluded.latest_cdrs)
        RETURNING u.invoice_id)
    SELECT array_agg(invoice_id) INTO units FROM raised;
    IF units IS NOT NULL THEN
        PERFORM public.lifecycle_carry_units(units);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_unit_payments() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    units bigint[];
BEGIN
    WITH raised AS (
        INSERT INTO public.accounting_units AS u (invoice_id, latest_payments)
        SELECT invoice_id, max(paid_on) FROM new_rows GROUP BY invoice_id ORDER BY invoice_id
        ON CONFLICT (invoice_id) DO UPDATE SET latest_payments = greatest(u.latest_payments, excluded.latest_payments)
        RETURNING u.invoice_id)
    SELECT array_agg(invoice_id) INTO units FROM raised;
    IF units IS NOT NULL THEN
        PERFORM public.lifecycle_carry_units(units);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_unit_invoices() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    units bigint[];
BEGIN
    IF TG_OP = 'DELETE' THEN  -- the unit is gone (a purge deletes a unit's rows together)
        -- As an array, so that the primary keys find the rows (the planner hashes whole
        -- tables for a join with a transition table).
        units := ARRAY(SELECT invoice_id FROM old_rows);
        DELETE FROM public.accounting_unit_months m WHERE m.invoice_id = ANY (units);
        DELETE FROM public.accounting_units u WHERE u.invoice_id = ANY (units);
        RETURN NULL;
    END IF;
    WITH raised AS (
        INSERT INTO public.accounting_units AS u (invoice_id, latest_invoices, latest_fiscal_year)
        SELECT invoice_id, issued_on, fiscal_year FROM new_rows ORDER BY invoice_id
        ON CONFLICT (invoice_id) DO UPDATE SET
            latest_invoices = greatest(u.latest_invoices, excluded.latest_invoices),
            latest_fiscal_year = greatest(u.latest_fiscal_year, excluded.latest_fiscal_year)
        RETURNING u.invoice_id)
    SELECT array_agg(invoice_id) INTO units FROM raised;
    IF units IS NOT NULL THEN
        PERFORM public.lifecycle_carry_units(units);
    END IF;
    RETURN NULL;
END
$$;
