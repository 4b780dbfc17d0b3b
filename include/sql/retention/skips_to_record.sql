-- Per held customer of the batch (%(customers)s): the ids of its holds in force (how the
-- trail names them; their case references are free text, kept in legal_holds only), and
-- whether this run's date already recorded that the rule skipped it for a legal hold
-- (then a re-run of the same date writes nothing). The LIMIT keeps the lookup a probe of
-- the customer's audit rows by index, whatever the planner believes of the trail's size.
SELECT c.customer_id,
       coalesce((SELECT array_agg(h.legal_hold_id ORDER BY h.placed_on, h.legal_hold_id) FROM legal_holds h
                 WHERE h.customer_id = c.customer_id AND h.released_on IS NULL), '{}') AS hold_ids,
       recorded.found IS NOT NULL AS recorded
FROM unnest(%(customers)s::bigint[]) c(customer_id)
LEFT JOIN LATERAL (SELECT 1 AS found FROM lifecycle_audit a
                   WHERE a.customer_id = c.customer_id AND a.rule = %(rule)s AND a.action = 'skipped_legal_hold'
                     AND a.as_of = %(as_of)s AND NOT a.dry_run
                   LIMIT 1) recorded ON TRUE
