-- Of the given ledger entries (audit id, row hash, position), the positions of those whose
-- audit record the database has neither in its chain nor linked by a re-application after
-- a restore (indexes of migrations 0018 and 0031). The tables, not the view: each lookup
-- is a probe of an index.
SELECT l.i
FROM unnest(%(ids)s::bigint[], %(hashes)s::text[]) WITH ORDINALITY AS l(audit_id, row_hash, i)
WHERE NOT EXISTS (SELECT 1 FROM lifecycle_audit_record a WHERE a.audit_id = l.audit_id AND a.row_hash = l.row_hash)
  AND NOT EXISTS (SELECT 1 FROM lifecycle_audit_link k
                  WHERE k.action = 'reapplied_after_restore' AND k.details->>'ledger_row_hash' = l.row_hash)
  AND NOT EXISTS (SELECT 1 FROM lifecycle_audit_before_v3 a WHERE a.audit_id = l.audit_id AND a.row_hash = l.row_hash)
  AND NOT EXISTS (SELECT 1 FROM lifecycle_audit_before_v3 r
                  WHERE r.action = 'reapplied_after_restore' AND r.details->>'ledger_row_hash' = l.row_hash)
ORDER BY l.i;
