-- 005: reconciliation against USAspending's published totals (awardwatch reconcile, warehouse/reconcile.py).

-- One row per reconciliation run, awarding sub-agency and fiscal year (action date), so a difference
-- can be traced to the run that first saw it. A --repair run adds its re-check as phase 'recheck'.
CREATE TABLE reconciliations (
    run_id VARCHAR NOT NULL,
    checked_at TIMESTAMP NOT NULL,
    phase VARCHAR NOT NULL,                    -- check | recheck (after a repair)
    agency_code VARCHAR NOT NULL,              -- awarding subtier code
    agency_name VARCHAR,
    fiscal_year INTEGER NOT NULL,
    warehouse_obligations DECIMAL(38,2) NOT NULL,
    usaspending_obligations DECIMAL(38,2) NOT NULL,
    obligations_difference DECIMAL(38,2) NOT NULL,   -- warehouse - USAspending
    warehouse_transactions BIGINT NOT NULL,
    usaspending_transactions BIGINT NOT NULL,
    transactions_difference BIGINT NOT NULL,
    status VARCHAR NOT NULL,                   -- match | mismatch
    repair_run_id VARCHAR,                     -- the load that re-fetched this agency and year (recheck rows)
    PRIMARY KEY (run_id, phase, agency_code, fiscal_year)
);

-- The nightly's reconciliation of the runs it loaded, as `awardwatch runs` shows it ("match", "2 of 9 differ ...").
ALTER TABLE runs ADD COLUMN reconciliation VARCHAR;
