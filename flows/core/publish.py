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
    run no snapshot reflects yet). Fingerprints (``snapshots.publish``) only the fiscal years those runs touched,
    unless no run is given and none is unpublished: then every file. Refuses a warehouse
    whose latest run did not finish (``runs.unfinished``): nothing is written to the store."""
    if why := runs.unfinished(con):
        raise snapshots.UnfinishedRun(f"not published: {why}")
    job = run_ids is not None
    run_ids = runs.unpublished(con) if run_ids is None else run_ids  # `awardwatch publish`: the runs since the last snapshot
    try:
        # a job's publish, or one after runs, fingerprints only what they touched; `awardwatch publish` with no run
        # since the last snapshot checks every file (a change made outside any load)
        result = snapshots.publish(con, open_store(snapshot_url), workdir=Path(warehouse).parent / "staging", keep=keep,
                                   on_step=failpoints.hit, incremental=job or bool(run_ids))
    except snapshots.ChecksumMismatch:
        invariants.record(con, run_ids or [], {"snapshot_checksums": False})
        raise
    if result.published and run_ids:
        invariants.record(con, run_ids, {"snapshot_checksums": True})
        runs.set_snapshot(con, run_ids, result.snapshot_id)
    return result
