-- Monthly CDR partitions on Copenhagen month boundaries, named cdrs_yYYYYmMM.
-- lifecycle_ensure_cdr_partitions(until) only ever extends the range forward from
-- the newest partition (or from 2015-01 on a new database), so a month that the
-- accounting purge dropped is never re-created.

CREATE FUNCTION lifecycle_month_start(p_month date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('month', p_month)::timestamp AT TIME ZONE 'Europe/Copenhagen'
$$;

CREATE FUNCTION lifecycle_ensure_cdr_partitions(p_until date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month   date;
    created integer := 0;
BEGIN
    SELECT coalesce(max(to_date(regexp_replace(c.relname, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM'))
                    + interval '1 month', date '2015-01-01')::date
      INTO month
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'cdrs'::regclass AND c.relname ~ '^cdrs_y\d{4}m\d{2}$';
    WHILE month <= date_trunc('month', p_until)::date LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF cdrs FOR VALUES FROM (%L) TO (%L)',
                       to_char(month, '"cdrs_y"YYYY"m"MM'),
                       lifecycle_month_start(month),
                       lifecycle_month_start((month + interval '1 month')::date));
        month := (month + interval '1 month')::date;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- The migration runner calls lifecycle_ensure_cdr_partitions(current_date + 2 years)
-- after the last migration, so every fresh database accepts 2015-01 .. today + 2 years.
