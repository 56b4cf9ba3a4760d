"""One loop for the nightly job and for backfills: every feed, every scope, every window; land, check, load.

    run_feeds(settings, NIGHTLY | BACKFILL, ["usaspending", ...], agencies, start=, end=, land=, progress=)

- **Nightly**: the windows since each scope's watermark; all of a scope's windows are landed, checked,
  then loaded as one run; the watermark moves only after that load succeeded, and the landed files are
  removed only then, so a failed load can be replayed.
- **Backfill**: the feed's chunks of start..end (months, or fiscal years for the archive), minus the ones a
  previous attempt of the same backfill finished; up to ``backfill_concurrency`` chunks land ahead while
  one loads; each chunk is one run, recorded in ``backfill_chunks`` (the archive's watermark moves too).

The job holds one warehouse connection from its first read to its end, and settles once (company
resolution over what its runs touched, marts, invariants: ``flows.core.ingest.settle``). Landing is
passed in (``land``): the Prefect flows pass a task with retries, submitted to their task runner; by
default it runs in place. Publishing is the caller's next step (``flows.core.publish``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from awardwatch.flows.core import ingest
from awardwatch.flows.core.jobs import check_job
from awardwatch.flows.core.progress import Progress
from awardwatch.flows.settings import Settings
from awardwatch.flows.sources import feed
from awardwatch.flows.sources.base import BACKFILL, NIGHTLY, Feed, Landed, Scope, Window
from awardwatch.schemas.errors import AwardwatchError
from awardwatch.warehouse import feeds, runs
from awardwatch.warehouse import reconcile as checks
from awardwatch.warehouse.runs import Counts, as_dict
from awardwatch.warehouse.store import Store, open_store

Lander = Callable[[Settings, str, Scope, Window, Path, str], object]  # -> Landed, or a future of one (.result())
Stager = Callable[[Settings, str, Scope, Window, Path], object]  # -> Chunk, or a future of one


@dataclass
class Chunk:
    """A backfill chunk after its map stage: what the feed landed, and its files staged (not merged yet)."""

    landed: Landed
    staged: ingest.Staged


@dataclass
class FeedRun:
    """What one feed did for one scope in a job."""

    source: str
    scope: str
    windows: list[str]
    result: ingest.RunResult | None = None  # the nightly's one run
    watermark: str | None = None
    skipped: list[str] = field(default_factory=list)  # finished chunks, or why the scope did not run
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should do next (e.g. a backfill first)


@dataclass
class Job:
    """A nightly run or a backfill: its feeds' runs and every load result, in order."""

    mode: str
    done: list[FeedRun] = field(default_factory=list)
    results: list[ingest.RunResult] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.results]

    def summary(self, snapshot=None) -> dict:
        """The job as plain data (the flows' return value)."""
        total = Counts()
        for r in self.results:
            total += r.counts
        return {
            "runs": self.run_ids,
            "sources": {d.source: {"scope": d.scope, "windows": d.windows, "watermark": d.watermark, "skipped": d.skipped}
                        for d in self.done},
            "notes": [n for d in self.done for n in d.notes],
            "counts": as_dict(total),
            "snapshot_id": snapshot.snapshot_id if snapshot else None,
            "snapshot": snapshot.message if snapshot else None,
        }


