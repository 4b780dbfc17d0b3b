-- Accounting units: an invoice, its payments and the CDRs billed on it are kept until
-- the latest of them is due (rules/retention.py, Scope.unit_open). Finding a unit's
-- CDRs, and the invoices a CDR month is billed on, goes through this index (on every
-- partition). Payments already have payments_invoice_id_idx.
CREATE INDEX cdrs_invoice_id_idx ON cdrs (invoice_id) WHERE invoice_id IS NOT NULL;

-- The fiscal-year ends the last accounting removal applied (retention.check_year_ends
-- refuses a year end changed without the policy recording the old one).
CREATE INDEX lifecycle_audit_year_ends_idx ON lifecycle_audit (audit_id) WHERE details ? 'fiscal_year_ends';
