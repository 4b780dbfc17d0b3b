-- Data-subject requests answered, rejected or refused in the period [%(start)s, %(end)s): one row
-- per run and outcome, with when it was recorded (no personal data: ids and times).
SELECT dag_id, run_id, customer_id,
       CASE action WHEN 'subject_access_export' THEN 'access' WHEN 'refused' THEN
                   CASE WHEN dag_id = 'data_subject_access' THEN 'access' ELSE 'erasure' END
                   ELSE 'erasure' END AS kind,
       CASE action WHEN 'erasure_rejected' THEN 'rejected' WHEN 'refused' THEN 'refused' ELSE 'answered' END
           AS outcome,
       min(recorded_at) AS recorded_at
FROM lifecycle_audit
WHERE recorded_at >= %(start)s AND recorded_at < %(end)s AND NOT dry_run
  AND (action IN ('subject_access_export', 'erasure_request', 'erasure_rejected')
       OR (action = 'refused' AND dag_id IN ('data_subject_access', 'data_subject_erasure')))
GROUP BY 1, 2, 3, 4, 5
ORDER BY 6