def land_now(s: Settings, name: str, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
    """Lands one window in this thread (the default ``Lander``; the flows wrap it in a Prefect task)."""
    return feed(name, s).land(scope, window, into, mode)


def stage_now(s: Settings, name: str, scope: Scope, window: Window, into: Path, worker: str = "") -> Chunk:
    """The map stage of a backfill chunk, in this process (the default ``Stager``; the flows run it as a task,
    on a Dask worker when there is a cluster): land the window, then read, validate and transform its files
    into staged Parquet under ``into`` (a folder the writer can reach). The landed raw files are removed.
    With an s3:// staging URL, ``into`` is the chunk's key there: the chunk is staged in a temporary folder
    of this machine, then uploaded (a failed upload fails the chunk)."""
    store = staging_store(s)
    if store is None:
        return _stage_in(s, name, scope, window, into, worker)
    with tempfile.TemporaryDirectory(prefix="awardwatch-chunk-") as here:
        chunk = _stage_in(s, name, scope, window, Path(here), worker)
        chunk.staged = chunk.staged.upload(store, Path(here), into.as_posix())
    return chunk


def _stage_in(s: Settings, name: str, scope: Scope, window: Window, into: Path, worker: str) -> Chunk:
    landed = feed(name, s).land(scope, window, into / "landed", BACKFILL)
    staged = ingest.stage(landed.paths, into / "staged", source=name, batch_rows=s.batch_rows,
                          max_rejected_share=s.max_rejected_share, worker=worker)
    landed.rows = sum(got.read for _, got, _, _ in staged.files)
    for path in landed.paths:
        path.unlink(missing_ok=True)
    shutil.rmtree(into / "landed", ignore_errors=True)
    return Chunk(landed, staged)


def staging_store(s: Settings) -> Store | None:
    """The object store a backfill stages its chunks in (an s3:// AWARDWATCH_STAGING_URL), or None: a folder."""
    return open_store(s.chunk_staging) if s.chunk_staging.startswith("s3://") else None


def run_feeds(con, s: Settings, mode: str, names: list[str], agencies: list[str] | None = None, *, start: date | None = None,
              end: date | None = None, land: Lander = land_now, stage: Stager = stage_now,
              progress: Progress | None = None) -> Job:
    """Runs the feeds ``names`` for the agencies (default: the settings') on the job's connection, settles
    once (also when a feed fails after some loads: those stay, settled), returns the job."""
    chosen = check_job(s, mode, names, agencies, start, end)
    job = Job(mode)
    step = _nightly if mode == NIGHTLY else _backfill
    try:
        for name in names:
            f = feed(name, s)
            for scope in f.scopes(chosen):
                job.done.append(step(con, s, f, scope, job, land if mode == NIGHTLY else stage, progress or Progress(), start, end))
    except Exception:  # what loaded before the failure is settled, so the warehouse stays consistent and publishable
        if job.results:
            ingest.settle(con, job.results, progress)
        raise
    ingest.settle(con, job.results, progress)
    return job


def _load(con, s: Settings, f: Feed, scope: Scope, paths: list[Path], command: str, parameters: dict,
          progress: Progress | None, staged: ingest.Staged | None = None) -> ingest.RunResult:
    return ingest.run(con, paths, warehouse=s.warehouse, source=f.name, command=command,
                      parameters={"source": f.name, "scope": scope.name, **parameters}, batch_rows=s.batch_rows,
                      max_rejected_share=s.max_rejected_share, progress=progress, staged=staged)


def _nightly(con, s: Settings, f: Feed, scope: Scope, job: Job, land: Lander, progress, *_) -> FeedRun:
    today = runs.now().date()
    mark = feeds.watermark(con, f.name, scope.name)
    windows = f.nightly_windows(scope, mark, today)
    if isinstance(windows, str):
        return FeedRun(f.name, scope.name, [], skipped=[windows])
    into = landing(s, f.name, today.isoformat())
    notes = [] if mark else [first_nightly(s, f, scope, windows)]
    landed = []
    for w in windows:
        progress.on_stage(f"landing {f.name} {scope.name} {w}")
        landed.append((w, _result(land(s, f.name, scope, w, into, NIGHTLY))))
    for w, got in landed:
        f.check(con, scope, w, got, NIGHTLY)
    paths = [p for _, got in landed for p in got.paths]
    labels = [label for _, got in landed for label in got.labels]
    shown = [str(w) for w in windows]
    if not paths:
        return FeedRun(f.name, scope.name, [], watermark=mark.date().isoformat() if mark else None, notes=notes)
    progress.on_stage(f"loading {f.name} {scope.name}")
    extra = {"windows": shown} if f.chunk == "month" else {"files": labels}
    result = _load(con, s, f, scope, paths, "run", extra, progress)
    job.results.append(result)
    moved = max((got.watermark for _, got in landed if got.watermark), default=None)
    if moved:
        feeds.set_watermark(con, f.name, scope.name, datetime.combine(moved, time()), result.run_id)
    shutil.rmtree(into, ignore_errors=True)
    return FeedRun(f.name, scope.name, shown if f.chunk == "month" else labels, result,
                   moved.isoformat() if moved else None, files=labels, notes=notes)


def _backfill(con, s: Settings, f: Feed, scope: Scope, job: Job, stage: Stager, progress, start: date, end: date) -> FeedRun:
    chunks = f.backfill_windows(start, end)
    backfill = feeds.backfill_id(f.name, scope.name, start, end, f.chunk)
    finished = feeds.done_chunks(con, backfill)
    todo = [w for w in chunks if w.start not in finished]
    if todo:  # `awardwatch status` names a planned chunk that never finished
        checks.plan_chunks(con, backfill, f.name, scope.name, [(w.start, w.end) for w in todo], runs.now())
    store, key = staging_store(s), f"backfill-{backfill}"
    into = (s.warehouse.parent / "staged" if store else Path(s.chunk_staging)) / key  # with a store: the writer's downloads
    pending: deque = deque()
    moved = None
    files: list[str] = []

    def load_next() -> None:
        nonlocal moved
        window, future = pending.popleft()
        params = {"chunk": str(window), "backfill_id": backfill}
        progress.on_stage(f"staging {f.name} {scope.name} {window}")
        try:
            chunk = _result(future)
            staged = chunk.staged.download(store, into.parent) if chunk.staged.store else chunk.staged
        except AwardwatchError as exc:  # the map stage (or its download) failed: the chunk's run says why, it stays planned
            ingest.failed(con, "backfill", {"source": f.name, "scope": scope.name, **params}, exc)
            raise
        progress.on_stage(f"loading {f.name} {scope.name} {window}")
        f.check(con, scope, window, chunk.landed, BACKFILL)
        files.extend(chunk.landed.labels)
        result = _load(con, s, f, scope, [], "backfill", params, progress, staged=staged)
        job.results.append(result)
        feeds.chunk_done(con, backfill, f.name, scope.name, window.start, window.end, result.run_id, result.counts.read,
                         worker=chunk.staged.worker)
        if chunk.landed.watermark:
            feeds.set_watermark(con, f.name, scope.name, datetime.combine(chunk.landed.watermark, time()), result.run_id)
            moved = max(moved or chunk.landed.watermark, chunk.landed.watermark)
        if chunk.staged.store:
            store.delete([p.as_posix() for p in chunk.staged.paths()])
        shutil.rmtree(into / str(window.start), ignore_errors=True)

    for window in todo:  # up to backfill_concurrency chunks are staged ahead (in threads, or on Dask workers)
        pending.append((window, stage(s, f.name, scope, window, (Path(key) if store else into) / str(window.start))))
        if len(pending) >= max(1, s.backfill_concurrency):
            load_next()
    while pending:
        load_next()
    shutil.rmtree(into, ignore_errors=True)
    if store:  # what earlier attempts of this backfill left (a chunk staged, then never merged)
        store.delete(store.list(f"{key}/"))
    return FeedRun(f.name, scope.name, [str(w) for w in todo], None, moved.isoformat() if moved else None,
                   [str(w) for w in chunks if w.start in finished], files)


def first_nightly(s: Settings, f: Feed, scope: Scope, windows: list[Window]) -> str:
    """What to say when a scope has no watermark yet: the nightly read only its look-back."""
    agencies = " ".join(f"--agency {a.abbreviation}" for a in scope.agencies)
    first = windows[0] if windows else None
    return (f"{f.name} {scope.name} had no watermark: this first nightly read only {first} (the last {s.lookback_days} days); "
            f"to load history first, run `awardwatch backfill --source {f.name} {agencies} --start YYYY-MM-DD --end "
            f"{runs.now().date()}`, or read further back with --lookback-days").replace("  ", " ")


def _result(value):
    """A Landed or a Chunk, or the future of one (a Prefect task submitted to the flow's runner)."""
    return value if isinstance(value, (Landed, Chunk)) else value.result()


def landing(s: Settings, source: str, label: str) -> Path:
    """Where a feed lands raw files before they are loaded (beside the warehouse)."""
    return s.warehouse.parent / "landing" / source / label
