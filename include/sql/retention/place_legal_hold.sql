INSERT INTO legal_holds (customer_id, case_reference, placed_on, placed_by)
VALUES (%(customer_id)s, %(case_reference)s, %(run_date)s, %(requested_by)s)
RETURNING legal_hold_id;
