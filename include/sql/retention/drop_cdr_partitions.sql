-- Wholly expired CDR months, in the order given: each detached and dropped, its held rows
-- already aside in cdrs_held, its counts read (lifecycle_drop_cdr_partition, migration 0030).
SELECT p.name, d.total, d.kept
FROM unnest(%(partitions)s::text[]) WITH ORDINALITY p(name, n)
CROSS JOIN LATERAL public.lifecycle_drop_cdr_partition(p.name) d
ORDER BY p.n;
