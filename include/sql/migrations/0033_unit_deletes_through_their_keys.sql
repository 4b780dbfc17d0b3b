-- A purge batch deletes its invoices in one statement, and the invoices' delete trigger
-- (migration 0032) then deletes their units' dates and unit months by `= ANY (units)`.
-- For a batch's units (76,000 of 1.6M at 10M CDRs) the planner chose to read both whole
-- tables (1.6M units, 3.4M unit months) and test every row against the array: 0.6 s a
-- batch, in every batch, so the purge's cost grew with the tables, not with its work
-- (the 7 batches at 10M CDRs read them 7 times). Through their primary keys instead (a
-- bitmap of the batch's rows): 3.6-4.3 -> 2.2-2.3 s for the 7 batches at 10M, the work
-- of the batch's rows only. The whole function takes the setting: its inserts (a day's new invoices)
-- find their units by key too. Same rows, same result.
ALTER FUNCTION public.lifecycle_unit_invoices() SET enable_seqscan = off;
