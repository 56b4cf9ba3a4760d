"""Invariants checked after every run; a broken one fails the run.

- ``counts_reconcile``: read = inserted + updated + unchanged + duplicate + quarantined + deleted;
- ``unique_transaction_keys``: no key twice in ``transactions``;
- ``award_sums_match``: every award's total_obligated_amount and number_of_transactions equal
  the sum and count over its transactions, and every transaction's award exists;
- ``every_transaction_has_a_parent_company``: resolved, with its method;
- ``snapshot_checksums`` (after a publish): every file of the snapshot matches its manifest.
"""

from __future__ import annotations

import json

import duckdb

from warehouse.runs import Counts

AWARD_MISMATCHES = """
SELECT count(*) FROM awards a
FULL JOIN (
    SELECT contract_award_unique_key, coalesce(sum(federal_action_obligation), 0) AS total, count(*) AS n
    FROM transactions GROUP BY 1
) t USING (contract_award_unique_key)
WHERE a.total_obligated_amount IS DISTINCT FROM t.total OR a.number_of_transactions IS DISTINCT FROM t.n
"""


def check(con: duckdb.DuckDBPyConnection, counts: Counts) -> dict[str, bool]:
    duplicate_keys = con.execute(
        "SELECT count(*) - count(DISTINCT contract_transaction_unique_key) FROM transactions"
    ).fetchone()[0]
    return {
        "counts_reconcile": counts.reconciled,
        "unique_transaction_keys": duplicate_keys == 0,
        "award_sums_match": con.execute(AWARD_MISMATCHES).fetchone()[0] == 0,
        "every_transaction_has_a_parent_company": con.execute(
            "SELECT count(*) = 0 FROM transactions WHERE parent_company IS NULL OR parent_company_method IS NULL"
        ).fetchone()[0],
    }


def record(con: duckdb.DuckDBPyConnection, run_ids: list[str], results: dict[str, bool]) -> None:
    """Merges results into the runs' ``invariants``."""
    for run_id in run_ids:
        (current,) = con.execute("SELECT invariants FROM runs WHERE run_id = ?", [run_id]).fetchone() or (None,)
        merged = (json.loads(current) if current else {}) | results
        con.execute("UPDATE runs SET invariants = ? WHERE run_id = ?", [json.dumps(merged), run_id])


def broken(results: dict[str, bool]) -> list[str]:
    return [name for name, ok in results.items() if not ok]
