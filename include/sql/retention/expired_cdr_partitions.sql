-- Month partitions of `cdrs` that end on or before %(fiscal_cutoff)s (the first
-- instant not yet due): every row in them is past the accounting deadline.
SELECT c.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'cdrs'::regclass
  AND c.relname ~ '^cdrs_y\d{4}m\d{2}$'
  AND lifecycle_month_start((to_date(regexp_replace(c.relname, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'), 'YYYYMM')
                             + interval '1 month')::date) <= %(fiscal_cutoff)s
ORDER BY c.relname;
