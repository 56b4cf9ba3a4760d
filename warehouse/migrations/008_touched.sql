-- 008: what each job touched, so the steps after its runs read only that (issue 16, warehouse/touched.py):
-- the nightly reconciles the (sub-agency, fiscal year) groups it touched, and publish fingerprints only the
-- fiscal years touched since the previous snapshot.

-- The (awarding agency, sub-agency, fiscal year) groups of the rows a run inserted, updated or deleted
-- (kind 'rows', before and after: written by flows/core/ingest.settle from the pending tables, before
-- companies.refresh empties them), and of the rows whose parent company a resolution changed (kind
-- 'companies', run_id NULL: companies.refresh or resolve, any fiscal year). One batch per recording.
CREATE SEQUENCE run_touched_batches;
CREATE TABLE run_touched (
    batch BIGINT NOT NULL,
    run_id VARCHAR,
    kind VARCHAR NOT NULL,             -- rows | companies
    awarding_agency_code VARCHAR,
    awarding_sub_agency_code VARCHAR,
    fiscal_year INTEGER
);

-- The snapshots this warehouse published (or found equal to it), and the last batch of run_touched each reflects.
CREATE TABLE published_snapshots (
    snapshot_id VARCHAR PRIMARY KEY,
    store VARCHAR NOT NULL,
    batch BIGINT NOT NULL,
    published_at TIMESTAMP NOT NULL
);

-- true once run_touched lists what the run wrote (NULL: a run from before 008, or whose rows no job settled).
ALTER TABLE runs ADD COLUMN touched BOOLEAN;

-- 'all': the agencies' every fiscal year (awardwatch reconcile); 'touched': only the groups a job touched (the nightly).
ALTER TABLE reconciliations ADD COLUMN scope VARCHAR DEFAULT 'all';
