-- Audit trail v3: what a statement's records share is stored, and hashed, once.
--
-- Until now every record carried every field (action, rule, table, as_of, dry run, the
-- run's ids, details) on a wide row with five indexes, and hashed them all: a purge paid
-- about 30 us a record, most of its distance to the database's own speed. From here a
-- statement's records share their chain link, which also holds the fields they share (the
-- statement) and the hash of the statement's canonical text; a record
-- (lifecycle_audit_record) holds only its own: its id, customer, row count, its rows per
-- table (in the order of the link's `tables`: a purge's), its own details and its hash,
-- whose text commits to the statement's hash (evidence/audit.py renders both texts with
-- built-ins only, and `lifecycle audit verify` recomputes them from the columns). The
-- link's hash commits to the statement's hash, the Merkle root of its records and the
-- link before it.
--
-- `lifecycle_audit` becomes a view giving every record with every field, as before: the
-- records written until now (hash versions 1 and 2, every field on the row, kept in
-- lifecycle_audit_before_v3 and never written again) and the version-3 records with their
-- link's fields. Readers are unchanged; it refuses changes as the tables do.

ALTER TABLE public.lifecycle_audit RENAME TO lifecycle_audit_before_v3;
REVOKE INSERT ON public.lifecycle_audit_before_v3 FROM lifecycle_app;

ALTER TABLE public.lifecycle_audit_link
    ADD COLUMN statement_hash text,  -- NULL: a link of records written before this migration
    ADD COLUMN action text,
    ADD COLUMN rule text,
    ADD COLUMN table_name text,
    ADD COLUMN tables text[],        -- a purge's tables, the order of its records' counts
    ADD COLUMN as_of date,
    ADD COLUMN dry_run boolean,
    ADD COLUMN dag_id text,
    ADD COLUMN run_id text,
    ADD COLUMN task_id text,
    ADD COLUMN try_number integer,
    ADD COLUMN details jsonb;
CREATE INDEX lifecycle_audit_link_run_idx ON public.lifecycle_audit_link (dag_id, run_id);
CREATE INDEX lifecycle_audit_link_sealed_at_idx ON public.lifecycle_audit_link (sealed_at);
CREATE INDEX lifecycle_audit_link_year_ends_idx ON public.lifecycle_audit_link (rule, seq)
    WHERE details ? 'fiscal_year_ends';
-- Restore detection looks up the re-application of a ledger entry (one statement each,
-- rules/restore.py) by the entry's hash, as migration 0018 did on the records.
CREATE INDEX lifecycle_audit_link_reapplied_idx ON public.lifecycle_audit_link ((details->>'ledger_row_hash'))
    WHERE action = 'reapplied_after_restore';

CREATE TABLE public.lifecycle_audit_record (
    audit_id    bigint PRIMARY KEY,
    link_id     bigint NOT NULL,
    customer_id bigint,
    row_count   bigint NOT NULL,
    counts      bigint[],            -- rows per table of the link's `tables` (a purge's record)
    details     jsonb,               -- the record's own, added to the link's
    row_hash    text NOT NULL
);
CREATE INDEX lifecycle_audit_record_customer_idx ON public.lifecycle_audit_record (customer_id);
ALTER SEQUENCE public.lifecycle_audit_id_seq OWNED BY public.lifecycle_audit_record.audit_id;
CREATE TRIGGER lifecycle_audit_record_no_update_delete BEFORE UPDATE OR DELETE ON public.lifecycle_audit_record
    FOR EACH ROW EXECUTE FUNCTION public.lifecycle_audit_reject_change();
CREATE TRIGGER lifecycle_audit_record_no_truncate BEFORE TRUNCATE ON public.lifecycle_audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION public.lifecycle_audit_reject_change();
GRANT SELECT, INSERT ON public.lifecycle_audit_record TO lifecycle_app;

-- A link's hash: its seq, id, predecessor, root, counts, time and (version 3) its
-- statement's hash; concat_ws leaves out the NULL of an older link, whose hash is unchanged.
CREATE OR REPLACE FUNCTION public.lifecycle_audit_link_hash(l public.lifecycle_audit_link) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', 'link', l.seq, l.link_id, l.prev_hash, l.merkle_root,
        l.record_count, l.first_audit_id, l.last_audit_id, l.total_records,
        to_char(l.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), l.statement_hash), 'UTF8')), 'hex')
$$;

