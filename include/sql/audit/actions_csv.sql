-- Every action of the period [%(start)s, %(end)s), with whether its chain link's event
-- is in the task logs (%(logged_links)s: the link ids the logs name).
COPY (
    SELECT a.audit_id, a.recorded_at, a.action, a.rule, a.customer_id, a.table_name, a.row_count, a.as_of,
           a.dry_run, a.dag_id, a.run_id, a.task_id, a.try_number, a.details, a.link_id, a.row_hash,
           a.link_id = ANY (%(logged_links)s::bigint[]) AS in_task_log
    FROM lifecycle_audit a
    WHERE a.recorded_at >= %(start)s AND a.recorded_at < %(end)s
    ORDER BY a.audit_id
) TO STDOUT WITH (FORMAT csv, HEADER true)
