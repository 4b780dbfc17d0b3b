-- Accounting units at the cost of one lookup. A unit (an invoice, its payments, the CDRs
-- billed on it) is kept until its latest member is due (rules/retention.py,
-- Scope.unit_open). Asking cdrs for a unit's latest CDR goes through cdrs_invoice_id_idx
-- in every month partition after the cutoff (cdrs is partitioned by started_at): about 66
-- index probes per invoice at 10M CDRs, for every due row, and a month's drop asked it for
-- every invoice billed in the month (2.7 s for the largest month).
--
-- So each unit's latest dates are kept as its rows arrive or change, by statement-level
-- triggers over each statement's transition table (as cdr_month_counts, 0021):
--   accounting_units        per invoice: the latest date of each member table, named
--                           `latest_<table>` (and `latest_<fiscal-year label>`) after the
--                           policy's unit members (policy.DataItem.columns_used checks them);
--   accounting_unit_months  the CDR months that hold CDRs billed on each invoice;
--   cdr_month_units         per CDR month, the latest dates of the units billed in it: the
--                           month may be dropped when they are due (one row, not the month).
-- The dates only grow: a member deleted or moved to an earlier date on its own leaves them
-- as they were, so a unit is kept at most as long as that row would have kept it (later,
-- never earlier). A unit's rows leave with its invoice; a month's with the month's drop.
-- As for cdr_month_counts, only changes through the parent tables are seen (lifecycle_app
-- has no privilege on the partitions).

CREATE TABLE accounting_units (
    invoice_id         bigint PRIMARY KEY,
    latest_cdrs        timestamptz,
    latest_payments    date,
    latest_invoices    date,
    latest_fiscal_year integer
);

CREATE TABLE accounting_unit_months (
    invoice_id bigint NOT NULL,
    month      date NOT NULL,
    PRIMARY KEY (invoice_id, month)
);

CREATE TABLE cdr_month_units (
    month              date PRIMARY KEY CHECK (month = date_trunc('month', month)),
    latest_cdrs        timestamptz,
    latest_payments    date,
    latest_invoices    date,
    latest_fiscal_year integer
);