-- Append one link for the records of `p_link_id` (their hashes in audit_id order) and the
-- statement they share, under the head's row lock, held until commit. Runs as the owner:
-- the writer may extend the chain only through here, never write links or the head.
DROP FUNCTION public.lifecycle_audit_seal(bigint, text[], bigint, bigint);
CREATE FUNCTION public.lifecycle_audit_seal(
    p_link_id bigint, p_leaves text[], p_first bigint, p_last bigint, p_statement_hash text,
    p_action text, p_rule text, p_table_name text, p_tables text[], p_as_of date, p_dry_run boolean,
    p_dag_id text, p_run_id text, p_task_id text, p_try_number integer, p_details jsonb,
    OUT seq bigint, OUT link_hash text, OUT total_records bigint, OUT merkle_root text, OUT sealed_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    head public.lifecycle_audit_head;
    link public.lifecycle_audit_link;
BEGIN
    IF coalesce(cardinality(p_leaves), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT * INTO head FROM public.lifecycle_audit_head WHERE singleton FOR UPDATE;
    link.link_id := p_link_id;
    link.seq := head.seq + 1;
    link.prev_hash := head.link_hash;
    link.merkle_root := public.lifecycle_merkle_root(ARRAY(SELECT decode(h, 'hex') FROM unnest(p_leaves) h));
    link.record_count := cardinality(p_leaves);
    link.first_audit_id := p_first;
    link.last_audit_id := p_last;
    link.total_records := head.total_records + cardinality(p_leaves);
    link.sealed_at := clock_timestamp();
    link.statement_hash := p_statement_hash;
    link.link_hash := public.lifecycle_audit_link_hash(link);
    INSERT INTO public.lifecycle_audit_link (link_id, seq, prev_hash, merkle_root, record_count, first_audit_id,
                                             last_audit_id, total_records, sealed_at, link_hash, statement_hash,
                                             action, rule, table_name, tables, as_of, dry_run, dag_id, run_id,
                                             task_id, try_number, details)
    VALUES (link.link_id, link.seq, link.prev_hash, link.merkle_root, link.record_count, link.first_audit_id,
            link.last_audit_id, link.total_records, link.sealed_at, link.link_hash, link.statement_hash,
            p_action, p_rule, p_table_name, p_tables, p_as_of, p_dry_run, p_dag_id, p_run_id,
            p_task_id, p_try_number, p_details);
    UPDATE public.lifecycle_audit_head
       SET seq = link.seq, link_hash = link.link_hash, total_records = link.total_records,
           last_audit_id = greatest(last_audit_id, p_last)
     WHERE singleton;
    seq := link.seq; link_hash := link.link_hash; total_records := link.total_records;
    merkle_root := link.merkle_root; sealed_at := link.sealed_at;
END
$$;
REVOKE EXECUTE ON FUNCTION public.lifecycle_audit_seal(bigint, text[], bigint, bigint, text, text, text, text,
    text[], date, boolean, text, text, text, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.lifecycle_audit_seal(bigint, text[], bigint, bigint, text, text, text, text,
    text[], date, boolean, text, text, text, integer, jsonb) TO lifecycle_app;

-- Every record with every field. A version-3 record's details: its link's, its own, and
-- (a purge's) its rows per table, the tables it had none in left out, as before.
CREATE VIEW public.lifecycle_audit AS
SELECT audit_id, recorded_at, action, rule, customer_id, table_name, row_count, as_of, dry_run, dag_id, run_id,
       task_id, try_number, details, prev_hash, row_hash, link_id, hash_version
FROM public.lifecycle_audit_before_v3
UNION ALL
SELECT r.audit_id, l.sealed_at, l.action, l.rule, r.customer_id, l.table_name, r.row_count, l.as_of, l.dry_run,
       l.dag_id, l.run_id, l.task_id, l.try_number,
       l.details || coalesce(r.details, '{}'::jsonb)
           || CASE WHEN l.tables IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('tables', (SELECT coalesce(jsonb_object_agg(t.name, t.n), '{}'::jsonb)
                                                      FROM unnest(l.tables, r.counts) t(name, n) WHERE t.n <> 0))
              END,
       ''::text, r.row_hash, r.link_id, 3::smallint
FROM public.lifecycle_audit_record r
JOIN public.lifecycle_audit_link l ON l.link_id = r.link_id AND r.audit_id BETWEEN l.first_audit_id AND l.last_audit_id;
GRANT SELECT ON public.lifecycle_audit TO lifecycle_app;
CREATE TRIGGER lifecycle_audit_no_change INSTEAD OF INSERT OR UPDATE OR DELETE ON public.lifecycle_audit
    FOR EACH ROW EXECUTE FUNCTION public.lifecycle_audit_reject_change();
