-- A CDR month's drop at the cost of the drop itself (migrations 0004, 0008 read the whole
-- month at drop time: an exact count(*) and a scan for the held customers' rows).
--
-- 1. The exact row count per month is maintained as the rows change: statement-level
--    triggers on `cdrs` add and subtract each statement's rows per month (one aggregate
--    over the statement's transition table, not a step per row), so the drop reads its
--    count instead of counting. Changes through `cdrs` are the only ones the application
--    can make (lifecycle_app has no privilege on the partitions); a TRUNCATE forgets the
--    counts and a month without a count is counted at its drop, as before.
-- 2. The held customers' rows are fetched through the month's (customer_id, started_at)
--    index for the customers under a hold in force (few), not by reading the month.

CREATE TABLE cdr_month_counts (
    month     date PRIMARY KEY CHECK (month = date_trunc('month', month)),
    row_count bigint NOT NULL CHECK (row_count >= 0)
);

-- The month (Copenhagen, as the partitions' bounds) a CDR belongs to.
CREATE FUNCTION lifecycle_cdr_month(p_started_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('month', p_started_at AT TIME ZONE 'Europe/Copenhagen')::date
$$;

CREATE FUNCTION lifecycle_count_cdr_months() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cdr_month_counts;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE cdr_month_counts c SET row_count = c.row_count - o.n
        FROM (SELECT lifecycle_cdr_month(started_at) AS month, count(*) AS n FROM old_rows GROUP BY 1) o
        WHERE c.month = o.month;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO cdr_month_counts AS c (month, row_count)
        SELECT lifecycle_cdr_month(started_at), count(*) FROM new_rows GROUP BY 1
        ON CONFLICT (month) DO UPDATE SET row_count = c.row_count + excluded.row_count;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cdrs_count_insert AFTER INSERT ON cdrs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_count_cdr_months();
CREATE TRIGGER cdrs_count_delete AFTER DELETE ON cdrs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_count_cdr_months();
CREATE TRIGGER cdrs_count_update AFTER UPDATE ON cdrs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_count_cdr_months();
CREATE TRIGGER cdrs_count_truncate AFTER TRUNCATE ON cdrs
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_count_cdr_months();

-- The rows already there, counted once (no change can come between: the lock is held
-- until this migration commits).
LOCK TABLE cdrs IN SHARE MODE;
INSERT INTO cdr_month_counts (month, row_count)
SELECT lifecycle_cdr_month(started_at), count(*) FROM cdrs GROUP BY 1;

CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_month date;
BEGIN
    IF p_partition !~ '^cdrs_y\d{4}m\d{2}$' OR NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdrs'::regclass AND c.relname = p_partition) THEN
        RAISE EXCEPTION '% is not a month partition of cdrs', p_partition;
    END IF;
    v_month := to_date(regexp_replace(p_partition, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM');
    -- Detached, the month takes no more rows: its count is final.
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    SELECT row_count INTO total FROM cdr_month_counts WHERE month = v_month FOR UPDATE;
    IF total IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    END IF;
    -- Held rows, through the month's index, back into cdrs (now its default partition).
    EXECUTE format('INSERT INTO cdrs SELECT p.* FROM %I p WHERE p.customer_id = ANY (ARRAY('
                   'SELECT DISTINCT h.customer_id FROM legal_holds h'
                   ' WHERE h.released_on IS NULL AND lifecycle_on_hold(h.customer_id)))',
                   p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
    -- The kept rows were counted again by the insert; what is left of the month is in
    -- cdrs_default, which no drop removes.
    DELETE FROM cdr_month_counts WHERE month = v_month;
END
$$;

REVOKE ALL ON cdr_month_counts FROM PUBLIC;
GRANT SELECT ON cdr_month_counts TO lifecycle_app;
REVOKE EXECUTE ON FUNCTION lifecycle_count_cdr_months() FROM PUBLIC;
