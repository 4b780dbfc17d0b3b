-- Accounting retention removes a wholly expired CDR month by dropping its partition,
-- not by DELETE. The rows of customers under a legal hold in force survive: the
-- month is detached, its held rows are copied back into `cdrs` (with no partition
-- for their month any more they land in cdrs_default) and the month is dropped.
-- Returns the month's row count and how many rows were kept for a hold.
-- The caller runs it in one transaction together with the audit row.

CREATE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_partition !~ '^cdrs_y\d{4}m\d{2}$' OR NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdrs'::regclass AND c.relname = p_partition) THEN
        RAISE EXCEPTION '% is not a month partition of cdrs', p_partition;
    END IF;
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    EXECUTE format('INSERT INTO cdrs SELECT * FROM %I WHERE lifecycle_on_hold(customer_id)', p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
END
$$;
