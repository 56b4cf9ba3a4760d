"""The ingest core, plain Python: files -> validated, canonical rows -> warehouse.

Per source file: read the header and decide its layout (refusing files without
the required columns), stream the rows in batches, validate each batch
(structure, then values with pandera), write valid rows as canonical Parquet and
rejected rows with their reasons to a staging folder, then merge the file into
the warehouse in one transaction. Prefect flows and the CLI both call ``ingest``.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path

import polars as pl

from awardwatch.flows.core import failpoints
from awardwatch.flows.core.progress import Progress, Stages
from awardwatch.flows.sources.files import (Skipped, SourceFile, display, has_suspect_bytes, is_not_utf8, land, parse_error,
                                            read_batches, read_header)
from awardwatch.schemas.errors import AwardwatchError, InputError
from awardwatch.schemas.layouts import Layout, detect
from awardwatch.schemas.validate import field_counts
from awardwatch.transforms.batch import reason_kinds, split_batch, split_deletions
from awardwatch.warehouse import companies, db, invariants, load, runs, touched
from awardwatch.warehouse.runs import Counts
from awardwatch.warehouse.store import Store


class InvariantError(AwardwatchError):
    """A check that must hold after every run did not."""


@dataclass
class FileResult:
    name: str
    layout: str
    counts: Counts
    seconds: float
    extra_columns: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: Counts
    files: list[FileResult]
    seconds: float
    message: str | None = None
    stages: Stages = field(default_factory=Stages)
    resolution: dict[str, float] = field(default_factory=dict)  # share of transactions per parent-company method
    skipped: list[Skipped] = field(default_factory=list)  # inputs not read (not CSV, links out of a folder)


def ingest(paths: list[Path], *, warehouse: Path, threads: int | None = None, lock_wait: float = 60.0, **options) -> RunResult:
    """Loads contract-transaction files (CSV, ZIP of CSVs, or folders of them) into the warehouse, as one
    run on its own connection, and settles it (companies, marts, invariants). ``options``: those of ``run``.

    Raises an ``AwardwatchError`` with a one-line message when a file cannot be read
    or too many of its rows are rejected; the run is then recorded as failed. Files
    loaded before the failure stay loaded (each commits on its own)."""
    con = db.connect(warehouse, threads=threads, wait=lock_wait)
    try:
        result = run(con, paths, warehouse=warehouse, **options)
        settle(con, [result])
        return result
    finally:
        con.close()


@dataclass
class Staged:
    """Files read, validated and written as staged Parquet, not merged yet: the map stage of a backfill
    chunk (``stage``), which may run on another machine, ahead of the one writer that merges it (``run``)."""

    files: list[tuple[str, load.StagedFile, Layout, float]]  # name, staged file, layout, seconds
    skipped: list[Skipped]
    stages: Stages
    worker: str = ""  # where it was staged (a Dask worker's address), for the chunk's record
    store: str = ""  # the object store holding its files, whose paths are then keys there ('' : local paths)

    def paths(self) -> list[Path]:
        """Every file it holds (staged rows, quarantine, deletions); relative ones are keys in ``store``."""
        return [p for _, f, _, _ in self.files for p in f.paths()]

    def upload(self, store: Store, root: Path, key: str) -> Staged:
        """A copy whose files are in ``store``: each ``root/<path>`` uploaded as ``key/<path>``. A failed
        upload raises (a ``StoreError``) after removing what it had uploaded."""
        done: list[str] = []
        try:
            with self.stages.timing("upload"):
                for path in self.paths():
                    done.append(f"{key}/{path.relative_to(root).as_posix()}")
                    store.put_file(done[-1], path)
        except BaseException:
            with suppress(Exception):
                store.delete(done)
            raise
        return self._moved(lambda p: Path(key) / p.relative_to(root), store.url)

    def download(self, store: Store, root: Path) -> Staged:
        """A copy whose files are local again: each key downloaded to ``root/<key>``."""
        with self.stages.timing("download"):
            for key in self.paths():
                store.get_file(key.as_posix(), root / key)
        return self._moved(lambda p: root / p, "")

    def _moved(self, where, store: str) -> Staged:
        files = [(name, f.moved(where), layout, seconds)
                 for name, f, layout, seconds in self.files]
        return replace(self, files=files, store=store)


def stage(paths: list[Path], into: Path, *, source: str, batch_rows: int = 25_000, max_rejected_share: float = 0.05,
          progress: Progress | None = None, worker: str = "") -> Staged:
    """Lands, reads, validates and transforms files into ``into`` (nothing touches the warehouse)."""
    progress, stages, skipped = progress or Progress(), Stages(), []
    with stages.timing("land"):
        files = land(paths, into / "landed", skipped=skipped)
    staged = []
    for i, f in enumerate(files):
        t0 = time.perf_counter()
        got, layout = stage_file(f, into / f"{i:04d}", source, batch_rows, max_rejected_share, progress, stages)
        staged.append((f.name, got, layout, time.perf_counter() - t0))
    return Staged(staged, skipped, stages, worker)


def run(
    con,
    paths: list[Path],
    *,
    warehouse: Path,
    source: str = "file",
    command: str = "ingest",
    parameters: dict | None = None,
    batch_rows: int = 25_000,
    max_rejected_share: float = 0.05,
    progress: Progress | None = None,
    staged=None,
) -> RunResult:
    """One run on the job's connection: every file staged, validated and merged in its own transaction
    (file by file: a bad file leaves the ones before it loaded). ``staged``: the files were staged already
    (``stage``), or a future of that (a backfill chunk staged ahead, maybe elsewhere): only merge them.
    The run is recorded as succeeded once its files are in; ``settle`` then does the per-job steps."""
    progress = progress or Progress()
    started = time.perf_counter()
    run = runs.start(con, command, parameters or {"paths": [display(p) for p in paths]})
    db.claim(warehouse, run.run_id, command)
    staging_root = Path(warehouse).parent / "staging"
    for left in staging_root.glob("*"):  # left by a run that was killed: we hold the warehouse now
        if left.name != db.SPILL:  # the job's connection may be spilling there (its folder must stay)
            shutil.rmtree(left, ignore_errors=True)
    staging = staging_root / run.run_id
    results: list[FileResult] = []
    skipped: list[Skipped] = []
    stages = Stages()

    writing: list[load.Early] = []  # the file staged here had its rows written meanwhile, in this open transaction

    def staged_here():
        with stages.timing("land"):
            files = land(paths, staging / "landed", skipped=skipped)
        runs.record_skipped(con, run.run_id, source, skipped)
        failpoints.hit("landed")
        for i, f in enumerate(files):
            if i:
                failpoints.hit("between-files")
            t0 = time.perf_counter()
            progress.on_file(f.name, f.path.stat().st_size)
            got, layout, early = _stage_writing(con, run.run_id, f, staging / f"{i:04d}", source, batch_rows, max_rejected_share,
                                                progress, stages)
            writing.append(early)
            try:
                yield f.name, got, layout, time.perf_counter() - t0
            finally:  # load_file took the transaction over, or the run failed before: roll it back
                writing.clear()
                early.close()

    def staged_before():
        done = staged if isinstance(staged, Staged) else staged.result()
        skipped.extend(done.skipped)
        for name, seconds in done.stages.items():
            stages[name] = stages.get(name, 0.0) + seconds
        runs.record_skipped(con, run.run_id, source, skipped)
        failpoints.hit("landed")
        yield from done.files

    try:
        for name, got, layout, seconds in (staged_here() if staged is None else staged_before()):
            failpoints.hit("staged")
            t0 = time.perf_counter()
            with stages.timing("load"):
                counts = load.load_file(con, run.run_id, got, seconds + time.perf_counter() - t0,
                                        before_commit=lambda: failpoints.hit("before-commit"), early=next(iter(writing), None))
            run.counts += counts
            results.append(FileResult(name, layout.name, counts, seconds + time.perf_counter() - t0, list(layout.extra)))
            progress.on_loaded(results[-1])
            if counts.quarantined:
                progress.on_note(f"{name}: {counts.quarantined:,} of {counts.read:,} rows quarantined (see the quarantine table)")
        for s in skipped:
            progress.on_note(f"skipped {s.name} ({s.size:,} bytes): {s.why}")
        runs.finish(con, run, "succeeded", runs.skipped_note(skipped))
        return RunResult(run.run_id, "succeeded", run.counts, results, time.perf_counter() - started, stages=stages,
                         skipped=skipped)
    except AwardwatchError as exc:
        if results:  # each file commits on its own: say which ones did
            done = ", ".join(f"{r.name} ({r.counts.read:,} rows)" for r in results)
            exc.args = (f"{exc}; loaded before this (kept, and unchanged by a re-run): {done}",)
        runs.finish(con, run, "failed", str(exc))
        raise
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "interrupted"  # Ctrl-C, SIGTERM, Prefect's TerminationSignal
        runs.finish(con, run, status, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def failed(con, command: str, parameters: dict, exc: Exception) -> str:
    """Records a run that failed before any of its files was read (a backfill chunk whose map stage failed)."""
    run = runs.start(con, command, parameters)
    runs.finish(con, run, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return run.run_id


def settle(con, results: list[RunResult], progress: Progress | None = None) -> dict[str, float]:
    """The per-job steps, once after a job's runs: company resolution over what they touched, the marts,
    and the invariants (recorded on every run; a broken one raises). Returns the resolution shares, also
    set on the last result."""
    if not results:
        return {}
    (progress or Progress()).on_stage("resolving companies and refreshing the marts")
    t0 = time.perf_counter()
    touched.record_pending(con, [r.run_id for r in results])  # what they touched, before refresh empties the pending tables
    with db.transaction(con):
        shares = companies.refresh(con)
    t1 = time.perf_counter()
    total = Counts()
    for r in results:
        total += r.counts
    ids = [r.run_id for r in results]
    checked = invariants.check(con, total, run_ids=ids)  # over what the runs wrote and deleted
    invariants.record(con, ids, checked)
    last = results[-1]
    last.stages["companies"] = last.stages.get("companies", 0.0) + t1 - t0
    last.stages["invariants"] = last.stages.get("invariants", 0.0) + time.perf_counter() - t1
    last.resolution = shares
    if bad := invariants.broken(checked):
        runs.mark_failed(con, ids, f"broke invariant(s) {', '.join(bad)}")
        raise InvariantError(f"run {', '.join(ids)} broke invariant(s) {', '.join(bad)}; see `awardwatch runs`")
    return shares


class _NotUtf8(Exception):
    """A strict read met bytes that are not UTF-8: read the file again, lossily, checking every value."""


class _Stopped(Exception):
    """The writing side of ``_stage_writing`` failed: staging stops."""


def _stage_writing(con, run_id: str, f: SourceFile, out: Path, source: str, batch_rows: int, max_rejected_share: float,
                   progress: Progress, stages: Stages) -> tuple[load.StagedFile, Layout, load.Early]:
    """``stage_file`` in a thread while this one writes each staged batch's rows into the warehouse
    (``load.Early``, in the file's transaction, left open for ``load.load_file``): polars and DuckDB both
    release the GIL, so DuckDB's writing overlaps the polars work of the next batches. Progress callbacks
    run on this thread. (Staged file, layout, the ``Early``, inactive when it does not apply.)"""
    early = load.Early(con, run_id, source, f.name)
    if not early.active:
        return (*stage_file(f, out, source, batch_rows, max_rejected_share, progress, stages), early)
    events: queue.SimpleQueue = queue.SimpleQueue()
    stop, outcome = threading.Event(), {}

    def staged(path: Path | None) -> None:
        if stop.is_set():
            raise _Stopped
        events.put(("batch", path))

    def produce() -> None:
        try:
            outcome["staged"] = stage_file(f, out, source, batch_rows, max_rejected_share,
                                           Progress(on_rows=lambda rows, nbytes: events.put(("rows", rows, nbytes))), stages,
                                           on_staged=staged)
        except BaseException as exc:  # noqa: BLE001 - raised again on this thread
            outcome["error"] = exc
        finally:
            events.put(None)

    worker = threading.Thread(target=produce, name=f"stage {f.name}", daemon=True)
    worker.start()
    try:
        while (event := events.get()) is not None:
            if event[0] == "rows":
                progress.on_rows(*event[1:])
            else:
                with stages.timing("load"):
                    early.add(event[1])
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return (*outcome["staged"], early)
    except BaseException:
        stop.set()  # the staging thread stops at its next batch
        worker.join()
        early.close()
        raise


def stage_file(
    f: SourceFile, out: Path, source: str, batch_rows: int, max_rejected_share: float, progress: Progress, stages: Stages,
    on_staged: Callable[[Path | None], None] = lambda path: None,
) -> tuple[load.StagedFile, Layout]:
    """Reads, validates and transforms one CSV into staged Parquet files.

    A file without NUL bytes and without U+FFFD (one byte search) is read as strict UTF-8 and
    its values are not searched for those; if the strict read meets bytes that are not
    UTF-8, the file is read again lossily, with every value checked. ``on_staged``: called with
    each staged file of valid rows once written, and with ``None`` when those so far are void
    (the file is read again)."""
    layout = check_layout(f, read_header(f))
    with stages.timing("read"):
        suspect = has_suspect_bytes(f.path)
        widths, rows = field_counts(f.path, len(layout.columns), nul_free=not suspect)
    try:
        staged, rejected, reasons = _stage(f, out, layout, source, batch_rows, rows, lossy=suspect, progress=progress,
                                           stages=stages, widths=widths, on_staged=on_staged)
    except _NotUtf8:
        on_staged(None)
        staged, rejected, reasons = _stage(f, out, layout, source, batch_rows, rows, lossy=True, progress=progress,
                                           stages=stages, widths=widths, on_staged=on_staged)
    if staged.read != rows:  # the field counts belong to other rows: nothing can be trusted
        raise InputError(f"{f.name}: read {staged.read:,} rows but the file's quoting gives {rows:,}; nothing from this "
                         "file was loaded; check its quotes (a value holding a quote is quoted, the quote written \"\")")
    if staged.read and rejected / staged.read > max_rejected_share:
        top = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common(3))
        raise InputError(
            f"{f.name}: {rejected:,} of {staged.read:,} rows ({rejected / staged.read:.1%}) failed validation, "
            f"over the {max_rejected_share:.0%} limit; nothing from this file was loaded. Most frequent: {top}. "
            f"To load the valid rows and quarantine the rest, raise --max-rejected."
        )
    return staged, layout


def _stage(f: SourceFile, out: Path, layout: Layout, source: str, batch_rows: int, rows: int, *, lossy: bool,
           progress: Progress, stages: Stages, widths: pl.DataFrame | None = None,
           on_staged: Callable[[Path], None] = lambda path: None) -> tuple[load.StagedFile, int, Counter[str]]:
    """One pass over the file (of ``rows`` data rows): (staged files, rows rejected, reasons by kind)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    staged = load.StagedFile(source, f.name, staged=[], quarantined=[], read=0, layout=layout.name, extra_columns=list(layout.extra))
    reasons: Counter[str] = Counter()
    rejected = 0
    batches = read_batches(f, list(layout.columns), batch_rows, rows, lossy=lossy)
    for i in count():
        try:
            with stages.timing("read"):
                raw = next(batches)
        except StopIteration:
            break
        except pl.exceptions.PolarsError as exc:
            if not lossy and is_not_utf8(exc):
                raise _NotUtf8 from None
            raise parse_error(f, staged.read, _first_line(exc)) from None
        staged.read += raw.height
        if layout.is_delta:
            raw, deletions = split_deletions(raw, layout)
            if deletions.height:
                path = out / f"deletions_{i:05d}.parquet"
                deletions.write_parquet(path)
                staged.deletions.append(path)
        good, bad = split_batch(raw, layout, f.name, stages.timing, check_bytes=lossy, widths=widths)
        if good.height:
            path = out / f"rows_{i:05d}.parquet"
            with stages.timing("stage"):
                good.write_parquet(path, compression="uncompressed", statistics=False)
            staged.staged.append(path)
            on_staged(path)
        if bad.height:
            path = out / f"quarantine_{i:05d}.parquet"
            bad.write_parquet(path)
            staged.quarantined.append(path)
            reasons.update(reason_kinds(bad))
            rejected += bad.height
        progress.on_rows(raw.height, raw.estimated_size())
    return staged, rejected, reasons


def check_layout(f: SourceFile, header: list[str]) -> Layout:
    layout = detect(header)
    if layout.duplicated:
        raise InputError(f"{f.name}: header repeats column(s) {', '.join(layout.duplicated)}; cannot tell which to load")
    if layout.missing_required:
        raise InputError(
            f"{f.name}: missing required column(s) {', '.join(layout.missing_required)}; "
            "expected a USAspending contract-transactions CSV"
        )
    return layout


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if "not properly escaped" in line or "invalid csv" in line.lower()]
    return (useful or lines or [type(exc).__name__])[0]


