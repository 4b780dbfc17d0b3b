-- The drop of a wholly expired CDR month must cost the same whatever the month holds:
-- 0004 tested every row of the month with lifecycle_on_hold(); the held rows are now
-- found from the holds in force (few) through the (customer_id, started_at) index.
-- The row count for the audit row stays exact. CREATE OR REPLACE keeps the owner and
-- the grants of 0007 but not its attributes, so they are restated here.

CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_partition !~ '^cdrs_y\d{4}m\d{2}$' OR NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdrs'::regclass AND c.relname = p_partition) THEN
        RAISE EXCEPTION '% is not a month partition of cdrs', p_partition;
    END IF;
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    EXECUTE format('INSERT INTO cdrs SELECT p.* FROM %I p WHERE p.customer_id IN'
                   ' (SELECT h.customer_id FROM legal_holds h WHERE lifecycle_on_hold(h.customer_id))', p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
END
$$;
