-- A CDR month drop and a legal-hold placement cannot interleave, and the drop itself
-- refuses a month that is not wholly past its accounting deadline (defence in depth:
-- whatever date the caller believes it is, the database's own today decides).
--
-- The lock: every statement that inserts or updates legal_holds takes the shared
-- advisory lock LIFECYCLE_HOLDS_LOCK (a statement trigger, so holds placed by any
-- system take it); the drop takes it exclusively before it detaches the month, so it
-- waits for a placement in flight to commit, and then re-reads the holds in force (in
-- READ COMMITTED each statement sees what was committed before it started).
--
-- The deadline: lifecycle_policy_settings holds the policy's fiscal-year end and the
-- accounting period (written by `lifecycle migrate` from the policy file).

CREATE TABLE lifecycle_policy_settings (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fiscal_year_end         text NOT NULL CHECK (fiscal_year_end ~ '^\d{2}-\d{2}$'),
    accounting_period_years integer NOT NULL CHECK (accounting_period_years BETWEEN 0 AND 30)
);

CREATE FUNCTION lifecycle_holds_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('lifecycle_legal_holds')::bigint $$;

CREATE FUNCTION lifecycle_hold_change_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(lifecycle_holds_lock_key());
    RETURN NULL;
END
$$;

CREATE TRIGGER legal_holds_serialise_with_drops
    BEFORE INSERT OR UPDATE ON legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_hold_change_lock();

-- The first instant whose CDRs are not yet due as of today (Copenhagen): the day after
-- the end of the latest fiscal year past fiscal-year end + the accounting period.
CREATE FUNCTION lifecycle_cdr_cutoff_today() RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    s        lifecycle_policy_settings;
    today    date := (now() AT TIME ZONE 'Europe/Copenhagen')::date;
    fy_month integer;
    fy_day   integer;
    year     integer;
BEGIN
    SELECT * INTO s FROM lifecycle_policy_settings;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lifecycle_policy_settings is empty: run lifecycle migrate';
    END IF;
    fy_month := split_part(s.fiscal_year_end, '-', 1)::integer;
    fy_day := split_part(s.fiscal_year_end, '-', 2)::integer;
    year := extract(year FROM today)::integer - s.accounting_period_years + 1;
    WHILE (make_date(year, fy_month, fy_day) + make_interval(years => s.accounting_period_years))::date + 1 > today LOOP
        year := year - 1;
    END LOOP;
    RETURN (make_date(year, fy_month, fy_day) + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen';
END
$$;

CREATE OR REPLACE FUNCTION lifecycle_drop_cdr_partition(p_partition text, OUT total bigint, OUT kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month  date;
    cutoff timestamptz;
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
    month := to_date(substr(p_partition, 7, 4) || substr(p_partition, 12, 2), 'YYYYMM');
    cutoff := lifecycle_cdr_cutoff_today();
    IF lifecycle_month_start((month + interval '1 month')::date) > cutoff THEN
        RAISE EXCEPTION 'CDR month % is not wholly past its accounting deadline as of today (only CDRs before %'
                        ' are due); nothing was dropped', to_char(month, 'YYYY-MM'),
                        (cutoff AT TIME ZONE 'Europe/Copenhagen')::date;
    END IF;
    PERFORM pg_advisory_xact_lock(lifecycle_holds_lock_key());  -- waits for holds being placed
    EXECUTE format('ALTER TABLE cdrs DETACH PARTITION %I', p_partition);
    EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO total;
    EXECUTE format('INSERT INTO cdrs SELECT p.* FROM %I p WHERE p.customer_id IN'
                   ' (SELECT h.customer_id FROM legal_holds h WHERE lifecycle_on_hold(h.customer_id))', p_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    EXECUTE format('DROP TABLE %I', p_partition);
END
$$;
