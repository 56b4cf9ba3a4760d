-- 004: the invariant checks of each run, as {"name": true|false, ...}.
ALTER TABLE runs ADD COLUMN invariants JSON;
