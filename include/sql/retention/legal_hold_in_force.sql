-- The customer's hold in force under this case reference, if any.
SELECT legal_hold_id, placed_on FROM legal_holds
WHERE customer_id = %(customer_id)s AND case_reference = %(case_reference)s AND released_on IS NULL;
