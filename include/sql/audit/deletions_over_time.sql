-- Rows removed per rule and day the rule was applied for (as_of), period [%(start)s, %(end)s).
SELECT rule, as_of, sum(row_count)::bigint
FROM lifecycle_audit
WHERE recorded_at >= %(start)s AND recorded_at < %(end)s
  AND action = ANY (%(removing)s) AND NOT dry_run AND as_of IS NOT NULL
GROUP BY rule, as_of
ORDER BY as_of, rule
