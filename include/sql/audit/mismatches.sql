-- Task-log events and lifecycle_audit rows that do not agree, for the period
-- [%(start)s, %(end)s). An event agrees with its row when the row's hash, recomputed
-- from the event's own fields, is the hash stored in the row.
WITH events AS (
    SELECT DISTINCT ON (audit_id, row_hash) * FROM audit_logged_events ORDER BY audit_id, row_hash
), period_rows AS (
    SELECT * FROM lifecycle_audit WHERE recorded_at >= %(start)s AND recorded_at < %(end)s
)
SELECT e.audit_id, 'event in the task log has no audit row' AS problem, e.log_dag_id, e.log_run_id, e.log_task
FROM events e
WHERE NOT EXISTS (SELECT 1 FROM lifecycle_audit a WHERE a.audit_id = e.audit_id)
UNION ALL
SELECT e.audit_id, 'event in the task log differs from its audit row', e.log_dag_id, e.log_run_id, e.log_task
FROM events e JOIN lifecycle_audit a USING (audit_id)
WHERE a.row_hash <> e.row_hash
   OR lifecycle_audit_hash(jsonb_populate_record(NULL::lifecycle_audit, e.event)) <> a.row_hash
UNION ALL
SELECT a.audit_id, 'audit row has no event in the task logs', a.dag_id, a.run_id, a.task_id
FROM period_rows a
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.audit_id = a.audit_id)
ORDER BY 1, 2
