"""Prefect flow `backfill`: a date range of history, in chunks, resumable, one snapshot at the end."""

from __future__ import annotations

from collections import deque
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows import jobs, settings as config
from flows.output import job_markdown
from flows.sources import usaspending
from warehouse import feeds


@task(name="extract-usaspending", retries=2, retry_delay_seconds=[60, 300])
def extract(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> Path:
    return jobs.extract_usaspending(s, agencies, window, into, "action_date")


@task(name="load-chunk")
def load_chunk(s: config.Settings, path: Path, window: jobs.Window, backfill_id: str, scope: str):
    result = jobs.load(s, [path], source="usaspending", command="backfill",
                       parameters={"source": "usaspending", "scope": scope, "chunk": str(window), "backfill_id": backfill_id})
    jobs.record_chunk(s, backfill_id, "usaspending", scope, window, result)
    path.unlink(missing_ok=True)
    return result


@task(name="publish")
def publish(s: config.Settings, run_ids: list[str]):
    return jobs.publish(s, run_ids)


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(max_workers=8))
def backfill(start: date, end: date, agencies: list[str] | None = None, concurrency: int | None = None,
             warehouse: str | None = None) -> dict:
    """Load contract transactions by action date from start to end, one month per chunk.

    Finished chunks are recorded; running the same backfill again skips them. Up to
    ``concurrency`` chunks download at once; loads run one at a time, in order."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, backfill_concurrency=concurrency)
    chosen = list(agencies or s.agencies)
    scope = usaspending.scope(usaspending.agencies(chosen))
    backfill_id = feeds.backfill_id("usaspending", scope, start, end, "month")
    done = jobs.finished_chunks(s, backfill_id)
    chunks = [jobs.Window(a, b) for a, b in usaspending.months(start, end)]
    todo = [w for w in chunks if w.start not in done]
    into = jobs.landing(s, "usaspending", f"backfill-{backfill_id}")
    pending: deque = deque()
    results = []
    for window in todo:
        pending.append((window, extract.with_options(retries=s.task_retries).submit(s, chosen, window, into)))
        if len(pending) >= max(1, s.backfill_concurrency):
            window_done, future = pending.popleft()
            results.append(load_chunk(s, future.result(), window_done, backfill_id, scope))
    while pending:
        window_done, future = pending.popleft()
        results.append(load_chunk(s, future.result(), window_done, backfill_id, scope))
    snapshot = publish(s, [r.run_id for r in results])
    run = jobs.SourceRun("usaspending", scope, [str(w) for w in todo], None, None, [str(w) for w in chunks if w.start in done])
    create_markdown_artifact(job_markdown("backfill", [run], snapshot, results), key="backfill-summary", description="awardwatch backfill")
    return jobs.summary([run], snapshot, results)
