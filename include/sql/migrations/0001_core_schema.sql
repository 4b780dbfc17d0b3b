-- Core tables of the telecom database, as fixed by the project contract.
-- Personal columns of `customers` are nullable: CRM retention reduces an ended
-- customer to a tombstone (id and dates) that accounting rows still reference.

CREATE TABLE customers (
    customer_id           bigint PRIMARY KEY,
    company_name          text,
    cvr                   char(8) CHECK (cvr ~ '^[0-9]{8}$'),
    address               text,
    email                 text,
    phone                 text,
    relationship_ended_on date,
    crm_purged_on         date
);
CREATE INDEX customers_relationship_ended_on_idx
    ON customers (relationship_ended_on) WHERE relationship_ended_on IS NOT NULL;

CREATE TABLE contacts (
    contact_id  bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    full_name   text,
    email       text,
    phone       text,
    role        text NOT NULL DEFAULT 'other' CHECK (role IN ('billing', 'technical', 'other'))
);
CREATE INDEX contacts_customer_id_idx ON contacts (customer_id);

CREATE TABLE crm_correspondence (
    correspondence_id bigserial PRIMARY KEY,
    customer_id       bigint NOT NULL REFERENCES customers,
    contact_id        bigint REFERENCES contacts,
    sent_at           timestamptz NOT NULL,
    subject           text,
    body              text
);
CREATE INDEX crm_correspondence_customer_id_idx ON crm_correspondence (customer_id);
CREATE INDEX crm_correspondence_contact_id_idx ON crm_correspondence (contact_id);

CREATE TABLE phone_numbers (
    number            text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    customer_id       bigint NOT NULL REFERENCES customers,
    kind              text NOT NULL CHECK (kind IN ('main', 'landline', 'mobile')),
    directory_opt_out boolean NOT NULL DEFAULT false
);
CREATE INDEX phone_numbers_customer_id_idx ON phone_numbers (customer_id);

CREATE TABLE pbx_configs (
    pbx_config_id bigserial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES customers,
    config        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX pbx_configs_customer_id_idx ON pbx_configs (customer_id);

CREATE TABLE sip_peers (
    sip_peer_id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    username    text,
    secret_hash text,
    host        text
);
CREATE INDEX sip_peers_customer_id_idx ON sip_peers (customer_id);

CREATE TABLE archived_contracts (
    contract_id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    signed_on   date NOT NULL,
    document    bytea
);
CREATE INDEX archived_contracts_customer_id_idx ON archived_contracts (customer_id);

CREATE TABLE invoices (
    invoice_id      bigserial PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers,
    issued_on       date NOT NULL,
    fiscal_year     integer NOT NULL,
    billing_name    text,
    billing_address text,
    amount_dkk      numeric(14, 2) NOT NULL DEFAULT 0
);
CREATE INDEX invoices_customer_id_idx ON invoices (customer_id);
CREATE INDEX invoices_fiscal_year_idx ON invoices (fiscal_year);

CREATE TABLE payments (
    payment_id bigserial PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES invoices,
    paid_on    date NOT NULL,
    amount_dkk numeric(14, 2) NOT NULL DEFAULT 0
);
CREATE INDEX payments_invoice_id_idx ON payments (invoice_id);

-- Call detail records: high volume, written by the billing mediation. Range
-- partitioned by month on Copenhagen month boundaries so that a wholly expired
-- month is removed by dropping its partition. No foreign keys, for ingest speed;
-- the default partition receives rows outside every month partition, notably
-- rows of customers under legal hold kept back when their month is dropped.
CREATE TABLE cdrs (
    customer_id bigint NOT NULL,
    a_number    text NOT NULL,
    b_number    text NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_s  integer NOT NULL DEFAULT 0 CHECK (duration_s >= 0),
    kind        text NOT NULL CHECK (kind IN ('call', 'sms', 'mms', 'data')),
    invoice_id  bigint
) PARTITION BY RANGE (started_at);
CREATE INDEX cdrs_customer_id_started_at_idx ON cdrs (customer_id, started_at);
CREATE TABLE cdrs_default PARTITION OF cdrs DEFAULT;

CREATE TABLE legal_holds (
    legal_hold_id  bigserial PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers,
    case_reference text NOT NULL CHECK (length(case_reference) BETWEEN 1 AND 200),
    placed_on      date NOT NULL,
    released_on    date,
    placed_by      text,
    released_by    text,
    CHECK (released_on IS NULL OR released_on >= placed_on)
);
CREATE UNIQUE INDEX legal_holds_one_per_case_idx
    ON legal_holds (customer_id, case_reference) WHERE released_on IS NULL;
CREATE INDEX legal_holds_in_force_idx ON legal_holds (customer_id) WHERE released_on IS NULL;

-- The one definition of "a hold in force": every purge statement filters with it.
CREATE FUNCTION lifecycle_on_hold(p_customer_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM legal_holds h
                   WHERE h.customer_id = p_customer_id AND h.released_on IS NULL)
$$;
