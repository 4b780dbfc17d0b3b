-- The customers' 118 directory wishes beyond opting a number out: a number of any kind
-- listed on request, and the whole company unlisted (numbers it gets later included).
-- Nullable with defaults, so the CRM can insert rows holding only the core columns.
ALTER TABLE phone_numbers ADD COLUMN directory_opt_in boolean DEFAULT false;
ALTER TABLE customers ADD COLUMN directory_opt_out boolean DEFAULT false;
