-- A CDR month is written through `cdrs` only. The month's row count (0021) and the dates
-- of the accounting units billed in it (0026) are kept by statement triggers on `cdrs`,
-- which a statement on a month partition itself does not fire: a bulk load straight into
-- `cdrs_y2026m11` would leave the month without the units it holds, and the month could
-- be dropped with CDRs whose invoice is kept for years yet. So a statement that writes a
-- month partition directly (INSERT, COPY, UPDATE, DELETE, TRUNCATE) is refused, saying
-- why. Statements on `cdrs` that route rows to the month do not fire it; the month drop
-- only detaches, reads and drops the month. cdrs_default is not a month: the drop moves
-- the held rows there, and no drop ever removes it.

CREATE FUNCTION public.lifecycle_refuse_month_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'CDR month partition % is written through cdrs only (% refused): the month''s row count and'
                    ' the dates of the accounting units billed in it are kept by the triggers on cdrs', TG_TABLE_NAME, TG_OP
        USING HINT = 'INSERT INTO cdrs / COPY cdrs: PostgreSQL routes each row to its month.';
END
$$;

CREATE FUNCTION public.lifecycle_guard_cdr_month(p_partition text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER cdrs_month_written_through_cdrs BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE'
                   ' ON public.%I FOR EACH STATEMENT EXECUTE FUNCTION public.lifecycle_refuse_month_write()',
                   p_partition);
END
$$;

SELECT public.lifecycle_guard_cdr_month(c.relname)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'public.cdrs'::regclass AND c.relname ~ '^cdrs_y\d{4}m\d{2}$';

-- New months are created guarded (0015's function, plus the guard).
CREATE OR REPLACE FUNCTION public.lifecycle_ensure_cdr_partitions(p_until date) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    month   date;
    name    text;
    created integer := 0;
BEGIN
    SELECT coalesce(max(to_date(regexp_replace(c.relname, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM'))
                    + interval '1 month', date '2015-01-01')::date
      INTO month
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'public.cdrs'::regclass AND c.relname ~ '^cdrs_y\d{4}m\d{2}$';
    WHILE month <= date_trunc('month', p_until)::date LOOP
        name := to_char(month, '"cdrs_y"YYYY"m"MM');
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.cdrs FOR VALUES FROM (%L) TO (%L)', name,
                       public.lifecycle_month_start(month),
                       public.lifecycle_month_start((month + interval '1 month')::date));
        PERFORM public.lifecycle_guard_cdr_month(name);
        month := (month + interval '1 month')::date;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

REVOKE EXECUTE ON FUNCTION public.lifecycle_guard_cdr_month(text) FROM PUBLIC;
