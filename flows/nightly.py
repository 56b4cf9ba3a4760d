"""Prefect flow `nightly`: every configured feed since its watermark, one load per feed and scope, one snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from awardwatch.flows import settings as config
from awardwatch.flows import tasks
from awardwatch.flows.core import changes, connect, feeds
from awardwatch.flows.core.jobs import check_job
from awardwatch.flows.core.progress import Progress
from awardwatch.flows.core.summaries import job_markdown, status_markdown
from awardwatch.flows.sources.base import NIGHTLY
from awardwatch.warehouse.store import open_store


@flow(name="nightly", validate_parameters=False)
def nightly(sources: list[str] | None = None, agencies: list[str] | None = None, lookback_days: int | None = None,
            warehouse: str | None = None, progress: Progress | None = None) -> dict:
    """Extract what changed upstream since each feed's watermark, load it, reconcile, publish one snapshot."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, lookback_days=lookback_days)
    names, chosen = list(sources or s.sources), list(agencies or s.agencies)
    check_job(s, NIGHTLY, names, chosen, None, None)
    progress = tasks.logged(progress)
    con = connect(s)
    try:
        job = feeds.run_feeds(con, s, NIGHTLY, names, chosen, land=tasks.lander(s), progress=progress)
        progress.on_stage("reconciling with USAspending's published totals")
        checked = tasks.check_totals(con, s, chosen, job.run_ids)
        progress.on_stage("publishing the snapshot")
        snapshot = tasks.publish(con, s, job.run_ids)
        health = tasks.check_status(con, s)
    finally:
        con.close()
    tasks.report("nightly", job.done, job.results, checked)
    create_markdown_artifact(job_markdown("nightly", job.done, snapshot, reconciliation=checked), key="nightly-summary",
                             description="awardwatch nightly run")
    create_markdown_artifact(status_markdown(health), key="nightly-status", description="awardwatch status after the nightly run")
    if snapshot.published:  # what changed overnight for the watchlist: beside the snapshot and as an artifact
        store = open_store(s.snapshots)
        if found := changes.publish_changes(store, snapshot.snapshot_id, s.watchlist):
            tasks.changes_artifact(found[0], found[1], store.url)
    return {**job.summary(snapshot), "reconciliation": checked, "status": health}
