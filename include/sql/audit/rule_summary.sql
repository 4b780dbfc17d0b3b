-- Per rule, the audit rows of the period [%(start)s, %(end)s): customers and rows
-- removed, runs, dry runs and skips for legal hold, and which actions they were.
SELECT coalesce(rule, '-') AS rule,
       count(DISTINCT customer_id) FILTER (WHERE removes AND NOT dry_run AND row_count > 0) AS customers,
       coalesce(sum(row_count) FILTER (WHERE removes AND NOT dry_run), 0)::bigint AS rows_removed,
       count(DISTINCT (dag_id, run_id)) AS runs,
       count(*) FILTER (WHERE dry_run) AS dry_run_actions,
       count(*) FILTER (WHERE action = 'skipped_legal_hold') AS legal_hold_skips,
       count(*) AS actions,
       string_agg(DISTINCT action, ', ' ORDER BY action) AS action_names
FROM (SELECT *, action = ANY (%(removing)s) AS removes
      FROM lifecycle_audit WHERE recorded_at >= %(start)s AND recorded_at < %(end)s) a
GROUP BY 1
ORDER BY 1
