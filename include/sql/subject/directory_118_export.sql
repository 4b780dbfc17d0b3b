-- The 118 directory listing at %(as_of)s: the numbers of every customer whose
-- relationship has not ended by then and that has not opted out as a company, that
-- are its main number or opted in (a number of any kind listed on request), and that
-- have not opted out themselves.
SELECT p.number, c.company_name, c.address
FROM phone_numbers p
JOIN customers c ON c.customer_id = p.customer_id
WHERE (p.kind = 'main' OR p.directory_opt_in IS TRUE)
  AND p.directory_opt_out IS NOT TRUE
  AND c.directory_opt_out IS NOT TRUE
  AND (c.relationship_ended_on IS NULL OR c.relationship_ended_on > %(as_of)s)
ORDER BY p.number
