-- Restore reconciliation (rules/restore.py) links each ledger entry that a restored
-- database had lost to the audit row re-applying it: restore detection looks these
-- links up by the ledger entry's hash, on every purge.
CREATE INDEX lifecycle_audit_reapplied_idx ON lifecycle_audit ((details->>'ledger_row_hash'))
    WHERE action = 'reapplied_after_restore';
