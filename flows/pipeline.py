"""The ingest core, plain Python: files -> validated, canonical rows -> warehouse.

Per source file: read the header and decide its layout (refusing files without
the required columns), stream the rows in batches, validate each batch
(structure, then values with pandera), write valid rows as canonical Parquet and
rejected rows with their reasons to a staging folder, then merge the file into
the warehouse in one transaction. Prefect flows and the CLI both call ``ingest``.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import polars as pl

from flows import failpoints
from flows.sources.files import (OVERFLOW, ROW, Skipped, SourceFile, display, has_suspect_bytes, is_not_utf8, land, parse_error,
                                 read_header, scan)
from schemas.errors import AwardwatchError, InputError
from schemas.layouts import LINEAGE, Layout, current_columns, detect
from schemas.transaction import check_canonical
from schemas.validate import REASONS, field_counts, structure_reasons, value_reasons
from transforms.transactions import canonical, derive_keys, needs_trim, normalise_text, to_current_layout
from warehouse import companies, db, invariants, load, runs, snapshots
from warehouse.runs import Counts
from warehouse.store import open_store

KEY = load.KEY


class InvariantError(AwardwatchError):
    """A check that must hold after every run did not."""


@dataclass
class Progress:
    """Callbacks for a progress display; all optional."""

    on_file: Callable[[str, int], None] = lambda name, size: None
    on_rows: Callable[[int, int], None] = lambda rows, nbytes: None  # rows read, their approximate bytes


class Stages(dict):
    """Seconds spent per stage (read, validate, transform, stage, load), summed over files."""

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started


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


def ingest(
    paths: list[Path],
    *,
    warehouse: Path,
    source: str = "file",
    command: str = "ingest",
    parameters: dict | None = None,
    batch_rows: int = 25_000,
    max_rejected_share: float = 0.05,
    threads: int | None = None,
    progress: Progress | None = None,
    lock_wait: float = 60.0,
) -> RunResult:
    """Loads contract-transaction files (CSV, ZIP of CSVs, or folders of them) into the warehouse.

    Raises an ``AwardwatchError`` with a one-line message when a file cannot be read
    or too many of its rows are rejected; the run is then recorded as failed. Files
    loaded before the failure stay loaded (each commits on its own)."""
    progress = progress or Progress()
    started = time.perf_counter()
    con = db.connect(warehouse, threads=threads, wait=lock_wait)
    run = runs.start(con, command, parameters or {"paths": [display(p) for p in paths]})
    db.claim(warehouse, run.run_id, command)
    staging_root = Path(warehouse).parent / "staging"
    shutil.rmtree(staging_root, ignore_errors=True)  # left by a run that was killed: we hold the warehouse now
    staging = staging_root / run.run_id
    results: list[FileResult] = []
    skipped: list[Skipped] = []
    stages = Stages()
    try:
        with stages.timing("land"):
            files = land(paths, staging / "landed", skipped=skipped)
        runs.record_skipped(con, run.run_id, source, skipped)
        failpoints.hit("landed")
        for i, f in enumerate(files):
            if i:
                failpoints.hit("between-files")
            t0 = time.perf_counter()
            progress.on_file(f.name, f.path.stat().st_size)
            staged, layout = stage_file(f, staging / f"{i:04d}", source, batch_rows, max_rejected_share, progress, stages)
            failpoints.hit("staged")
            with stages.timing("load"):
                counts = load.load_file(con, run.run_id, staged, time.perf_counter() - t0,
                                        before_commit=lambda: failpoints.hit("before-commit"))
            run.counts += counts
            results.append(FileResult(f.name, layout.name, counts, time.perf_counter() - t0, list(layout.extra)))
        with stages.timing("companies"):
            resolution = _refresh_companies(con)
        with stages.timing("invariants"):
            checked = invariants.check(con, run.counts)
        invariants.record(con, [run.run_id], checked)
        if bad := invariants.broken(checked):
            raise InvariantError(f"run {run.run_id} broke invariant(s) {', '.join(bad)}; see `awardwatch runs`")
        runs.finish(con, run, "succeeded", runs.skipped_note(skipped))
        return RunResult(run.run_id, "succeeded", run.counts, results, time.perf_counter() - started, stages=stages,
                         resolution=resolution, skipped=skipped)
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
        con.close()
        shutil.rmtree(staging, ignore_errors=True)


def _refresh_companies(con) -> dict[str, float]:
    """Company resolution left to do (a new alias file, rows never resolved) and the marts, in one transaction."""
    con.execute("BEGIN")
    try:
        shares = companies.refresh(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return shares


class _NotUtf8(Exception):
    """A strict read met bytes that are not UTF-8: read the file again, lossily, checking every value."""


def stage_file(
    f: SourceFile, out: Path, source: str, batch_rows: int, max_rejected_share: float, progress: Progress, stages: Stages
) -> tuple[load.StagedFile, Layout]:
    """Reads, validates and transforms one CSV into staged Parquet files.

    A file without NUL bytes and without U+FFFD (one byte search) is read as strict UTF-8 and
    its values are not searched for those; if the strict read meets bytes that are not
    UTF-8, the file is read again lossily, with every value checked."""
    layout = check_layout(f, read_header(f))
    with stages.timing("read"):
        suspect = has_suspect_bytes(f.path)
        widths, rows = field_counts(f.path, len(layout.columns))
    try:
        staged, rejected, reasons = _stage(f, out, layout, source, batch_rows, lossy=suspect, progress=progress, stages=stages,
                                           widths=widths)
    except _NotUtf8:
        staged, rejected, reasons = _stage(f, out, layout, source, batch_rows, lossy=True, progress=progress, stages=stages,
                                           widths=widths)
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


def _stage(f: SourceFile, out: Path, layout: Layout, source: str, batch_rows: int, *, lossy: bool, progress: Progress,
           stages: Stages, widths: pl.DataFrame | None = None) -> tuple[load.StagedFile, int, Counter[str]]:
    """One pass over the file: (staged files, rows rejected, reasons by kind)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    staged = load.StagedFile(source, f.name, staged=[], quarantined=[], read=0, layout=layout.name, extra_columns=list(layout.extra))
    reasons: Counter[str] = Counter()
    rejected = 0
    batches = scan(f, list(layout.columns), lossy=lossy).collect_batches(chunk_size=batch_rows)
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
        good, bad = split_batch(raw, layout, f.name, stages, check_bytes=lossy, widths=widths)
        if good.height:
            path = out / f"rows_{i:05d}.parquet"
            with stages.timing("stage"):
                good.write_parquet(path, compression="uncompressed", statistics=False)
            staged.staged.append(path)
        if bad.height:
            path = out / f"quarantine_{i:05d}.parquet"
            bad.write_parquet(path)
            staged.quarantined.append(path)
            reasons.update(_reason_kinds(bad))
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


