-- The month drop of 0026, cheaper by what it did twice: the held customers are the holds
-- in force (lifecycle_on_hold written out, as customers.on_hold_sql does: it tested every
-- hold again), and the held rows are read once, moved into cdrs_default by the statement
-- that also finds their units' invoices (0026 scanned the month for them a second time).
CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_month  date;
    cutoff   timestamptz;
    held     bigint[];
    invoices bigint[];
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
    held := ARRAY(SELECT DISTINCT h.customer_id FROM legal_holds h WHERE h.released_on IS NULL);
    EXECUTE format('WITH moved AS (INSERT INTO cdrs_default SELECT p.* FROM %I p WHERE p.customer_id = ANY ($1)'
                   ' RETURNING invoice_id)'
                   ' SELECT count(*), array_agg(DISTINCT invoice_id) FILTER (WHERE invoice_id IS NOT NULL)'
                   ' FROM moved', p_partition)
        INTO kept, invoices USING held;
    -- The month is gone as a month: the kept units no longer name it (the other units
    -- billed in it are all due and go with their invoices); as an array, so that the
    -- primary key finds the rows.
    IF invoices IS NOT NULL THEN
        DELETE FROM accounting_unit_months m WHERE m.month = v_month AND m.invoice_id = ANY (invoices);
    END IF;
    EXECUTE format('DROP TABLE %I', p_partition);
    -- What is left of the month is in cdrs_default, which no drop removes.
    DELETE FROM cdr_month_counts c WHERE c.month = v_month;
    DELETE FROM cdr_month_units u WHERE u.month = v_month;
END
$$;
