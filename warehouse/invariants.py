"""Invariants checked after every run; a broken one fails the run.

- ``counts_reconcile``: read = inserted + updated + unchanged + duplicate + quarantined + deleted;
- ``unique_transaction_keys``: no key twice in ``transactions``;
- ``award_sums_match``: every award's total_obligated_amount and number_of_transactions equal
  the sum and count over its transactions, and every transaction's award exists;
- ``every_transaction_has_a_parent_company``: resolved, with its method;
- ``snapshot_checksums`` (after a publish): every file of the snapshot matches its manifest.

Given the runs (``run_ids``), the first two table checks look at what those runs wrote: keys and awards
of the rows they last wrote (``transactions.run_id``) and of the rows they deleted (``deletions``). Only a
load writes transactions, and it writes those columns, so a duplicate key or an award out of step can only
come from there. Without ``run_ids`` they check every row. The parent-company check reads the whole
column either way: its row groups without NULLs are skipped on their statistics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb

from awardwatch.warehouse.runs import Counts

# {awards}: a filter on contract_award_unique_key ("" for all)
AWARD_MISMATCHES = """
SELECT count(*) FROM (SELECT * FROM awards {awards}) a
FULL JOIN (
    SELECT contract_award_unique_key, coalesce(sum(federal_action_obligation), 0) AS total, count(*) AS n
    FROM transactions {awards} GROUP BY 1
) t USING (contract_award_unique_key)
WHERE a.total_obligated_amount IS DISTINCT FROM t.total OR a.number_of_transactions IS DISTINCT FROM t.n
"""
DUPLICATE_KEYS = """
SELECT count(*) FROM (
    SELECT contract_transaction_unique_key FROM transactions {keys} GROUP BY 1 HAVING count(*) > 1)
"""


def check(con: duckdb.DuckDBPyConnection, counts: Counts, run_ids: Sequence[str] | None = None) -> dict[str, bool]:
    """The invariants, over what ``run_ids`` wrote when given, else over everything."""
    keys = awards = ""
    if run_ids is not None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE aw_checked AS SELECT contract_transaction_unique_key AS k, "
            "contract_award_unique_key AS award_key FROM transactions WHERE list_contains(?, run_id) "
            "UNION ALL SELECT contract_transaction_unique_key, contract_award_unique_key FROM deletions "
            "WHERE applied AND list_contains(?, run_id)",
            [list(run_ids), list(run_ids)],
        )
        keys = "WHERE contract_transaction_unique_key IN (SELECT k FROM aw_checked)"
        awards = "WHERE contract_award_unique_key IN (SELECT award_key FROM aw_checked)"
    results = {
        "counts_reconcile": counts.reconciled,
        "unique_transaction_keys": con.execute(DUPLICATE_KEYS.format(keys=keys)).fetchone()[0] == 0,
        "award_sums_match": con.execute(AWARD_MISMATCHES.format(awards=awards)).fetchone()[0] == 0,
        "every_transaction_has_a_parent_company": con.execute(
            "SELECT count(*) = 0 FROM transactions WHERE parent_company IS NULL OR parent_company_method IS NULL"
        ).fetchone()[0],
    }
    con.execute("DROP TABLE IF EXISTS aw_checked")
    return results


def record(con: duckdb.DuckDBPyConnection, run_ids: list[str], results: dict[str, bool]) -> None:
    """Merges results into the runs' ``invariants``."""
    for run_id in run_ids:
        (current,) = con.execute("SELECT invariants FROM runs WHERE run_id = ?", [run_id]).fetchone() or (None,)
        merged = (json.loads(current) if current else {}) | results
        con.execute("UPDATE runs SET invariants = ? WHERE run_id = ?", [json.dumps(merged), run_id])


def broken(results: dict[str, bool]) -> list[str]:
    return [name for name, ok in results.items() if not ok]
