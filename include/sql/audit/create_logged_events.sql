-- The audit events found in the task logs, for one report (dropped at commit).
CREATE TEMP TABLE audit_logged_events (
    audit_id   bigint NOT NULL,
    row_hash   text NOT NULL,
    event      jsonb NOT NULL,
    log_dag_id text NOT NULL,
    log_run_id text NOT NULL,
    log_task   text NOT NULL,
    log_try    integer NOT NULL
) ON COMMIT DROP
