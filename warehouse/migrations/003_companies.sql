-- 003: who is paid. Recipients, parent companies (with how each was resolved), the reviewed
-- alias and brand tables, brands named in resellers' descriptions, and a company x agency mart.
-- Filled by warehouse/companies.py (resolve, marts); the name rule is its macro aw_normalise_name.

-- Resolved on every row: the company (corporate family) and how it was found:
-- uei | duns (through a parent UEI/DUNS), alias (reviewed CSV), name (normalised name), unresolved.
ALTER TABLE transactions ADD COLUMN parent_company VARCHAR;
ALTER TABLE transactions ADD COLUMN parent_company_method VARCHAR;
ALTER TABLE awards ADD COLUMN parent_company VARCHAR;          -- of the latest action
ALTER TABLE awards ADD COLUMN parent_company_method VARCHAR;

-- warehouse/reference/company_aliases.csv, reloaded by every resolve.
CREATE TABLE company_aliases (
    company VARCHAR NOT NULL,          -- the corporate family as reports show it
    name VARCHAR NOT NULL,             -- a name as reported (recipient or parent)
    normalised_name VARCHAR NOT NULL,  -- aw_normalise_name(name)
    match VARCHAR NOT NULL,            -- exact: equal normalised names; prefix: normalised name starts with it (whole words)
    note VARCHAR,
    line INTEGER NOT NULL              -- line in the CSV
);

-- warehouse/reference/brand_rules.csv, reloaded by every resolve.
CREATE TABLE brand_rules (
    brand VARCHAR NOT NULL,
    owner VARCHAR NOT NULL,            -- a company of company_aliases
    pattern VARCHAR NOT NULL,          -- RE2 regex, matched case-insensitively between word boundaries
    note VARCHAR,
    line INTEGER NOT NULL
);

-- One row per recipient: by UEI, else by DUNS (mapped to a UEI when another row reports both), else by name.
CREATE TABLE recipients (
    recipient_key VARCHAR NOT NULL,    -- UEI:<uei> | DUNS:<duns> | NAME:<normalised name>
    recipient_uei VARCHAR,
    recipient_duns VARCHAR,            -- most reported
    recipient_names VARCHAR[],         -- every name reported, as reported
    normalised_name VARCHAR,           -- most reported
    parent_uei VARCHAR,                -- latest reported
    parent_duns VARCHAR,
    parent_name VARCHAR,
    parent_company VARCHAR NOT NULL,   -- resolved from the fields above
    parent_company_method VARCHAR NOT NULL,
    transactions BIGINT NOT NULL,
    obligated_amount DECIMAL(38,2),
    first_action_date DATE,
    latest_action_date DATE
);

-- Transactions whose description (or their award's base description) names a product brand of a
-- company other than the recipient's parent company: software and cloud bought through resellers.
-- One row per transaction and brand owner (the longest match wins).
CREATE TABLE brand_mentions (
    contract_transaction_unique_key VARCHAR NOT NULL,
    contract_award_unique_key VARCHAR NOT NULL,
    award_id_piid VARCHAR,
    action_date DATE,
    fiscal_year INTEGER,
    awarding_agency_code VARCHAR,
    awarding_agency_name VARCHAR,
    awarding_sub_agency_code VARCHAR,
    awarding_sub_agency_name VARCHAR,
    recipient_name VARCHAR,
    recipient_uei VARCHAR,
    parent_company VARCHAR,
    brand VARCHAR NOT NULL,
    brand_owner VARCHAR NOT NULL,
    matched_text VARCHAR NOT NULL,
    matched_in VARCHAR NOT NULL,       -- transaction_description | prime_award_base_transaction_description
    federal_action_obligation DECIMAL(38,2),
    current_total_value_of_award DECIMAL(38,2),
    potential_total_value_of_award DECIMAL(38,2),
    transaction_description VARCHAR
);

-- Mart: obligations by parent company x awarding agency x fiscal year x technology flag
-- (rule: aw_is_technology in warehouse/companies.py).
CREATE TABLE company_agency_fiscal_year (
    parent_company VARCHAR NOT NULL,
    awarding_agency_code VARCHAR,
    awarding_agency_name VARCHAR,
    awarding_sub_agency_code VARCHAR,
    awarding_sub_agency_name VARCHAR,
    fiscal_year INTEGER NOT NULL,
    is_technology BOOLEAN NOT NULL,
    obligated_amount DECIMAL(38,2) NOT NULL,   -- sum of federal_action_obligation
    transactions BIGINT NOT NULL,
    awards BIGINT NOT NULL                     -- distinct award keys with an action in this cell
);
