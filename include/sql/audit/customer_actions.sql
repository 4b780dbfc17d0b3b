-- Every audit row about one customer, in chain order, with whether the chain breaks there.
SELECT a.audit_id, a.recorded_at, a.action, a.rule, a.table_name, a.row_count, a.as_of, a.dry_run,
       a.dag_id, a.run_id, a.task_id, a.try_number, a.details, a.prev_hash, a.row_hash,
       b.problem AS chain_problem
FROM lifecycle_audit a
LEFT JOIN lifecycle_audit_chain_breaks b USING (audit_id)
WHERE a.customer_id = %(customer_id)s
ORDER BY a.audit_id
