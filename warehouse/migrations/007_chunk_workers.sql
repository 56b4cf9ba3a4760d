-- 007: where each backfill chunk's map stage ran (a Dask worker's address; '' in the writing process).
ALTER TABLE backfill_chunks ADD COLUMN worker VARCHAR DEFAULT '';
