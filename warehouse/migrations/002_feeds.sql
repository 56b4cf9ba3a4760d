-- 002: incremental feeds: watermarks, backfill chunks, deletions, and the snapshot a run published.

-- One watermark per source and scope (for example usaspending / awarding:subtier:ICE,CBP),
-- moved only by a run that succeeded.
CREATE TABLE watermarks (
    source VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    value TIMESTAMP NOT NULL,         -- data up to here is loaded (next run re-reads a look-back window before it)
    run_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, scope)
);

-- Backfills are split into chunks; a finished chunk is skipped when the same backfill runs again.
CREATE TABLE backfill_chunks (
    backfill_id VARCHAR NOT NULL,     -- hash of source, scope, range and chunk size
    source VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    chunk_start DATE NOT NULL,
    chunk_end DATE NOT NULL,
    status VARCHAR NOT NULL,          -- done
    run_id VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    PRIMARY KEY (backfill_id, chunk_start)
);

-- Every deletion a feed asked for (Award Data Archive delta 'D' rows, the FPDS DELETED feed),
-- and whether it removed a row.
CREATE TABLE deletions (
    contract_transaction_unique_key VARCHAR NOT NULL,
    contract_award_unique_key VARCHAR,   -- of the row removed
    applied BOOLEAN NOT NULL,            -- false: no such row, or the stored row is newer
    last_modified_date TIMESTAMP,        -- of the deletion record
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_row BIGINT,
    run_id VARCHAR NOT NULL,
    deleted_at TIMESTAMP NOT NULL
);

ALTER TABLE runs ADD COLUMN snapshot_id VARCHAR;
ALTER TABLE run_files ADD COLUMN rows_deleted BIGINT DEFAULT 0;
