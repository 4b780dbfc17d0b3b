-- Returning customers: when an ended customer signs again (the customer_return DAG),
-- its relationship_ended_on is cleared and the contracts signed before the earlier end
-- keep that end here, so their five-year clock runs on (policy: `own_clock`). NULL: the
-- contract belongs to the current relationship and follows the customer's end.
ALTER TABLE archived_contracts ADD COLUMN relationship_ended_on date;
CREATE INDEX archived_contracts_relationship_ended_on_idx
    ON archived_contracts (relationship_ended_on) WHERE relationship_ended_on IS NOT NULL;
GRANT UPDATE (relationship_ended_on) ON archived_contracts TO lifecycle_app;
