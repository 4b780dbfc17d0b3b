-- One rule's status: the customers with something due under the rule the day before
-- `as_of`, at `as_of` and at the end of the look-ahead window. Each of the three
-- subqueries is retention.Scope.due_customers_sql() for that day (its parameters renamed
-- with the subquery's name as prefix), put in by status.rule_counts:
-- the same "who is due" the purges act on, evaluated three times in one statement.
WITH before (customer_id, on_hold) AS ({before}),
     due (customer_id, on_hold) AS ({due}),
     ahead (customer_id, on_hold) AS ({ahead})
SELECT
    -- due at as_of for the first time: the run of as_of removes it
    (SELECT count(*) FROM due WHERE NOT on_hold AND customer_id NOT IN (SELECT customer_id FROM before))
        AS due_today,
    -- was due on an earlier day and is still there although no hold keeps it: should be 0
    (SELECT count(*) FROM before WHERE NOT on_hold) AS overdue,
    -- nothing due yet, something due within the window
    (SELECT count(*) FROM ahead WHERE customer_id NOT IN (SELECT customer_id FROM due)) AS due_soon,
    -- due, and kept because a legal hold is in force
    (SELECT count(*) FROM due WHERE on_hold) AS held