def split_batch(raw: pl.DataFrame, layout: Layout, source_file: str, stages: Stages | None = None,
                check_bytes: bool = True, widths: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One batch of text rows -> (canonical valid rows, quarantine rows with reasons).
    ``check_bytes=False``: the file is known to hold no NUL and no U+FFFD. ``widths``: the file's
    rows with a wrong number of fields (``schemas.validate.field_counts``), quarantined whatever the layout."""
    stages = Stages() if stages is None else stages
    lineage = LINEAGE if layout.has_lineage else ()
    with stages.timing("transform"):
        current = raw.lazy().pipe(to_current_layout, layout, keep=(ROW, OVERFLOW, *lineage)).collect()
        flags = current.select(needs_trim()).row(0, named=True)
        text = current.lazy().pipe(normalise_text, [c for c, flagged in flags.items() if flagged]).collect()
    with stages.timing("validate"):
        last = "last_modified_date" if layout.columns[-1] == "last_modified_date" else None
        structure = structure_reasons(text, overflow=OVERFLOW, header_width=len(layout.columns), last_column=last,
                                      problem="source_problem" if lineage else None, check_bytes=check_bytes,
                                      fields=widths)
        values = value_reasons(text.select(list(current_columns())))
        reasons = pl.DataFrame([structure.alias("s"), values.alias("v")]).select(pl.concat_list("s", "v")).to_series()
        bad = reasons.list.len() > 0
    with stages.timing("transform"):
        typed = text.filter(~bad).lazy().drop(OVERFLOW, "source_problem", "source_raw", strict=False).pipe(canonical).pipe(_with_lineage)
        good = check_canonical(typed, text.schema).collect()
    with stages.timing("validate"):
        quarantined = _quarantine_rows(raw.filter(bad), text.filter(bad), reasons.filter(bad), source_file)
    return good, quarantined


def _with_lineage(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Every staged row has ``lineage_file`` / ``lineage_row`` (null unless the source set them)."""
    names = lf.collect_schema().names()
    return lf.with_columns(
        (pl.col("lineage_file") if "lineage_file" in names else pl.lit(None, pl.String)).alias("lineage_file"),
        (pl.col("lineage_row").cast(pl.Int64, strict=False) if "lineage_row" in names else pl.lit(None, pl.Int64)).alias("lineage_row"),
    )


def split_deletions(raw: pl.DataFrame, layout: Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Delta files: rows flagged ``D`` -> (other rows, deletion records: key, source_row, last_modified_date).
    A blank ``correction_delete_ind`` is a new or modified row, ``C`` a correction, ``D`` a deletion.
    Deletion rows carry only key columns; the key's agency is their ``agency_id``. Their
    ``last_modified_date`` is date-only upstream (populate_monthly_delta_files.py ``organize_deletion_columns``
    writes the deletion journal file's date), a timestamp in older files: both are read, a date as midnight."""
    flag = pl.col("correction_delete_ind").str.strip_chars().str.to_uppercase() == "D"
    is_delete = raw.select(flag.fill_null(False)).to_series()
    if not is_delete.any():
        return raw, pl.DataFrame()
    lineage = LINEAGE[:2] if layout.has_lineage else ()
    records = (
        raw.filter(is_delete)
        .lazy()
        .pipe(to_current_layout, layout, keep=(ROW, "agency_id", *lineage))
        .pipe(normalise_text)
        .with_columns(pl.coalesce("awarding_sub_agency_code", pl.col("agency_id").str.strip_chars().str.to_uppercase()).alias("awarding_sub_agency_code"))
        .pipe(derive_keys)
        .pipe(_with_lineage)
        .select(KEY, pl.col(ROW).cast(pl.Int64), _deletion_date(pl.col("last_modified_date")),
                "lineage_file", "lineage_row")
        .collect()
    )
    return raw.filter(~is_delete), records


def _deletion_date(text: pl.Expr) -> pl.Expr:
    """``YYYY-MM-DD HH:MM:SS`` (fractions dropped) or ``YYYY-MM-DD`` (as midnight) -> Datetime; else null."""
    text = text.str.strip_chars()
    return pl.coalesce(
        text.str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False),
        pl.when(text.str.len_chars() == 10).then(text.str.to_datetime("%Y-%m-%d", strict=False)),
    ).alias("last_modified_date")


def _quarantine_rows(raw: pl.DataFrame, text: pl.DataFrame, reasons: pl.Series, source_file: str) -> pl.DataFrame:
    """Rejected rows as read (column -> text, JSON), with reasons and their key where it can be formed."""
    if not raw.height:
        return pl.DataFrame()
    values = raw.select(pl.struct(pl.all().exclude(ROW)).struct.json_encode()).to_series()
    key = text.lazy().pipe(derive_keys).select(KEY).collect().to_series()
    lineage = text.lazy().pipe(_with_lineage).select("lineage_file", "lineage_row").collect()
    ident = pl.concat_str([pl.lit(source_file), raw[ROW].cast(pl.String), values], separator="\x1f")
    return pl.DataFrame(
        {
            "quarantine_id": pl.select(ident.hash(seed=0).cast(pl.String)).to_series(),
            ROW: raw[ROW].cast(pl.Int64),
            REASONS: reasons,
            "original_values": values,
            KEY: key,
            "lineage_file": lineage["lineage_file"],
            "lineage_row": lineage["lineage_row"],
        }
    )


def _reason_kinds(bad: pl.DataFrame) -> Counter[str]:
    kinds = bad.select(pl.col(REASONS).explode().str.replace(r" \(got .*$", "")).to_series().value_counts()
    return Counter(dict(zip(kinds[REASONS].to_list(), kinds["count"].to_list())))


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if "not properly escaped" in line or "invalid csv" in line.lower()]
    return (useful or lines or [type(exc).__name__])[0]


def publish(warehouse: Path, snapshot_url: str, *, keep: int | None = 30, threads: int | None = None,
            lock_wait: float = 60.0, run_ids: list[str] | None = None) -> snapshots.PublishResult:
    """Publishes the warehouse as a Parquet snapshot (unless unchanged), then applies retention;
    records the snapshot and its checksum invariant on the runs it reflects. Refuses a warehouse
    whose latest run did not finish (``runs.unfinished``): nothing is written to the store."""
    con = db.connect(warehouse, threads=threads, wait=lock_wait)
    try:
        if why := runs.unfinished(con):
            raise snapshots.UnfinishedRun(f"not published: {why}")
        try:
            result = snapshots.publish(con, open_store(snapshot_url), workdir=Path(warehouse).parent / "staging", keep=keep,
                                       on_step=failpoints.hit)
        except snapshots.ChecksumMismatch:
            invariants.record(con, run_ids or [], {"snapshot_checksums": False})
            raise
        if result.published and run_ids:
            invariants.record(con, run_ids, {"snapshot_checksums": True})
            con.execute(f"UPDATE runs SET snapshot_id = ? WHERE run_id IN ({', '.join('?' * len(run_ids))})",
                        [result.snapshot_id, *run_ids])
        return result
    finally:
        con.close()
