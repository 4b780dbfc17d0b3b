-- One lifecycle_drop_cdr_partition with both 0012 (the drop and hold placements
-- serialise; a month not wholly past its deadline as of the database's today is refused)
-- and 0021 (the month's count read from cdr_month_counts, its held rows fetched through
-- the month's index): each of them replaced the function on its own, and whichever ran
-- last would have undone the other.

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
    -- Held rows, through the month's index, back into cdrs (now its default partition).
    EXECUTE format('INSERT INTO cdrs SELECT p.* FROM %I p WHERE p.customer_id = ANY (ARRAY('
                   'SELECT DISTINCT h.customer_id FROM legal_holds h'
                   ' WHERE h.released_on IS NULL AND lifecycle_on_hold(h.customer_id)))', p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
    -- The kept rows were counted again by their insert; what is left of the month is in
    -- cdrs_default, which no drop removes.
    DELETE FROM cdr_month_counts c WHERE c.month = v_month;
END
$$;
