-- Has this run's date already recorded that the rule skipped the customer for a
-- legal hold? Then a re-run of the same date writes nothing.
SELECT EXISTS (
    SELECT 1 FROM lifecycle_audit
    WHERE customer_id = %(customer_id)s AND rule = %(rule)s AND action = 'skipped_legal_hold'
      AND as_of = %(as_of)s AND NOT dry_run);
