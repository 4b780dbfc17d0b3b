-- A purge batch deletes its invoices in one statement, and the invoices' delete trigger
-- (migration 0032) then deletes their units' dates and unit months by `= ANY (units)`.
-- For a batch's units (76,000 of 1.6M at 10M CDRs) the planner chose to read both whole
-- tables (1.6M units, 3.4M unit months) and test every row against the array: 0.6 s a
-- batch, in every batch, so the purge's cost grew with the tables, not with its work
-- (seven times the tables at 10M CDRs; ten times more at 50M). Through their primary keys
-- instead (a bitmap of the batch's rows): 0.6 -> 0.4 s a batch at 10M, and flat with the
-- tables' size. The whole function takes the setting: its inserts (a day's new invoices)
-- find their units by key too. Same rows, same result.
ALTER FUNCTION public.lifecycle_unit_invoices() SET enable_seqscan = off;
