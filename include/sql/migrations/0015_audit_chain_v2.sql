-- Audit trail v2: set-based chaining, a locked chain head, and a hardened database side.
--
-- Each audit row (a "record": one action on one customer and table) carries the hash of
-- its own content (row_hash; computed in the INSERT ... SELECT that writes it, see
-- evidence/audit.py) and the link it belongs to (link_id). Every statement that writes
-- records appends one link to the chain: the Merkle root of its records' hashes (in
-- audit_id order), chained to the previous link's hash. The head of the chain is one row,
-- locked FOR UPDATE by the writer: under READ COMMITTED it always reads the latest head,
-- under REPEATABLE READ or SERIALIZABLE a concurrent extension makes the writer fail with
-- a serialization error (to retry), never extend a stale predecessor.
--
-- The rows written before this migration keep their per-row chain (hash_version 1,
-- lifecycle_audit_hash, prev_hash) and are sealed into link 0, the first of the chain.
--
-- Every lifecycle function runs with a fixed search_path and names everything by schema,
-- so that nothing a caller puts first (a TEMP object) can stand in for what it uses.

ALTER TABLE public.lifecycle_audit
    ADD COLUMN link_id bigint,
    ADD COLUMN hash_version smallint NOT NULL DEFAULT 1;
ALTER TABLE public.lifecycle_audit ALTER COLUMN prev_hash SET DEFAULT '';
CREATE INDEX lifecycle_audit_link_idx ON public.lifecycle_audit (link_id);

DROP TRIGGER lifecycle_audit_chain ON public.lifecycle_audit;
DROP FUNCTION public.lifecycle_audit_chain();

CREATE TABLE public.lifecycle_audit_link (
    link_id       bigint PRIMARY KEY,
    seq           bigint NOT NULL UNIQUE,     -- chain order: 1, 2, 3, ...
    prev_hash     text NOT NULL,              -- link_hash of seq - 1 (64 zeros for the first)
    merkle_root   text NOT NULL,
    record_count  integer NOT NULL,
    first_audit_id bigint NOT NULL,
    last_audit_id bigint NOT NULL,
    total_records bigint NOT NULL,            -- records in the chain up to and including this link
    sealed_at     timestamptz NOT NULL,
    link_hash     text NOT NULL
);
CREATE SEQUENCE public.lifecycle_audit_link_id_seq START 1;

CREATE TABLE public.lifecycle_audit_head (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq           bigint NOT NULL,
    link_hash     text NOT NULL,
    total_records bigint NOT NULL,
    last_audit_id bigint
);
INSERT INTO public.lifecycle_audit_head VALUES (true, 0, repeat('0', 64), 0, NULL);

-- The Merkle root of `leaves` (SHA-256; a node is sha256(0x01 || left || right), an odd
-- last node moves up unchanged), hex; NULL for none. evidence/merkle.py is the same.
CREATE FUNCTION public.lifecycle_merkle_root(leaves bytea[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    level bytea[] := leaves;
BEGIN
    IF coalesce(cardinality(level), 0) = 0 THEN
        RETURN NULL;
    END IF;
    WHILE cardinality(level) > 1 LOOP
        SELECT array_agg(CASE WHEN cardinality(pair) = 2
                              THEN pg_catalog.sha256('\x01'::bytea || pair[1] || pair[2]) ELSE pair[1] END
                         ORDER BY k)
          INTO level
          FROM (SELECT (o + 1) / 2 AS k, array_agg(v ORDER BY o) AS pair
                  FROM unnest(level) WITH ORDINALITY AS u(v, o) GROUP BY 1) pairs;
    END LOOP;
    RETURN encode(level[1], 'hex');
END
$$;

-- The hash a link stores: its seq, id, predecessor, root, counts and time.
CREATE FUNCTION public.lifecycle_audit_link_hash(l public.lifecycle_audit_link) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', 'link', l.seq, l.link_id, l.prev_hash, l.merkle_root,
        l.record_count, l.first_audit_id, l.last_audit_id, l.total_records,
        to_char(l.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 'UTF8')), 'hex')
$$;

-- Append one link for the records of `p_link_id` (their hashes in audit_id order) under
-- the head's row lock, held until commit. Runs as the owner: the writer may extend the
-- chain only through here, never write links or the head itself.
CREATE FUNCTION public.lifecycle_audit_seal(p_link_id bigint, p_leaves text[], p_first bigint, p_last bigint,
                                            OUT seq bigint, OUT link_hash text, OUT total_records bigint,
                                            OUT merkle_root text, OUT sealed_at timestamptz)
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
    link := ROW(p_link_id, head.seq + 1, head.link_hash,
                public.lifecycle_merkle_root(ARRAY(SELECT decode(h, 'hex') FROM unnest(p_leaves) h)),
                cardinality(p_leaves), p_first, p_last, head.total_records + cardinality(p_leaves),
                clock_timestamp(), '');
    link.link_hash := public.lifecycle_audit_link_hash(link);
    INSERT INTO public.lifecycle_audit_link SELECT (link).*;
    UPDATE public.lifecycle_audit_head
       SET seq = link.seq, link_hash = link.link_hash, total_records = link.total_records,
           last_audit_id = greatest(last_audit_id, p_last)
     WHERE singleton;
    seq := link.seq; link_hash := link.link_hash; total_records := link.total_records;
    merkle_root := link.merkle_root; sealed_at := link.sealed_at;
