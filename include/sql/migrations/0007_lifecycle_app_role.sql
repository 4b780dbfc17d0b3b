-- The least-privilege role the lifecycle runs as. `lifecycle_app` cannot log in:
-- a deployment creates its own LOGIN role as a member of it (password from the
-- deployment's secrets, never from this repository) and points the `telco_db`
-- connection at that, or names it in LIFECYCLE_DATABASE_ROLE (database.py SETs it).
--
-- It may read the tables the policy governs, delete from them, update only the
-- columns the purges and offboarding update, append to the audit trail (but never
-- change or remove an audit row), place and release legal holds, and call the
-- lifecycle functions. It owns nothing, so it cannot drop, alter or truncate a
-- table, and it has no grant on anything else (schema_migrations, other tables).
-- Roles are cluster-wide, hence the guarded CREATE; grants are per database.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lifecycle_app') THEN
        CREATE ROLE lifecycle_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO lifecycle_app;

GRANT SELECT, DELETE ON customers, contacts, crm_correspondence, phone_numbers, pbx_configs, sip_peers,
    archived_contracts, invoices, payments, cdrs TO lifecycle_app;
-- Anonymisation clears the personal columns and stamps crm_purged_on; offboarding
-- sets the relationship end. (test_least_privilege checks this against the policy.)
GRANT UPDATE (company_name, cvr, address, email, phone, relationship_ended_on, crm_purged_on)
    ON customers TO lifecycle_app;

-- The chain trigger reads the previous row and draws the next id as the writer.
GRANT SELECT, INSERT ON lifecycle_audit TO lifecycle_app;
GRANT SELECT ON lifecycle_audit_chain_breaks TO lifecycle_app;
GRANT USAGE ON SEQUENCE lifecycle_audit_id_seq TO lifecycle_app;

GRANT SELECT, INSERT ON legal_holds TO lifecycle_app;
GRANT UPDATE (released_on, released_by) ON legal_holds TO lifecycle_app;
GRANT USAGE ON SEQUENCE legal_holds_legal_hold_id_seq TO lifecycle_app;

-- Dropping a CDR month needs the table's owner: the function runs as its owner, with
-- a fixed search_path so that nothing the caller puts first can stand in for `cdrs`.
-- It removes no more than the role's DELETE on cdrs could (held rows are kept).
ALTER FUNCTION lifecycle_drop_cdr_partition(text) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION lifecycle_drop_cdr_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lifecycle_ensure_cdr_partitions(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lifecycle_drop_cdr_partition(text), lifecycle_on_hold(bigint),
    lifecycle_month_start(date), lifecycle_audit_hash(lifecycle_audit) TO lifecycle_app;
