-- One wholly expired CDR month: detached, held rows kept, dropped (migration 0004).
SELECT total, kept FROM lifecycle_drop_cdr_partition(%(partition)s);
