"""Prefect flow `backfill`: a date range of history, in chunks, resumable, one snapshot at the end.

Feeds: ``usaspending`` (bulk downloads by action date, one calendar month per chunk), ``fpds`` (the
ATOM feed by last-modified date, one month per chunk), ``archive`` (Award Data Archive Full files, one
department and fiscal year per chunk; sets the watermark from which the nightly job applies Delta
files) and ``sample`` (generated, offline).

The map stage of each chunk (fetch, read, validate, transform, write staged Parquet) is a task of the flow's
task runner: threads in this process, or a Dask cluster (``AWARDWATCH_DASK_ADDRESS``, or
``AWARDWATCH_DASK_WORKERS`` local workers; the CLI's ``--dask-address`` / ``--workers`` run
``backfill.with_options(task_runner=tasks.task_runner(s))``). One writer, this flow, merges the staged
chunks into the warehouse in chunk order, so the result is the same as a serial run's.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from awardwatch.flows import settings as config
from awardwatch.flows import tasks
from awardwatch.flows.core import connect, feeds
from awardwatch.flows.core.jobs import check_job
from awardwatch.flows.core.progress import Progress
from awardwatch.flows.core.summaries import job_markdown
from awardwatch.flows.sources.base import BACKFILL


@flow(name="backfill", task_runner=tasks.task_runner(config.load()), validate_parameters=False)
def backfill(start: date, end: date, agencies: list[str] | None = None, source: str = "usaspending",
             concurrency: int | None = None, warehouse: str | None = None, progress: Progress | None = None) -> dict:
    """Load history from start to end, in chunks; finished chunks are skipped on a re-run."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, backfill_concurrency=concurrency)
    start, end = date.fromisoformat(str(start)), date.fromisoformat(str(end))  # a deployment passes ISO strings
    check_job(s, BACKFILL, [source], agencies, start, end)
    progress = tasks.logged(progress)
    con = connect(s)
    try:
        job = feeds.run_feeds(con, s, BACKFILL, [source], agencies, start=start, end=end, stage=tasks.stager(s),
                              progress=progress)
        progress.on_stage("publishing the snapshot")
        snapshot = tasks.publish(con, s, job.run_ids)
    finally:
        con.close()
    tasks.report("backfill", job.done, job.results)
    create_markdown_artifact(job_markdown("backfill", job.done, snapshot, job.results), key="backfill-summary",
                             description="awardwatch backfill")
    return job.summary(snapshot)
