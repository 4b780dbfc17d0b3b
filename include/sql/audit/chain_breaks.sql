-- Every break in the whole hash chain (a break before the period undermines it too).
SELECT audit_id, problem FROM lifecycle_audit_chain_breaks ORDER BY audit_id
