-- Legal holds in force and the customers they protect (ids and counts only).
SELECT count(*) AS holds, count(DISTINCT customer_id) AS customers
FROM legal_holds
WHERE released_on IS NULL
