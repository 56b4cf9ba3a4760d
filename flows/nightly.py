"""Prefect flow `nightly`: every configured source since its watermark, one load per source, one snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows import jobs, settings as config
from flows.output import job_markdown
from flows.sources import usaspending


@task(name="extract-usaspending", retries=2, retry_delay_seconds=[60, 300])
def extract(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> Path:
    return jobs.extract_usaspending(s, agencies, window, into, "last_modified_date")


@task(name="load")
def load(s: config.Settings, paths: list[Path], source: str, parameters: dict):
    return jobs.load(s, paths, source=source, command="run", parameters=parameters)


@task(name="publish")
def publish(s: config.Settings, run_ids: list[str]):
    return jobs.publish(s, run_ids)


def run_usaspending(s: config.Settings, agencies: list[str] | None) -> jobs.SourceRun:
    scope = usaspending.scope(usaspending.agencies(agencies))
    today = jobs.today()
    windows = jobs.nightly_windows(s, "usaspending", scope, today)
    into = jobs.landing(s, "usaspending", today.isoformat())
    paths = [extract.with_options(retries=s.task_retries)(s, agencies, w, into) for w in windows]
    result = load(s, paths, "usaspending", {"source": "usaspending", "scope": scope, "windows": [str(w) for w in windows]})
    mark = jobs.advance_watermark(s, "usaspending", scope, windows[-1].end, result.run_id)
    jobs.remove_landed(into)
    return jobs.SourceRun("usaspending", scope, [str(w) for w in windows], result, mark)


@task(name="extract-archive-deltas", retries=2, retry_delay_seconds=[60, 300])
def extract_deltas(s: config.Settings, toptier: str, after, into: Path):
    return jobs.extract_archive_deltas(s, toptier, after, into)


def run_archive(s: config.Settings, agencies: list[str] | None) -> list[jobs.SourceRun]:
    """Award Data Archive: the Delta files generated since each department's watermark (set by a Full backfill)."""
    done = []
    for toptier in usaspending.toptier_codes(usaspending.agencies(agencies)):
        scope = jobs.archive_scope(toptier)
        mark = jobs.watermark_of(s, "archive", scope)
        if mark is None:
            done.append(jobs.SourceRun("archive", scope, [], skipped=["no Full file loaded yet: run `awardwatch backfill --source archive` first"]))
            continue
        into = jobs.landing(s, "archive", jobs.today().isoformat())
        paths, newest = extract_deltas.with_options(retries=s.task_retries)(s, toptier, mark.date(), into)
        if not paths:
            done.append(jobs.SourceRun("archive", scope, [], watermark=mark.date().isoformat()))
            continue
        result = load(s, paths, "archive", {"source": "archive", "scope": scope, "files": [p.name for p in paths]})
        done.append(jobs.SourceRun("archive", scope, [p.name for p in paths], result, jobs.advance_watermark(s, "archive", scope, newest, result.run_id)))
        jobs.remove_landed(into)
    return done


@task(name="extract-fpds", retries=2, retry_delay_seconds=[60, 300])
def extract_fpds(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> Path:
    return jobs.extract_fpds(s, agencies, window, into)


def run_fpds(s: config.Settings, agencies: list[str] | None) -> list[jobs.SourceRun]:
    """FPDS ATOM feed: actions and deletions modified since the watermark (minus the look-back)."""
    scope = jobs.fpds_scope(usaspending.agencies(agencies))
    today = jobs.today()
    windows = jobs.nightly_windows(s, "fpds", scope, today)
    into = jobs.landing(s, "fpds", today.isoformat())
    paths = [extract_fpds.with_options(retries=s.task_retries)(s, agencies, w, into) for w in windows]
    result = load(s, paths, "fpds", {"source": "fpds", "scope": scope, "windows": [str(w) for w in windows]})
    mark = jobs.advance_watermark(s, "fpds", scope, windows[-1].end, result.run_id)
    jobs.remove_landed(into)
    return [jobs.SourceRun("fpds", scope, [str(w) for w in windows], result, mark)]


SOURCES = {"usaspending": lambda s, a: [run_usaspending(s, a)], "archive": run_archive, "fpds": run_fpds}


@flow(name="nightly")
def nightly(sources: list[str] | None = None, agencies: list[str] | None = None, lookback_days: int | None = None,
            warehouse: str | None = None) -> dict:
    """Extract what changed upstream since each source's watermark, load it, publish one snapshot."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, lookback_days=lookback_days)
    chosen = list(sources or s.sources)
    unknown = [x for x in chosen if x not in SOURCES]
    if unknown:
        raise jobs.InputError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    done = [run for name in chosen for run in SOURCES[name](s, list(agencies or s.agencies))]
    snapshot = publish(s, [d.result.run_id for d in done if d.result])
    create_markdown_artifact(job_markdown("nightly", done, snapshot), key="nightly-summary", description="awardwatch nightly run")
    return jobs.summary(done, snapshot)
