"""Prefect flow `backfill`: a date range of history, in chunks, resumable, one snapshot at the end.

Sources: ``usaspending`` (bulk downloads by action date, one calendar month per
chunk), ``fpds`` (the ATOM feed by last-modified date, one month per chunk) and ``archive`` (Award Data Archive Full files, one department and fiscal
year per chunk; sets the watermark from which the nightly job applies Delta files).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows import jobs
from flows import settings as config
from flows.output import job_markdown
from flows.reconcile import plan_chunks
from flows.sources import archive, usaspending
from flows.sources.http import worth_retrying
from schemas.errors import InputError
from warehouse import feeds


@task(name="extract-usaspending", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
def extract(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> list[Path]:
    return [jobs.extract_usaspending(s, agencies, window, into, "action_date")]


@task(name="extract-archive-full", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
def extract_full(s: config.Settings, toptier: str, window: jobs.Window, into: Path) -> list[Path]:
    return jobs.extract_archive_full(s, toptier, window.end.year, into)[0]


@task(name="extract-fpds", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
def extract_fpds(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> list[Path]:
    return [jobs.extract_fpds(s, agencies, window, into / f"{window.start:%Y%m%d}")]


@task(name="load-chunk")
def load_chunk(s: config.Settings, source: str, scope: str, paths: list[Path], window: jobs.Window, backfill_id: str):
    if source == "usaspending":  # 0 rows where the chunk before had some: a name filter that stopped matching
        for path in paths:
            jobs.check_not_empty(s, scope, window, path, "action_date")
    result = jobs.load(s, paths, source=source, command="backfill",
                       parameters={"source": source, "scope": scope, "chunk": str(window), "backfill_id": backfill_id})
    jobs.record_chunk(s, backfill_id, source, scope, window, result)
    for path in paths:
        path.unlink(missing_ok=True)
    return result


@task(name="publish")
def publish(s: config.Settings, run_ids: list[str]):
    return jobs.publish(s, run_ids)


def chunked(s: config.Settings, source: str, scope: str, chunks: list[jobs.Window], submit: Callable, backfill_id: str):
    """Downloads up to ``backfill_concurrency`` chunks ahead (``submit(window, into)`` returns a
    future of the landed paths); loads them one at a time, in order. Returns the source's run,
    the load results and the names of the files loaded."""
    done = jobs.finished_chunks(s, backfill_id)
    todo = [w for w in chunks if w.start not in done]
    plan_chunks(s, backfill_id, source, scope, [(w.start, w.end) for w in todo])  # `awardwatch status` names chunks that never finish
    into = jobs.landing(s, source, f"backfill-{backfill_id}")
    pending: deque = deque()
    results, names = [], []

    def load_next() -> None:
        ready, future = pending.popleft()
        paths = future.result()
        names.extend(p.name for p in paths)
        results.append(load_chunk(s, source, scope, paths, ready, backfill_id))

    for window in todo:
        pending.append((window, submit(window, into)))
        if len(pending) >= max(1, s.backfill_concurrency):
            load_next()
    while pending:
        load_next()
    skipped = [str(w) for w in chunks if w.start in done]
    return jobs.SourceRun(source, scope, [str(w) for w in todo], None, None, skipped), results, names


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(max_workers=8))
def backfill(start: date, end: date, agencies: list[str] | None = None, source: str = "usaspending",
             concurrency: int | None = None, warehouse: str | None = None) -> dict:
    """Load history from start to end (action dates), in chunks; finished chunks are skipped on a re-run."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, backfill_concurrency=concurrency)
    chosen = usaspending.agencies(list(agencies or s.agencies))
    names = [a.abbreviation for a in chosen]
    done, results = [], []
    retrying = {"retries": s.task_retries}
    monthly = {"usaspending": (usaspending.scope, extract), "fpds": (jobs.fpds_scope, extract_fpds)}  # fpds: by LAST_MOD_DATE
    if source in monthly:
        scope_of, extract_month = monthly[source]
        scope = scope_of(chosen)
        chunks = [jobs.Window(a, b) for a, b in usaspending.months(start, end)]
        run, got, _ = chunked(s, source, scope, chunks, lambda w, into: extract_month.with_options(**retrying).submit(s, names, w, into),
                              feeds.backfill_id(source, scope, start, end, "month"))
        done.append(run)
        results += got
    elif source == "archive":
        for toptier in usaspending.toptier_codes(chosen):
            scope = jobs.archive_scope(toptier)
            years = range(jobs.fiscal_year(start), jobs.fiscal_year(end) + 1)
            chunks = [jobs.Window(date(fy - 1, 10, 1), date(fy, 9, 30)) for fy in years]
            run, got, files = chunked(s, source, scope, chunks,
                                      lambda w, into, t=toptier: extract_full.with_options(**retrying).submit(s, t, w, into),
                                      feeds.backfill_id(source, scope, start, end, "fiscal_year"))
            generated = [f.generated for f in map(lambda n: archive.parse_name(n, ""), files) if f]
            if got and generated:  # the nightly job applies the Delta files generated after this date
                run.watermark = jobs.advance_watermark(s, source, scope, max(generated), got[-1].run_id)
            done.append(run)
            results += got
    else:
        raise InputError(f"unknown backfill source {source!r}; known: usaspending, archive, fpds")
    snapshot = publish(s, [r.run_id for r in results])
    create_markdown_artifact(job_markdown("backfill", done, snapshot, results), key="backfill-summary", description="awardwatch backfill")
    return jobs.summary(done, snapshot, results)
