-- Every action of the period [%(start)s, %(end)s), with whether its event is in the task logs.
COPY (
    SELECT a.audit_id, a.recorded_at, a.action, a.rule, a.customer_id, a.table_name, a.row_count, a.as_of,
           a.dry_run, a.dag_id, a.run_id, a.task_id, a.try_number, a.details, a.prev_hash, a.row_hash,
           EXISTS (SELECT 1 FROM audit_logged_events e WHERE e.audit_id = a.audit_id
                   AND e.row_hash = a.row_hash) AS in_task_log
    FROM lifecycle_audit a
    WHERE a.recorded_at >= %(start)s AND a.recorded_at < %(end)s
    ORDER BY a.audit_id
) TO STDOUT WITH (FORMAT csv, HEADER true)
