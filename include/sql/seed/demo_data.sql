-- Deterministic demo data for every core table, generated set-based in PostgreSQL.
-- Parameters: %(customers)s, %(seed)s, %(anchor)s (the "today" of the data),
-- %(cdrs_per_customer)s, %(fy_month)s / %(fy_day)s (fiscal-year end from the policy).
-- Randomness comes from hashing (row key, seed, salt), so the same parameters give
-- the same rows whatever plan PostgreSQL picks.

CREATE FUNCTION pg_temp.r(k bigint, salt integer, seed integer) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT (hashint8extended(k, (seed::bigint << 20) + salt) & 9007199254740991)::float8 / 9007199254740992
$$;
CREATE FUNCTION pg_temp.pick(options text[], x float8) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT options[1 + floor(x * array_length(options, 1))::int] $$;
CREATE FUNCTION pg_temp.fiscal_year(d date, fy_month integer, fy_day integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT extract(year FROM d)::int + (d > make_date(extract(year FROM d)::int, fy_month, fy_day))::int
$$;

-- Who the customers are: 35 %% active, the rest ended on days spread over the past
-- seven years; each relationship lasted one to nine years.
CREATE TEMP TABLE seed_customer ON COMMIT DROP AS
SELECT i AS customer_id,
       CASE WHEN pg_temp.r(i, 1, %(seed)s) < 0.35 THEN NULL
            ELSE (%(anchor)s::date - floor(pg_temp.r(i, 2, %(seed)s) * 7 * 365.25)::int) END AS ended_on,
       pg_temp.r(i, 3, %(seed)s) AS years_frac
FROM generate_series(1::bigint, %(customers)s) AS i;  -- bigint: keys like customer_id * 100000 + n
ALTER TABLE seed_customer ADD COLUMN started_on date, ADD COLUMN last_day date;
UPDATE seed_customer
   SET last_day = coalesce(ended_on, %(anchor)s::date),
       started_on = coalesce(ended_on, %(anchor)s::date) - (365 + floor(years_frac * 8 * 365))::int;

INSERT INTO customers (customer_id, company_name, cvr, address, email, phone, relationship_ended_on)
SELECT s.customer_id,
       pg_temp.pick(ARRAY['Nordisk','Jysk','Fynsk','Dansk','Sjællandsk','Køge','Aarhus','Vestkyst','Bornholms',
                          'Limfjords','Himmerlands','Lolland','Øresunds','Skagen','Ribe','Viborg'], pg_temp.r(s.customer_id, 10, %(seed)s))
         || ' ' ||
       pg_temp.pick(ARRAY['Logistik','Tømrer','VVS','Revision','IT','Ejendomme','Transport','Rådgivning','Byg',
                          'Handel','Elektro','Tandklinik','Advokater','Maskinfabrik','Bogtrykkeri','Køl'], pg_temp.r(s.customer_id, 11, %(seed)s))
         || ' ' || s.customer_id || ' ' ||
       pg_temp.pick(ARRAY['ApS','A/S','I/S','K/S'], pg_temp.r(s.customer_id, 12, %(seed)s)),
       lpad((10000000 + floor(pg_temp.r(s.customer_id, 13, %(seed)s) * 89999999))::bigint::text, 8, '0'),
       pg_temp.pick(ARRAY['Vestergade','Østergade','Nørregade','Søndergade','Algade','Havnegade','Industrivej',
                          'Stationsvej','Kirkevej','Strandvejen','Bredgade','Skolevej'], pg_temp.r(s.customer_id, 14, %(seed)s))
         || ' ' || (1 + floor(pg_temp.r(s.customer_id, 15, %(seed)s) * 180))::int || ', ' ||
       pg_temp.pick(ARRAY['1050 København K','2100 København Ø','5000 Odense C','8000 Aarhus C','9000 Aalborg',
                          '6700 Esbjerg','7100 Vejle','4600 Køge','3700 Rønne','6760 Ribe'], pg_temp.r(s.customer_id, 16, %(seed)s)),
       'kontakt@kunde' || s.customer_id || '.dk',
       '+453' || lpad((s.customer_id * 8)::text, 7, '0'),
       s.ended_on
FROM seed_customer s;

INSERT INTO contacts (customer_id, full_name, email, phone, role)
SELECT s.customer_id,
       pg_temp.pick(ARRAY['Anne','Mette','Lars','Jens','Søren','Hanne','Mads','Louise','Peter','Camilla','Rasmus','Ida'],
                    pg_temp.r(s.customer_id * 4 + k, 20, %(seed)s)) || ' ' ||
       pg_temp.pick(ARRAY['Jensen','Nielsen','Hansen','Pedersen','Andersen','Christensen','Larsen','Sørensen',
                          'Rasmussen','Jørgensen','Madsen','Kristensen'], pg_temp.r(s.customer_id * 4 + k, 21, %(seed)s))
         || ' ' || s.customer_id || '-' || k,
       'kontakt' || k || '@kunde' || s.customer_id || '.dk',
       '+457' || lpad((s.customer_id * 4 + k)::text, 7, '0'),
       (ARRAY['billing','technical','other'])[k]
FROM seed_customer s
CROSS JOIN generate_series(1, 3) AS k
WHERE k = 1 OR pg_temp.r(s.customer_id * 4 + k, 22, %(seed)s) < 0.6;

INSERT INTO crm_correspondence (customer_id, contact_id, sent_at, subject, body)
SELECT c.customer_id, c.contact_id,
       (s.started_on + floor(pg_temp.r(c.contact_id * 4 + k, 31, %(seed)s) * (s.last_day - s.started_on))::int)
         + interval '9 hours' + floor(pg_temp.r(c.contact_id * 4 + k, 32, %(seed)s) * 28800) * interval '1 second',
       pg_temp.pick(ARRAY['Ændring af adresse','Spørgsmål til faktura','Nyt nummer ønskes','Opsigelse',
                          'Fejl på omstilling','Tilbud på fiber'], pg_temp.r(c.contact_id * 4 + k, 33, %(seed)s)),
       'Hej, vedrørende ' || c.full_name || ' (' || c.email || '): se venligst vedhæftede. Mvh ' || c.full_name
FROM contacts c
JOIN seed_customer s USING (customer_id)
CROSS JOIN generate_series(1, 3) AS k
WHERE pg_temp.r(c.contact_id * 4 + k, 30, %(seed)s) < 0.5;

-- Numbers: one main number each, up to two more landlines, up to four mobiles.
INSERT INTO phone_numbers (number, customer_id, kind, directory_opt_out)
SELECT '+45' || CASE WHEN j = 0 THEN '3' || lpad((s.customer_id * 8)::text, 7, '0')
                     WHEN j <= 2 THEN '4' || lpad((s.customer_id * 8 + j)::text, 7, '0')
                     ELSE '2' || lpad((s.customer_id * 8 + j)::text, 7, '0') END,
       s.customer_id,
       CASE WHEN j = 0 THEN 'main' WHEN j <= 2 THEN 'landline' ELSE 'mobile' END,
       pg_temp.r(s.customer_id * 8 + j, 41, %(seed)s) < 0.1
FROM seed_customer s
CROSS JOIN generate_series(0, 6) AS j
WHERE j = 0 OR pg_temp.r(s.customer_id * 8 + j, 40, %(seed)s) < 0.4;

-- Configured solutions exist for active customers only: offboarding removed the rest.
INSERT INTO pbx_configs (customer_id, config)
SELECT s.customer_id,
       jsonb_build_object(
         'product', pg_temp.pick(ARRAY['Hosted PBX Basis','Hosted PBX Pro','Teams Direct Routing'], pg_temp.r(s.customer_id, 50, %(seed)s)),
         'main_number', '+453' || lpad((s.customer_id * 8)::text, 7, '0'),
         'extensions', (SELECT jsonb_agg(jsonb_build_object('ext', 100 + e, 'name', 'Lokal ' || (100 + e)))
                        FROM generate_series(1, 2 + floor(pg_temp.r(s.customer_id, 51, %(seed)s) * 10)::int) e),
         'opening_hours', jsonb_build_object('mon-fri', '08:00-16:00'),
         'queue', jsonb_build_object('music_on_hold', true, 'timeout_s', 60))
FROM seed_customer s
WHERE s.ended_on IS NULL AND pg_temp.r(s.customer_id, 52, %(seed)s) < 0.8;

INSERT INTO sip_peers (customer_id, username, secret_hash, host)
SELECT s.customer_id,
       'trunk' || s.customer_id || '_' || k,
       encode(sha256(convert_to('secret:' || %(seed)s || ':' || s.customer_id || ':' || k, 'UTF8')), 'hex'),
       'sip' || k || '.kunde' || s.customer_id || '.dk'
FROM seed_customer s
CROSS JOIN generate_series(1, 3) AS k
WHERE s.ended_on IS NULL AND (k = 1 OR pg_temp.r(s.customer_id * 4 + k, 53, %(seed)s) < 0.3);

INSERT INTO archived_contracts (customer_id, signed_on, document)
SELECT s.customer_id, s.started_on + (k - 1) * 400,
       convert_to('%%PDF-1.4 Kontrakt for kunde ' || s.customer_id || ', bilag ' || k, 'UTF8')
FROM seed_customer s
CROSS JOIN generate_series(1, 2) AS k
WHERE k = 1 OR (pg_temp.r(s.customer_id, 60, %(seed)s) < 0.4 AND s.started_on + 400 < s.last_day);

-- Quarterly invoices over the last eight years of each relationship.
INSERT INTO invoices (customer_id, issued_on, fiscal_year, billing_name, billing_address, amount_dkk)
SELECT s.customer_id, q.issued_on, pg_temp.fiscal_year(q.issued_on, %(fy_month)s, %(fy_day)s),
       c.company_name, c.address,
       round((250 + pg_temp.r(s.customer_id * 4096 + (q.issued_on - date '2000-01-01'), 70, %(seed)s) * 9750)::numeric, 2)
FROM seed_customer s
JOIN customers c USING (customer_id)
CROSS JOIN LATERAL (
    SELECT (d + interval '3 months' - interval '1 day')::date AS issued_on
    FROM generate_series(date_trunc('quarter', greatest(s.started_on, %(anchor)s::date - 8 * 365)),
                         date_trunc('quarter', s.last_day) - interval '3 months', interval '3 months') AS d
) q;

INSERT INTO payments (invoice_id, paid_on, amount_dkk)
SELECT i.invoice_id, i.issued_on + 8 + floor(pg_temp.r(i.invoice_id, 80, %(seed)s) * 25)::int, i.amount_dkk
FROM invoices i
WHERE pg_temp.r(i.invoice_id, 81, %(seed)s) < 0.95
  AND i.issued_on + 33 <= %(anchor)s::date;

-- Call detail records spread over the last seven years of each relationship,
-- each pointing at the quarterly invoice it was billed on (none yet for the
-- running quarter).
INSERT INTO cdrs (customer_id, a_number, b_number, started_at, duration_s, kind, invoice_id)
SELECT x.customer_id, x.a_number, x.b_number, x.started_at, x.duration_s, x.kind, i.invoice_id
FROM (
    SELECT s.customer_id,
           '+453' || lpad((s.customer_id * 8)::text, 7, '0') AS a_number,
           '+45' || (20000000 + floor(pg_temp.r(s.customer_id * 100000 + n, 91, %(seed)s) * 79999999)::bigint) AS b_number,
           (greatest(s.started_on, %(anchor)s::date - 7 * 365)::timestamp
              + (pg_temp.r(s.customer_id * 100000 + n, 92, %(seed)s)
                 * (s.last_day - greatest(s.started_on, %(anchor)s::date - 7 * 365))) * interval '1 day')
             AT TIME ZONE 'Europe/Copenhagen' AS started_at,
           pg_temp.r(s.customer_id * 100000 + n, 93, %(seed)s) AS kind_x,
           pg_temp.r(s.customer_id * 100000 + n, 94, %(seed)s) AS duration_x
    FROM seed_customer s
    CROSS JOIN generate_series(1, %(cdrs_per_customer)s) AS n
) r
CROSS JOIN LATERAL (
    SELECT r.customer_id, r.a_number, r.b_number, r.started_at,
           CASE WHEN r.kind_x < 0.60 THEN 'call' WHEN r.kind_x < 0.85 THEN 'sms'
                WHEN r.kind_x < 0.88 THEN 'mms' ELSE 'data' END AS kind,
           CASE WHEN r.kind_x < 0.60 THEN 5 + floor(r.duration_x * 1800)::int
                WHEN r.kind_x < 0.88 THEN 0 ELSE 60 + floor(r.duration_x * 3600)::int END AS duration_s,
           (date_trunc('quarter', (r.started_at AT TIME ZONE 'Europe/Copenhagen')::date)
              + interval '3 months' - interval '1 day')::date AS billed_on
) x
LEFT JOIN invoices i ON i.customer_id = x.customer_id AND i.issued_on = x.billed_on;

-- Legal holds: about 1 %% of customers under a hold in force, as many with a
-- released hold in their history.
INSERT INTO legal_holds (customer_id, case_reference, placed_on, released_on, placed_by, released_by)
SELECT s.customer_id,
       'SKP-' || extract(year FROM p.placed_on) || '-' || lpad((s.customer_id %% 100000)::text, 5, '0'),
       p.placed_on,
       CASE WHEN pg_temp.r(s.customer_id, 101, %(seed)s) < 0.5 THEN NULL
            ELSE least(p.placed_on + 30 + floor(pg_temp.r(s.customer_id, 102, %(seed)s) * 300)::int, %(anchor)s::date) END,
       'politiet', NULL
FROM seed_customer s
CROSS JOIN LATERAL (SELECT %(anchor)s::date - floor(pg_temp.r(s.customer_id, 103, %(seed)s) * 700)::int AS placed_on) p
WHERE pg_temp.r(s.customer_id, 100, %(seed)s) < 0.02;
UPDATE legal_holds SET released_by = 'politiet' WHERE released_on IS NOT NULL AND released_by IS NULL;
