"""Publish use case: the warehouse as a Parquet snapshot, recorded on the runs it reflects."""

from __future__ import annotations

from pathlib import Path

from awardwatch.flows.core import failpoints
from awardwatch.warehouse import db, invariants, runs, snapshots
from awardwatch.warehouse.store import open_store


def publish(warehouse: Path, snapshot_url: str, *, keep: int | None = 30, threads: int | None = None,
            lock_wait: float = 60.0, run_ids: list[str] | None = None) -> snapshots.PublishResult:
    """``publish_on`` a connection of its own."""
    con = db.connect(warehouse, threads=threads, wait=lock_wait)
    try:
        return publish_on(con, warehouse, snapshot_url, keep=keep, run_ids=run_ids)
    finally:
        con.close()


def publish_on(con, warehouse: Path, snapshot_url: str, *, keep: int | None = 30,
               run_ids: list[str] | None = None) -> snapshots.PublishResult:
    """Publishes the warehouse as a Parquet snapshot (unless unchanged), then applies retention;
    records the snapshot and its checksum invariant on the runs it reflects (by default, every succeeded
    run no snapshot reflects yet). Refuses a warehouse
    whose latest run did not finish (``runs.unfinished``): nothing is written to the store."""
    if why := runs.unfinished(con):
        raise snapshots.UnfinishedRun(f"not published: {why}")
    run_ids = runs.unpublished(con) if run_ids is None else run_ids  # `awardwatch publish`: the runs since the last snapshot
    try:
        result = snapshots.publish(con, open_store(snapshot_url), workdir=Path(warehouse).parent / "staging", keep=keep,
                                   on_step=failpoints.hit)
    except snapshots.ChecksumMismatch:
        invariants.record(con, run_ids or [], {"snapshot_checksums": False})
        raise
    if result.published and run_ids:
        invariants.record(con, run_ids, {"snapshot_checksums": True})
        runs.set_snapshot(con, run_ids, result.snapshot_id)
    return result
