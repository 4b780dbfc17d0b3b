-- Append-only, hash-chained record of every lifecycle action. It holds no
-- personal data: the internal customer id, table names, counts and run ids only.
-- The chain is computed here, in the database, so that no writer can get it wrong:
-- a BEFORE INSERT trigger serialises writers with a transaction advisory lock,
-- numbers the row in chain order and hashes it together with its predecessor.

CREATE TABLE lifecycle_audit (
    audit_id     bigint PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    action       text NOT NULL,
    rule         text,
    customer_id  bigint,
    table_name   text,
    row_count    bigint NOT NULL DEFAULT 0,
    as_of        date,
    dry_run      boolean NOT NULL DEFAULT false,
    dag_id       text,
    run_id       text,
    task_id      text,
    try_number   integer,
    details      jsonb NOT NULL DEFAULT '{}',
    prev_hash    text NOT NULL,
    row_hash     text NOT NULL
);
CREATE SEQUENCE lifecycle_audit_id_seq OWNED BY lifecycle_audit.audit_id;
CREATE INDEX lifecycle_audit_recorded_at_idx ON lifecycle_audit (recorded_at);
CREATE INDEX lifecycle_audit_customer_id_idx ON lifecycle_audit (customer_id);
CREATE INDEX lifecycle_audit_run_idx ON lifecycle_audit (dag_id, run_id);

-- The canonical text a row's hash covers. Verification recomputes it from the row.
CREATE FUNCTION lifecycle_audit_hash(a lifecycle_audit) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|',
        a.audit_id, to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        a.action, coalesce(a.rule, ''), coalesce(a.customer_id::text, ''),
        coalesce(a.table_name, ''), a.row_count, coalesce(a.as_of::text, ''), a.dry_run,
        coalesce(a.dag_id, ''), coalesce(a.run_id, ''), coalesce(a.task_id, ''),
        coalesce(a.try_number::text, ''), a.details::text, a.prev_hash), 'UTF8')), 'hex')
$$;

CREATE FUNCTION lifecycle_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One writer at a time extends the chain; the lock is held until commit.
    PERFORM pg_advisory_xact_lock(hashtext('lifecycle_audit_chain'));
    NEW.audit_id := nextval('lifecycle_audit_id_seq');
    NEW.recorded_at := clock_timestamp();
    NEW.prev_hash := coalesce(
        (SELECT row_hash FROM lifecycle_audit ORDER BY audit_id DESC LIMIT 1),
        repeat('0', 64));
    NEW.row_hash := lifecycle_audit_hash(NEW);
    RETURN NEW;
END
$$;
CREATE TRIGGER lifecycle_audit_chain BEFORE INSERT ON lifecycle_audit
    FOR EACH ROW EXECUTE FUNCTION lifecycle_audit_chain();

CREATE FUNCTION lifecycle_audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lifecycle_audit is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER lifecycle_audit_no_update_delete BEFORE UPDATE OR DELETE ON lifecycle_audit
    FOR EACH ROW EXECUTE FUNCTION lifecycle_audit_reject_change();
CREATE TRIGGER lifecycle_audit_no_truncate BEFORE TRUNCATE ON lifecycle_audit
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_audit_reject_change();

-- Rows whose stored hash or link to the predecessor does not match: empty when intact.
CREATE VIEW lifecycle_audit_chain_breaks AS
SELECT audit_id,
       CASE WHEN bad_hash THEN 'row content does not match its hash'
            ELSE 'previous hash does not match the preceding row' END AS problem
FROM (SELECT l.audit_id,
             l.row_hash <> lifecycle_audit_hash(l) AS bad_hash,
             l.prev_hash <> lag(l.row_hash, 1, repeat('0', 64)) OVER (ORDER BY l.audit_id) AS bad_link
      FROM lifecycle_audit l) checked
WHERE bad_hash OR bad_link;
