"""What each job touched (``run_touched``, migration 008), so the steps after its runs read only that (issue 16):
the nightly's reconciliation checks the (sub-agency, fiscal year) groups its runs touched, and publish
fingerprints only the fiscal years touched since the previous snapshot.

- ``record_pending``: once per job (flows/core/ingest.settle), before ``companies.refresh`` empties the
  pending tables: the groups of the rows written since the last refresh (those ``pending_awards`` reaches
  that have no company yet or were replaced, as refresh itself finds them) and of the versions replaced or
  deleted (``pending_rows``), each under the run that wrote it;
- ``record_companies``: by ``companies`` whenever it writes parent companies (any fiscal year: a load can
  teach a recipient its parent, and its older rows follow);
- ``published``: by ``snapshots.publish``, the last batch a snapshot reflects.
"""

from __future__ import annotations

import duckdb

from awardwatch.schemas.names import AWARD_KEY, KEY
from awardwatch.warehouse import db, runs

GROUP = "awarding_agency_code, awarding_sub_agency_code, fiscal_year"


def _batch(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT nextval('run_touched_batches')").fetchone()[0]


def record_pending(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> None:
    """Records the groups of what the loads since the last refresh wrote, and that ``run_ids`` (the job's
    runs) are recorded, with every run found in the pending tables."""
    with db.transaction(con):
        batch = _batch(con)
        con.execute(
            f"""
            INSERT INTO run_touched
            SELECT DISTINCT ?, run_id, 'rows', {GROUP} FROM (
                SELECT run_id, {GROUP} FROM pending_rows
                UNION ALL
                SELECT t.run_id, {', '.join('t.' + c for c in GROUP.split(', '))} FROM transactions t
                WHERE t.{AWARD_KEY} IN (SELECT award_key FROM pending_awards)
                  AND (t.parent_company IS NULL OR t.{KEY} IN (SELECT {KEY} FROM pending_rows))
            )
            """,
            [batch],
        )
        con.execute(
            "UPDATE runs SET touched = true WHERE list_contains(?, run_id) OR run_id IN "
            "(SELECT run_id FROM run_touched WHERE batch = ? UNION SELECT run_id FROM pending_awards)",
            [run_ids, batch],
        )


def record_companies(con: duckdb.DuckDBPyConnection, changed: str) -> None:
    """Records the groups of the rows of ``changed`` (a relation with the group columns), whose parent
    company a resolution has just rewritten."""
    con.execute(f"INSERT INTO run_touched SELECT DISTINCT ?, NULL, 'companies', {GROUP} FROM {changed}", [_batch(con)])


def groups_of(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[tuple[str, str, int]] | None:
    """(agency, sub-agency, fiscal year) of the rows these runs inserted, updated or deleted, or None when one
    of them has no record (a run from before migration 008)."""
    if con.execute("SELECT count(*) FROM runs WHERE list_contains(?, run_id) AND touched IS NOT TRUE", [run_ids]).fetchone()[0]:
        return None
    return con.execute(f"SELECT DISTINCT {GROUP} FROM run_touched WHERE kind = 'rows' AND list_contains(?, run_id) "
                       "ORDER BY ALL", [run_ids]).fetchall()


def years_since(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> set[int] | None:
    """The fiscal years touched since this warehouse published ``snapshot_id``, or None when that is not known:
    the snapshot is not one it published (another warehouse's, or from before migration 008), or a run since
    wrote rows no job recorded (its pending rows resolved by `awardwatch report resolve`)."""
    found = con.execute("SELECT batch, published_at FROM published_snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
    if found is None:
        return None
    batch, at = found
    unrecorded = con.execute("SELECT count(*) FROM runs WHERE started_at > ? AND touched IS NOT TRUE "
                             "AND rows_inserted + rows_updated + rows_deleted > 0", [at]).fetchone()[0]
    if unrecorded:
        return None
    return {fy for (fy,) in con.execute("SELECT DISTINCT fiscal_year FROM run_touched WHERE batch > ?", [batch]).fetchall()}


def last_batch(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(batch), 0) FROM run_touched").fetchone()[0]


def published(con: duckdb.DuckDBPyConnection, snapshot_id: str, store: str, batch: int) -> None:
    """Notes that ``snapshot_id`` (in ``store``) holds the warehouse as of ``batch``."""
    con.execute("INSERT OR REPLACE INTO published_snapshots VALUES (?, ?, ?, ?)", [snapshot_id, store, batch, runs.now()])
