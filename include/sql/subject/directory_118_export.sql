-- The 118 directory listing at %(as_of)s: the main number of every customer whose
-- relationship has not ended by then and that has not opted out of the directory.
-- Mobile and other numbers are never listed.
SELECT p.number, c.company_name, c.address
FROM phone_numbers p
JOIN customers c ON c.customer_id = p.customer_id
WHERE p.kind = 'main'
  AND NOT p.directory_opt_out
  AND (c.relationship_ended_on IS NULL OR c.relationship_ended_on > %(as_of)s)
ORDER BY p.number
