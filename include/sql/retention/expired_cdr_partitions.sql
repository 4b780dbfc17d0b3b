-- Month partitions of `cdrs_live` (migration 0030) that end on or before %(fiscal_cutoff)s (the first
-- instant not yet due): every row in them is past the accounting deadline by its own
-- date. With the month (its first day), for the check that none of its rows is billed
-- on an invoice whose unit is still kept (retention._billed_on_kept_units).
SELECT relname, month
FROM (SELECT c.relname, m.month
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      CROSS JOIN LATERAL (SELECT to_date(regexp_replace(c.relname, '^cdrs_y(\d{4})m(\d{2})$', '\1\2'),
                                         'YYYYMM') AS month) m
      WHERE i.inhparent = 'cdrs_live'::regclass
        AND c.relname ~ '^cdrs_y\d{4}m\d{2}$') p
WHERE lifecycle_month_start((month + interval '1 month')::date) <= %(fiscal_cutoff)s
ORDER BY relname;
