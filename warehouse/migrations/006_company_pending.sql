-- 006: company resolution once per run (warehouse/companies.py refresh), over what the run touched.

-- Awards a load inserted, updated or deleted rows of since the last refresh: written by load_file in the
-- file's own transaction (a crash after its commit leaves them here), emptied by companies.refresh.
CREATE TABLE pending_awards (
    award_key VARCHAR NOT NULL,        -- once
    run_id VARCHAR                     -- the first run that touched it
);

-- The version the last refresh resolved of every row a load since replaced or deleted (once per row):
-- what it counted in (recipient, parent names, mart group: company, agency, sub-agency, fiscal year).
CREATE TABLE pending_rows (
    run_id VARCHAR NOT NULL,
    contract_transaction_unique_key VARCHAR NOT NULL,
    contract_award_unique_key VARCHAR NOT NULL,
    recipient_uei VARCHAR,
    recipient_duns VARCHAR,
    recipient_name VARCHAR,
    recipient_parent_uei VARCHAR,
    recipient_parent_duns VARCHAR,
    recipient_parent_name VARCHAR,
    action_date DATE,
    last_modified_date TIMESTAMP,
    federal_action_obligation DECIMAL(38,2),
    parent_company VARCHAR,
    parent_company_method VARCHAR,
    awarding_agency_code VARCHAR,
    awarding_sub_agency_code VARCHAR,
    fiscal_year INTEGER
);

-- The resolver's lookups as of the last refresh (rebuilt by a full resolve, extended by each refresh):
-- every name reported (recipient or parent) and its normalised form,
CREATE TABLE resolution_names (name VARCHAR NOT NULL, normalised VARCHAR);
-- normalised names that have an alias company (company_aliases: exact, else longest prefix),
CREATE TABLE resolution_aliases (normalised VARCHAR NOT NULL, company VARCHAR NOT NULL);
-- rows per DUNS and UEI reported together, and a DUNS -> the UEI most reported with it,
CREATE TABLE resolution_duns_counts (duns VARCHAR NOT NULL, uei VARCHAR NOT NULL, n BIGINT NOT NULL);
CREATE TABLE resolution_duns (duns VARCHAR NOT NULL, uei VARCHAR NOT NULL);
-- rows per parent UEI (kind 'uei') or DUNS ('duns') and normalised parent name (NULL: none), and the
-- identifier's company,
CREATE TABLE resolution_parent_names (kind VARCHAR NOT NULL, id VARCHAR NOT NULL, name VARCHAR, n BIGINT NOT NULL);
CREATE TABLE resolution_parents (kind VARCHAR NOT NULL, id VARCHAR NOT NULL, company VARCHAR NOT NULL);
-- transactions per resolution method (every method has a row once a full resolve has run; none before).
CREATE TABLE resolution_methods (method VARCHAR NOT NULL, transactions BIGINT NOT NULL);
