-- Of the given ledger entries (audit id, row hash, position), the positions of those whose
-- audit row the database has neither in its chain nor linked by a re-application after
-- a restore (index of migration 0018).
SELECT l.i
FROM unnest(%(ids)s::bigint[], %(hashes)s::text[]) WITH ORDINALITY AS l(audit_id, row_hash, i)
WHERE NOT EXISTS (SELECT 1 FROM lifecycle_audit a WHERE a.audit_id = l.audit_id AND a.row_hash = l.row_hash)
  AND NOT EXISTS (SELECT 1 FROM lifecycle_audit r
                  WHERE r.action = 'reapplied_after_restore' AND r.details->>'ledger_row_hash' = l.row_hash)
ORDER BY l.i;