-- The units' latest dates carried to every CDR month billed on them.
CREATE FUNCTION lifecycle_carry_units(p_units bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO public.cdr_month_units AS m (month, latest_cdrs, latest_payments, latest_invoices, latest_fiscal_year)
    SELECT um.month, max(u.latest_cdrs), max(u.latest_payments), max(u.latest_invoices), max(u.latest_fiscal_year)
    FROM public.accounting_unit_months um JOIN public.accounting_units u USING (invoice_id)
    WHERE um.invoice_id = ANY (p_units)
    GROUP BY um.month
    ON CONFLICT (month) DO UPDATE SET
        latest_cdrs = greatest(m.latest_cdrs, excluded.latest_cdrs),
        latest_payments = greatest(m.latest_payments, excluded.latest_payments),
        latest_invoices = greatest(m.latest_invoices, excluded.latest_invoices),
        latest_fiscal_year = greatest(m.latest_fiscal_year, excluded.latest_fiscal_year)
$$;

CREATE FUNCTION lifecycle_unit_cdrs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    units bigint[];
BEGIN
    INSERT INTO public.accounting_unit_months (invoice_id, month)
    SELECT DISTINCT invoice_id, public.lifecycle_cdr_month(started_at) FROM new_rows WHERE invoice_id IS NOT NULL
    ON CONFLICT DO NOTHING;
    WITH raised AS (
        INSERT INTO public.accounting_units AS u (invoice_id, latest_cdrs)
        SELECT invoice_id, max(started_at) FROM new_rows WHERE invoice_id IS NOT NULL GROUP BY invoice_id
        ON CONFLICT (invoice_id) DO UPDATE SET latest_cdrs = greatest(u.latest_cdrs, excluded.latest_cdrs)
        RETURNING u.invoice_id)
    SELECT array_agg(invoice_id) INTO units FROM raised;
    IF units IS NOT NULL THEN
        PERFORM public.lifecycle_carry_units(units);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION lifecycle_unit_payments() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    units bigint[];
BEGIN
    WITH raised AS (
        INSERT INTO public.accounting_units AS u (invoice_id, latest_payments)
        SELECT invoice_id, max(paid_on) FROM new_rows GROUP BY invoice_id
        ON CONFLICT (invoice_id) DO UPDATE SET latest_payments = greatest(u.latest_payments, excluded.latest_payments)
        RETURNING u.invoice_id)
    SELECT array_agg(invoice_id) INTO units FROM raised;
    IF units IS NOT NULL THEN
        PERFORM public.lifecycle_carry_units(units);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION lifecycle_unit_invoices() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
        SELECT invoice_id, issued_on, fiscal_year FROM new_rows
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

CREATE TRIGGER cdrs_unit_insert AFTER INSERT ON cdrs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_cdrs();
CREATE TRIGGER cdrs_unit_update AFTER UPDATE ON cdrs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_cdrs();
CREATE TRIGGER payments_unit_insert AFTER INSERT ON payments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_payments();
CREATE TRIGGER payments_unit_update AFTER UPDATE ON payments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_payments();
CREATE TRIGGER invoices_unit_insert AFTER INSERT ON invoices REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_invoices();
CREATE TRIGGER invoices_unit_update AFTER UPDATE ON invoices REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_invoices();
CREATE TRIGGER invoices_unit_delete AFTER DELETE ON invoices REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_unit_invoices();

-- The rows already there, once (no change can come between: the locks are held until this
-- migration commits).
LOCK TABLE invoices, payments, cdrs IN SHARE MODE;
INSERT INTO accounting_units (invoice_id, latest_invoices, latest_fiscal_year)
SELECT invoice_id, issued_on, fiscal_year FROM invoices;
INSERT INTO accounting_units AS u (invoice_id, latest_payments)
SELECT invoice_id, max(paid_on) FROM payments GROUP BY invoice_id
ON CONFLICT (invoice_id) DO UPDATE SET latest_payments = excluded.latest_payments;
INSERT INTO accounting_units AS u (invoice_id, latest_cdrs)
SELECT invoice_id, max(started_at) FROM cdrs WHERE invoice_id IS NOT NULL GROUP BY invoice_id
ON CONFLICT (invoice_id) DO UPDATE SET latest_cdrs = excluded.latest_cdrs;
INSERT INTO accounting_unit_months (invoice_id, month)
SELECT DISTINCT invoice_id, lifecycle_cdr_month(started_at) FROM cdrs WHERE invoice_id IS NOT NULL;
INSERT INTO cdr_month_units (month, latest_cdrs, latest_payments, latest_invoices, latest_fiscal_year)
SELECT um.month, max(u.latest_cdrs), max(u.latest_payments), max(u.latest_invoices), max(u.latest_fiscal_year)
FROM accounting_unit_months um JOIN accounting_units u USING (invoice_id)
GROUP BY um.month;

-- The drop of 0022, which now also forgets the month in the units' dates; the held rows
-- go straight into cdrs_default.
CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_month date;
    cutoff  timestamptz;
    held    bigint[];
BEGIN
    IF p_partition !~ '^cdrs_y\d{4}m\d{2}$' OR NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdrs'::regclass AND c.relname = p_partition) THEN
        RAISE EXCEPTION '% is not a month partition of cdrs', p_partition;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'lifecycle_drop_cdr_partition needs READ COMMITTED, not %: it re-reads the legal holds'
                        ' after taking their lock', current_setting('transaction_isolation');
    END IF;
    v_month := to_date(substr(p_partition, 7, 4) || substr(p_partition, 12, 2), 'YYYYMM');
    cutoff := lifecycle_cdr_cutoff_today();
    IF lifecycle_month_start((v_month + interval '1 month')::date) > cutoff THEN
        RAISE EXCEPTION 'CDR month % is not wholly past its accounting deadline as of today (only CDRs before %'
                        ' are due); nothing was dropped', to_char(v_month, 'YYYY-MM'),
                        (cutoff AT TIME ZONE 'Europe/Copenhagen')::date;
    END IF;
    PERFORM pg_advisory_xact_lock(lifecycle_holds_lock_key());  -- waits for holds being placed
    -- Detached, the month takes no more rows: its maintained count is final.
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    SELECT row_count INTO total FROM cdr_month_counts c WHERE c.month = v_month FOR UPDATE;
    IF total IS NULL THEN  -- no count kept (after a TRUNCATE): counted now
        EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    END IF;
    -- Held rows, through the month's index, into cdrs_default (the month is detached, so
    -- they belong there), straight into the partition: the same rows, so the units' dates
    -- stand, and the month's count and units rows are forgotten below.
    held := ARRAY(SELECT DISTINCT h.customer_id FROM legal_holds h
                  WHERE h.released_on IS NULL AND lifecycle_on_hold(h.customer_id));
    EXECUTE format('INSERT INTO cdrs_default SELECT p.* FROM %I p WHERE p.customer_id = ANY ($1)', p_partition)
        USING held;
    GET DIAGNOSTICS kept = ROW_COUNT;
    -- The month is gone as a month: the kept units no longer name it (the other units
    -- billed in it are all due and go with their invoices).
    IF kept > 0 THEN
        -- (as an array, so that the primary key finds the rows)
        EXECUTE format('DELETE FROM accounting_unit_months m WHERE m.month = $1 AND m.invoice_id = ANY (ARRAY('
                       'SELECT DISTINCT p.invoice_id FROM %I p WHERE p.customer_id = ANY ($2)'
                       ' AND p.invoice_id IS NOT NULL))', p_partition)
            USING v_month, held;
    END IF;
    EXECUTE format('DROP TABLE %I', p_partition);
    -- What is left of the month is in cdrs_default, which no drop removes.
    DELETE FROM cdr_month_counts c WHERE c.month = v_month;
    DELETE FROM cdr_month_units u WHERE u.month = v_month;
END
$$;

REVOKE ALL ON accounting_units, accounting_unit_months, cdr_month_units FROM PUBLIC;
GRANT SELECT ON accounting_units, accounting_unit_months, cdr_month_units TO lifecycle_app;
REVOKE EXECUTE ON FUNCTION lifecycle_carry_units(bigint[]), lifecycle_unit_cdrs(), lifecycle_unit_payments(),
    lifecycle_unit_invoices() FROM PUBLIC;
