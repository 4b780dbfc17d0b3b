-- 0021 rewrote lifecycle_drop_cdr_partition for speed; this restores the guards of 0012 on
-- top of it, so the database itself still refuses a month not wholly past its accounting
-- deadline as of its own today, and the drop still waits for a hold being placed (the
-- exclusive holds lock before the detach) and then re-reads the holds in force.

CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_month date;
    cutoff  timestamptz;
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
    v_month := to_date(regexp_replace(p_partition, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM');
    cutoff := lifecycle_cdr_cutoff_today();
    IF lifecycle_month_start((v_month + interval '1 month')::date) > cutoff THEN
        RAISE EXCEPTION 'CDR month % is not wholly past its accounting deadline as of today (only CDRs before %'
                        ' are due); nothing was dropped', to_char(v_month, 'YYYY-MM'),
                        (cutoff AT TIME ZONE 'Europe/Copenhagen')::date;
    END IF;
    PERFORM pg_advisory_xact_lock(lifecycle_holds_lock_key());  -- waits for holds being placed
    -- Detached, the month takes no more rows: its count is final.
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    SELECT row_count INTO total FROM cdr_month_counts WHERE month = v_month FOR UPDATE;
    IF total IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    END IF;
    -- Held rows, through the month's index, back into cdrs (now its default partition);
    -- a new statement, so it sees every hold committed before the lock was granted.
    EXECUTE format('INSERT INTO cdrs SELECT p.* FROM %I p WHERE p.customer_id = ANY (ARRAY('
                   'SELECT DISTINCT h.customer_id FROM legal_holds h'
                   ' WHERE h.released_on IS NULL AND lifecycle_on_hold(h.customer_id)))',
                   p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
    DELETE FROM cdr_month_counts WHERE month = v_month;
END
$$;
