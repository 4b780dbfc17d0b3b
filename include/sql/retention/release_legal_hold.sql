UPDATE legal_holds SET released_on = %(run_date)s, released_by = %(requested_by)s
WHERE customer_id = %(customer_id)s AND case_reference = %(case_reference)s AND released_on IS NULL
RETURNING legal_hold_id;
