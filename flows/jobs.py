"""Plain-Python steps of the nightly and backfill jobs (the Prefect flows only wire them).

Each feed lands raw files first (under ``landing/`` beside the warehouse), then the
file source loads them; a watermark moves only after its load succeeded, and
landed files are removed only then, so a failed load can be replayed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from flows import pipeline
from flows.settings import Settings
from flows.sources import archive, fpds, usaspending
from flows.sources.http import Http
from warehouse import db, feeds, runs
from warehouse.runs import Counts, as_dict

# Progress display of the CLI (None under a deployment); set by flows.cli.
PROGRESS: pipeline.Progress | None = None


@dataclass
class Window:
    start: date
    end: date

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


@dataclass
class SourceRun:
    """What one source did in a job."""

    source: str
    scope: str
    windows: list[str]
    result: pipeline.RunResult | None = None
    watermark: str | None = None
    skipped: list[str] = field(default_factory=list)


def http_for(s: Settings) -> Http:
    return Http(base_url=s.usaspending_url, timeout=s.http_timeout, attempts=s.http_attempts, backoff=s.http_backoff)


def landing(s: Settings, source: str, label: str) -> Path:
    return s.warehouse.parent / "landing" / source / label


def nightly_windows(s: Settings, source: str, scope: str, today: date) -> list[Window]:
    """From the watermark minus the look-back (or, without one, today minus the look-back) to today."""
    mark = watermark_of(s, source, scope)
    start = (mark.date() if mark else today) - timedelta(days=s.lookback_days)  # re-read late-reported actions
    return [Window(a, b) for a, b in usaspending.windows(start, today)]


def extract_usaspending(s: Settings, agencies: list[str] | None, window: Window, into: Path, date_type: str) -> Path:
    """Lands one bulk download (ZIP) of the window; returns its path."""
    http = http_for(s)
    try:
        job = usaspending.BulkDownload(http, poll_every=s.poll_every, poll_timeout=s.poll_timeout)
        return job.fetch(usaspending.agencies(agencies), window.start, window.end, into, date_type=date_type)
    finally:
        http.close()


def previous_window(s: Settings, source: str, scope: str, window: Window, date_type: str) -> tuple[str, str, int] | None:
    """The window loaded before this one for the same source and scope, as the warehouse records it:
    (its dates, its run, rows read). By action date (backfill chunks): the done chunk ending latest
    before this window starts, of any backfill. By last-modified date (nightly): the latest
    succeeded nightly run of the scope."""
    con = db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
    try:
        if date_type == "action_date":
            found = con.execute(
                "SELECT chunk_start || '..' || chunk_end, run_id, rows_read FROM backfill_chunks WHERE source = ? AND scope = ? "
                "AND status = 'done' AND chunk_end < ? ORDER BY chunk_end DESC, finished_at DESC LIMIT 1",
                [source, scope, window.start]).fetchone()
        else:
            found = con.execute(
                "SELECT coalesce(json_extract_string(parameters, '$.windows[-1]'), ''), run_id, rows_read FROM runs "
                "WHERE status = 'succeeded' AND command = 'run' AND json_extract_string(parameters, '$.source') = ? "
                "AND json_extract_string(parameters, '$.scope') = ? ORDER BY started_at DESC LIMIT 1",
                [source, scope]).fetchone()
    finally:
        con.close()
    return tuple(found) if found else None


def check_not_empty(s: Settings, scope: str, window: Window, path: Path, date_type: str) -> None:
    """A bulk download of named agencies with no row, where the previous window of the same scope had
    rows, is an error (agency names are exact-match filters: a name that stopped matching gives 0 rows,
    not an error): nothing is loaded, the chunk is not done, the watermark does not move."""
    if s.allow_empty or usaspending.has_rows(path):
        return
    before = previous_window(s, "usaspending", scope, window, date_type)
    if before and before[2] > 0:
        raise usaspending.EmptyDownload(
            f"USAspending download {path.name} for {scope} {window} holds 0 rows, but the previous window "
            f"{before[0] or '(nightly)'} (run {before[1]}) had {before[2]:,}; an agency name that no longer matches "
            "exactly gives 0 rows: check the names in flows/sources/usaspending.py AGENCIES against the broker's "
            "agency_codes.csv; nothing was loaded (AWARDWATCH_ALLOW_EMPTY=true accepts it for a quiet agency)")


def archive_scope(toptier: str) -> str:
    return f"archive:{toptier}"


def extract_archive_full(s: Settings, toptier: str, fiscal_year: int, into: Path) -> tuple[list[Path], date | None]:
    """Lands the newest Full file of a department and fiscal year; returns it and its generation date."""
    http = http_for(s)
    try:
        found = archive.full_file(archive.listing(http, toptier, fiscal_year), fiscal_year)
        if found is None:
            return [], None
        return archive.land(http, [found], into), found.generated
    finally:
        http.close()


def extract_archive_deltas(s: Settings, toptier: str, after: date | None, into: Path) -> tuple[list[Path], date | None]:
    """Lands the Delta files generated after ``after``, oldest first; returns them and the newest date."""
    http = http_for(s)
    try:
        deltas = archive.deltas_after(archive.listing(http, toptier, fiscal_year(today())), after)
        return archive.land(http, deltas, into), (deltas[-1].generated if deltas else None)
    finally:
        http.close()


def fpds_scope(chosen: list[usaspending.Agency]) -> str:
    return "contracting:" + ",".join(sorted(a.abbreviation for a in chosen))


def extract_fpds(s: Settings, agencies: list[str] | None, window: Window, into: Path) -> Path:
    """Lands the PUBLIC and DELETED feed pages of a LAST_MOD_DATE window for the agencies, checks each
    query's count against the feed's announced total, and writes them as one canonical CSV."""
    http = Http(base_url=s.fpds_url, timeout=s.http_timeout, attempts=s.http_attempts, backoff=s.http_backoff)
    try:
        feed = fpds.FpdsFeed(http, s.fpds_url, concurrency=s.fpds_concurrency)
        pages: list[fpds.Page] = []
        announced = 0
        for agency in usaspending.agencies(agencies):
            for kind in ("PUBLIC", "DELETED"):
                got, total = feed.window(fpds.agency_term(agency), window.start, window.end, into / agency.abbreviation, kind)
                pages += got
                announced += total
        for folder in {p.path.parent for p in pages}:
            fpds.write_index([p for p in pages if p.path.parent == folder], folder)
        return fpds.to_csv(pages, announced, into / f"fpds_{window.start:%Y%m%d}_{window.end:%Y%m%d}.csv", window=str(window))
    finally:
        http.close()


def watermark_of(s: Settings, source: str, scope: str) -> datetime | None:
    con = db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
    try:
        return feeds.watermark(con, source, scope)
    finally:
        con.close()


def load(s: Settings, paths: list[Path], *, source: str, command: str, parameters: dict) -> pipeline.RunResult:
    return pipeline.ingest(paths, warehouse=s.warehouse, source=source, command=command, parameters=parameters,
                           batch_rows=s.batch_rows, max_rejected_share=s.max_rejected_share, threads=s.threads,
                           progress=PROGRESS, lock_wait=s.lock_wait)


def advance_watermark(s: Settings, source: str, scope: str, until: date, run_id: str) -> str:
    value = datetime.combine(until, time())
    con = db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
    try:
        feeds.set_watermark(con, source, scope, value, run_id)
    finally:
        con.close()
    return value.date().isoformat()


def record_chunk(s: Settings, backfill: str, source: str, scope: str, window: Window, result: pipeline.RunResult) -> None:
    con = db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
    try:
        feeds.chunk_done(con, backfill, source, scope, window.start, window.end, result.run_id, result.counts.read)
    finally:
        con.close()


def finished_chunks(s: Settings, backfill: str) -> set[date]:
    con = db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
    try:
        return feeds.done_chunks(con, backfill)
    finally:
        con.close()


def publish(s: Settings, run_ids: list[str]):
    """Publishes one snapshot and records its id on the runs it reflects."""
    return pipeline.publish(s.warehouse, s.snapshots, keep=s.keep_snapshots, threads=s.threads, lock_wait=s.lock_wait,
                            run_ids=run_ids)


def remove_landed(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def today() -> date:
    return runs.now().date()


def fiscal_year(day: date) -> int:
    return day.year + (day.month >= 10)


def summary(done: list[SourceRun], snapshot, chunk_results: list[pipeline.RunResult] | None = None) -> dict:
    """A job's result as plain data (the flow's return value)."""
    results = [d.result for d in done if d.result] + list(chunk_results or [])
    total = Counts()
    for r in results:
        total += r.counts
    return {
        "runs": [r.run_id for r in results],
        "sources": {d.source: {"scope": d.scope, "windows": d.windows, "watermark": d.watermark, "skipped": d.skipped} for d in done},
        "counts": as_dict(total),
        "snapshot_id": snapshot.snapshot_id if snapshot else None,
        "snapshot": snapshot.message if snapshot else None,
    }