END
$$;

-- Links, like records, are never changed or removed.
CREATE TRIGGER lifecycle_audit_link_no_update_delete BEFORE UPDATE OR DELETE ON public.lifecycle_audit_link
    FOR EACH ROW EXECUTE FUNCTION public.lifecycle_audit_reject_change();
CREATE TRIGGER lifecycle_audit_link_no_truncate BEFORE TRUNCATE ON public.lifecycle_audit_link
    FOR EACH STATEMENT EXECUTE FUNCTION public.lifecycle_audit_reject_change();

-- The version-1 rows: the per-row hash of migration 0002, now with a fixed search_path.
CREATE OR REPLACE FUNCTION public.lifecycle_audit_hash(a public.lifecycle_audit) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(concat_ws('|',
        a.audit_id, to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        a.action, coalesce(a.rule, ''), coalesce(a.customer_id::text, ''),
        coalesce(a.table_name, ''), a.row_count, coalesce(a.as_of::text, ''), a.dry_run,
        coalesce(a.dag_id, ''), coalesce(a.run_id, ''), coalesce(a.task_id, ''),
        coalesce(a.try_number::text, ''), a.details::text, a.prev_hash), 'UTF8')), 'hex')
$$;

-- Seal the version-1 rows (if any) into link 0, after checking their own chain: a
-- database whose old chain is already broken is not sealed over (the migration fails).
DO $$
DECLARE
    broken bigint;
    leaves text[];
BEGIN
    SELECT count(*) INTO broken FROM (
        SELECT l.row_hash <> public.lifecycle_audit_hash(l)
               OR l.prev_hash <> lag(l.row_hash, 1, repeat('0', 64)) OVER (ORDER BY l.audit_id) AS bad
          FROM public.lifecycle_audit l) c WHERE bad;
    IF broken > 0 THEN
        RAISE EXCEPTION 'lifecycle_audit has % chain break(s); not sealing a broken chain', broken;
    END IF;
    SELECT array_agg(row_hash ORDER BY audit_id) INTO leaves FROM public.lifecycle_audit;
    PERFORM public.lifecycle_audit_seal(0, leaves, (SELECT min(audit_id) FROM public.lifecycle_audit),
                                        (SELECT max(audit_id) FROM public.lifecycle_audit));
END
$$;

-- Version-1 rows are those of link 0 (link_id NULL); every later row names its link.
CREATE OR REPLACE VIEW public.lifecycle_audit_chain_breaks AS
SELECT audit_id,
       CASE WHEN bad_hash THEN 'row content does not match its hash'
            ELSE 'previous hash does not match the preceding row' END AS problem
FROM (SELECT l.audit_id,
             l.row_hash <> public.lifecycle_audit_hash(l) AS bad_hash,
             l.prev_hash <> lag(l.row_hash, 1, repeat('0', 64)) OVER (ORDER BY l.audit_id) AS bad_link
      FROM public.lifecycle_audit l WHERE l.hash_version = 1) checked
WHERE bad_hash OR bad_link;

CREATE OR REPLACE FUNCTION public.lifecycle_audit_reject_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_on_hold(p_customer_id bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM public.legal_holds h
                   WHERE h.customer_id = p_customer_id AND h.released_on IS NULL)
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_month_start(p_month date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT date_trunc('month', p_month)::timestamp AT TIME ZONE 'Europe/Copenhagen'
$$;

CREATE OR REPLACE FUNCTION public.lifecycle_ensure_cdr_partitions(p_until date) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    month   date;
    created integer := 0;
BEGIN
    SELECT coalesce(max(to_date(regexp_replace(c.relname, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM'))
                    + interval '1 month', date '2015-01-01')::date
      INTO month
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'public.cdrs'::regclass AND c.relname ~ '^cdrs_y\d{4}m\d{2}$';
    WHILE month <= date_trunc('month', p_until)::date LOOP
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.cdrs FOR VALUES FROM (%L) TO (%L)',
                       to_char(month, '"cdrs_y"YYYY"m"MM'),
                       public.lifecycle_month_start(month),
                       public.lifecycle_month_start((month + interval '1 month')::date));
        month := (month + interval '1 month')::date;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Migration 0012's functions get theirs too (lifecycle_drop_cdr_partition has one).
ALTER FUNCTION public.lifecycle_holds_lock_key() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.lifecycle_hold_change_lock() SET search_path = public, pg_temp;

-- The writer extends the chain only through lifecycle_audit_seal, links and head read-only.
REVOKE EXECUTE ON FUNCTION public.lifecycle_audit_seal(bigint, text[], bigint, bigint),
    public.lifecycle_merkle_root(bytea[]), public.lifecycle_audit_link_hash(public.lifecycle_audit_link) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.lifecycle_audit_seal(bigint, text[], bigint, bigint),
    public.lifecycle_merkle_root(bytea[]), public.lifecycle_audit_link_hash(public.lifecycle_audit_link)
    TO lifecycle_app;
GRANT SELECT ON public.lifecycle_audit_link, public.lifecycle_audit_head TO lifecycle_app;
GRANT USAGE ON SEQUENCE public.lifecycle_audit_link_id_seq TO lifecycle_app;
-- No TEMP objects for anyone but the owner (a database's privilege: not copied by
-- CREATE DATABASE ... TEMPLATE, so restated for a copy by running this migration's line).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
