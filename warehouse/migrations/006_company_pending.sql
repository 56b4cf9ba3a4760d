-- 006: company resolution once per run (warehouse/companies.py refresh), over what the run touched.

-- Awards a load inserted, updated or deleted rows of since the last refresh: written by load_file in the
-- file's own transaction (a crash after its commit leaves them here), emptied by companies.refresh.
CREATE TABLE pending_awards (
    award_key VARCHAR PRIMARY KEY,
    run_id VARCHAR                     -- the first run that touched it
);

-- The stored version of every row a load updated or deleted since the last refresh, as it was before the
-- write: the recipient and mart group (company, agency, sub-agency, fiscal year) it counted in.
CREATE TABLE pending_rows (
    run_id VARCHAR NOT NULL,
    deleted BOOLEAN NOT NULL,          -- true: the row is gone; false: it was replaced
    contract_transaction_unique_key VARCHAR NOT NULL,
    contract_award_unique_key VARCHAR NOT NULL,
    recipient_uei VARCHAR,
    recipient_duns VARCHAR,
    recipient_name VARCHAR,
    recipient_parent_uei VARCHAR,
    recipient_parent_duns VARCHAR,
    recipient_parent_name VARCHAR,
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
-- a DUNS -> the UEI most reported with it,
CREATE TABLE resolution_duns (duns VARCHAR NOT NULL, uei VARCHAR NOT NULL);
-- a parent UEI (kind 'uei') or DUNS ('duns') -> its company,
CREATE TABLE resolution_parents (kind VARCHAR NOT NULL, id VARCHAR NOT NULL, company VARCHAR NOT NULL);
-- transactions per resolution method (every method has a row once a full resolve has run; none before).
CREATE TABLE resolution_methods (method VARCHAR NOT NULL, transactions BIGINT NOT NULL);
