"""Prefect flow `nightly`: every configured source since its watermark, one load per source, one snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows import jobs, reconcile, reports
from flows import settings as config
from flows.output import job_markdown, status_markdown
from flows.sources import usaspending
from flows.sources.http import worth_retrying
from schemas.errors import AwardwatchError, InputError
from warehouse.store import open_store


@task(name="extract-usaspending", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
def extract(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> Path:
    return jobs.extract_usaspending(s, agencies, window, into, "last_modified_date")


@task(name="load")
def load(s: config.Settings, paths: list[Path], source: str, parameters: dict):
    return jobs.load(s, paths, source=source, command="run", parameters=parameters)


@task(name="reconcile")
def check_totals(s: config.Settings, agencies: list[str], run_ids: list[str]) -> dict:
    """Compares the loaded agencies with USAspending's published totals (a mismatch does not block the publish)."""
    return reconcile.after_load(s, agencies, run_ids)


@task(name="status")
def check_status(s: config.Settings) -> dict:
    """``awardwatch status`` after the run, for its artifact (a failure to check is itself reported, not raised)."""
    try:
        return reconcile.status(s).as_dict()
    except AwardwatchError as exc:
        return {"ok": False, "problems": [{"kind": "check", "scope": "", "message": f"status not checked: {exc}"}]}


@task(name="publish")
def publish(s: config.Settings, run_ids: list[str]):
    return jobs.publish(s, run_ids)


def since_watermark(s: config.Settings, source: str, scope: str, extract_window, agencies: list[str] | None) -> list[jobs.SourceRun]:
    """Windows from the watermark (minus the look-back) to today: land each, load them in one run,
    then move the watermark and remove the landed files."""
    today = jobs.today()
    windows = jobs.nightly_windows(s, source, scope, today)
    into = jobs.landing(s, source, today.isoformat())
    paths = [extract_window.with_options(retries=s.task_retries)(s, agencies, w, into) for w in windows]
    if source == "usaspending":  # 0 rows where the last run had some: a name filter that stopped matching
        for w, path in zip(windows, paths):
            jobs.check_not_empty(s, scope, w, path, "last_modified_date")
    result = load(s, paths, source, {"source": source, "scope": scope, "windows": [str(w) for w in windows]})
    mark = jobs.advance_watermark(s, source, scope, windows[-1].end, result.run_id)
    jobs.remove_landed(into)
    return [jobs.SourceRun(source, scope, [str(w) for w in windows], result, mark)]


def run_usaspending(s: config.Settings, agencies: list[str] | None) -> list[jobs.SourceRun]:
    """USAspending bulk downloads of the actions modified since the watermark."""
    return since_watermark(s, "usaspending", usaspending.scope(usaspending.agencies(agencies)), extract, agencies)


@task(name="extract-archive-deltas", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
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


@task(name="extract-fpds", retries=2, retry_delay_seconds=[60, 300], retry_condition_fn=worth_retrying)
def extract_fpds(s: config.Settings, agencies: list[str] | None, window: jobs.Window, into: Path) -> Path:
    return jobs.extract_fpds(s, agencies, window, into)


def run_fpds(s: config.Settings, agencies: list[str] | None) -> list[jobs.SourceRun]:
    """FPDS ATOM feed: actions and deletions modified since the watermark."""
    return since_watermark(s, "fpds", jobs.fpds_scope(usaspending.agencies(agencies)), extract_fpds, agencies)


SOURCES = {"usaspending": run_usaspending, "archive": run_archive, "fpds": run_fpds}


@flow(name="nightly")
def nightly(sources: list[str] | None = None, agencies: list[str] | None = None, lookback_days: int | None = None,
            warehouse: str | None = None) -> dict:
    """Extract what changed upstream since each source's watermark, load it, publish one snapshot."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None, lookback_days=lookback_days)
    chosen = list(sources or s.sources)
    unknown = [x for x in chosen if x not in SOURCES]
    if unknown:
        raise InputError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    done = [run for name in chosen for run in SOURCES[name](s, list(agencies or s.agencies))]
    run_ids = [d.result.run_id for d in done if d.result]
    checked = check_totals(s, list(agencies or s.agencies), run_ids)
    snapshot = publish(s, run_ids)
    create_markdown_artifact(job_markdown("nightly", done, snapshot, reconciliation=checked), key="nightly-summary",
                             description="awardwatch nightly run")
    health = check_status(s)
    create_markdown_artifact(status_markdown(health), key="nightly-status", description="awardwatch status after the nightly run")
    if snapshot.published:  # what changed overnight for the watchlist: beside the snapshot and as an artifact
        found = reports.publish_changes(open_store(s.snapshots), snapshot.snapshot_id, s.watchlist)
        if found:
            create_markdown_artifact(found[1], key="nightly-changes", description="awardwatch: changes since the previous snapshot")
    return {**jobs.summary(done, snapshot), "reconciliation": checked, "status": health}
