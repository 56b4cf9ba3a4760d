"""The `awardwatch` command."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from flows import pipeline
from flows import settings as config
from flows.cli_reconcile import reconcile_command, status_command
from flows.cli_reports import changes_command, report_app
from flows.options import BatchRows, Format, MaxRejected, OutputFormat, Publish, SnapshotUrl, Warehouse, err, out
from flows.output import render
from flows.sources import http as _http
from schemas.errors import AwardwatchError, InputError

app = typer.Typer(
    help="awardwatch: which companies are paid by which agencies, for what, how much, and what changed.\n\n"
    "Loads USAspending contract data into a DuckDB warehouse, validated, with every row accounted for.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
snapshots_app = typer.Typer(help="List and prune published snapshots.", no_args_is_help=True)
app.add_typer(snapshots_app, name="snapshots")
app.add_typer(report_app, name="report")
app.command(name="changes")(changes_command)
app.command(name="reconcile")(reconcile_command)
app.command(name="status")(status_command)


@contextmanager
def ingest_progress() -> Iterator[pipeline.Progress]:
    """A progress bar per file (bytes read, approximate) on stderr."""
    bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]:>12,} rows"),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
    state: dict = {}

    def on_file(name: str, size: int) -> None:
        if "task" in state:
            bars.update(state["task"], completed=bars.tasks[state["task"]].total)
        label = name if len(name) < 48 else "…" + name[-47:]
        state["task"] = bars.add_task(label, total=size, rows=0)

    def on_rows(rows: int, nbytes: int) -> None:
        task = bars.tasks[state["task"]]
        bars.update(state["task"], completed=min(task.completed + nbytes, task.total), rows=task.fields["rows"] + rows)

    with bars:
        yield pipeline.Progress(on_file=on_file, on_rows=on_rows)


def print_run(result: pipeline.RunResult) -> None:
    columns = ["file", "layout", "read", "inserted", "updated", "unchanged", "duplicates", "quarantined", "seconds"]
    rows = [
        (Path(f.name.split("!")[-1]).name, f.layout, f.counts.read, f.counts.inserted, f.counts.updated, f.counts.unchanged,
         f.counts.duplicate, f.counts.quarantined, round(f.seconds, 1))
        for f in result.files
    ]
    c = result.counts
    rows.append(("total", "", c.read, c.inserted, c.updated, c.unchanged, c.duplicate, c.quarantined, round(result.seconds, 1)))
    render(columns, rows, "table", out, title=f"run {result.run_id}")
    check = "reconciled" if c.reconciled else "DOES NOT RECONCILE"
    out.print(f"read {c.read:,} = inserted {c.inserted:,} + updated {c.updated:,} + unchanged {c.unchanged:,} "
              f"+ duplicates {c.duplicate:,} + quarantined {c.quarantined:,}: {check}")
    if result.resolution:
        from warehouse.companies import format_shares

        out.print(f"parent companies resolved by: {format_shares(result.resolution)}", highlight=False)
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} input(s) not read (listed in run_files with status 'skipped'):", highlight=False, markup=False)
        for s in result.skipped:
            out.print(f"  {s.name} ({s.size:,} bytes): {s.why}", highlight=False, markup=False)
    if c.quarantined:
        out.print(f"quarantined rows and their reasons: awardwatch query \"SELECT source_file, source_row, reasons FROM quarantine WHERE last_run_id = '{result.run_id}'\"")
    for f in result.files:
        if f.extra_columns:
            out.print(f"note: {f.name} has columns awardwatch does not know, ignored: {', '.join(f.extra_columns)}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="CSV files, ZIP files of CSVs, or folders of them.", show_default=False)],
    warehouse: Warehouse = None,
    batch_rows: BatchRows = None,
    max_rejected: MaxRejected = None,
    publish: Publish = True,
    snapshot_url: SnapshotUrl = None,
) -> None:
    """Load USAspending contract-transaction downloads (CSV or ZIP) into the warehouse.

    Every row ends up loaded, counted as a duplicate, or quarantined with its reasons.
    Loading the same file again changes nothing; a corrected row replaces the old one.
    """
    s = config.load().but(warehouse=warehouse, batch_rows=batch_rows, max_rejected_share=max_rejected, snapshot_url=snapshot_url)
    _need_space(s, paths)
    with ingest_progress() as progress:
        result = pipeline.ingest(paths, warehouse=s.warehouse, batch_rows=s.batch_rows, max_rejected_share=s.max_rejected_share,
                                 threads=s.threads, progress=progress, lock_wait=s.lock_wait)
    print_run(result)
    if publish:
        print_publish(pipeline.publish(s.warehouse, s.snapshots, keep=s.keep_snapshots, threads=s.threads, lock_wait=s.lock_wait,
                                       run_ids=[result.run_id]))


def print_publish(result) -> None:
    out.print(result.message)
    if result.pruned:
        out.print(f"pruned {len(result.pruned)} old snapshot(s): {', '.join(result.pruned)}")


@app.command(name="publish")
def publish_command(warehouse: Warehouse = None, snapshot_url: SnapshotUrl = None,
                    keep: Annotated[Optional[int], typer.Option(help="Snapshots to keep after publishing. \\[env AWARDWATCH_KEEP_SNAPSHOTS, default 30]", show_default=False)] = None) -> None:
    """Publish the warehouse as a Parquet snapshot (files, then manifest, then the `latest` pointer).

    Does nothing when the warehouse has not changed since the current snapshot.
    """
    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url, keep_snapshots=keep)
    print_publish(pipeline.publish(s.warehouse, s.snapshots, keep=s.keep_snapshots, threads=s.threads, lock_wait=s.lock_wait))


@snapshots_app.command(name="list")
def snapshots_list(snapshot_url: SnapshotUrl = None, warehouse: Warehouse = None, fmt: OutputFormat = Format.table) -> None:
    """List snapshots, newest first, marking the current one."""
    from warehouse.snapshots import list_snapshots
    from warehouse.store import open_store

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    found = list_snapshots(open_store(s.snapshots))
    columns = ["snapshot_id", "created_at", "tables", "rows", "bytes", "current", "complete"]
    render(columns, [tuple("*" if c == "current" and x[c] else ("" if c == "current" else x[c]) for c in columns) for x in found], fmt.value, out)


@snapshots_app.command(name="prune")
def snapshots_prune(keep: Annotated[int, typer.Option(help="How many of the newest snapshots to keep (the current one always is).")],
                    snapshot_url: SnapshotUrl = None, warehouse: Warehouse = None) -> None:
    """Delete old snapshots, keeping the newest N and always the current one."""
    from warehouse.snapshots import prune
    from warehouse.store import open_store

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url, keep_snapshots=keep)
    doomed = prune(open_store(s.snapshots), s.keep_snapshots)
    out.print(f"deleted {len(doomed)} snapshot(s)" + (f": {', '.join(doomed)}" if doomed else ""))


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement (DuckDB dialect). Tables: transactions, awards, quarantine, runs.", show_default=False)],
    warehouse: Warehouse = None,
    fmt: OutputFormat = Format.table,
    snapshot: Annotated[Optional[str], typer.Option(help="Query a published snapshot instead of the warehouse: 'latest' or a snapshot id.", show_default=False)] = None,
    snapshot_url: SnapshotUrl = None,
) -> None:
    """Run read-only SQL on the warehouse, or on a published snapshot, and print the result."""
    from warehouse.query import query_snapshot, query_warehouse

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    if not sql.strip().strip(";").strip():
        raise InputError("query: no SQL statement given; pass one, e.g. awardwatch query \"SELECT count(*) FROM transactions\"")
    if snapshot:
        columns, rows = query_snapshot(s.snapshots, snapshot, sql)
    else:
        columns, rows = query_warehouse(s.warehouse, sql)
    render(columns, rows, fmt.value, out)


@app.command()
def runs(warehouse: Warehouse = None, limit: Annotated[int, typer.Option(help="How many runs.")] = 10, fmt: OutputFormat = Format.table) -> None:
    """Show the latest runs with their counts."""
    from warehouse.query import query_warehouse

    s = config.load().but(warehouse=warehouse)
    sql = (
        "SELECT run_id, command, status, started_at::TIMESTAMP(0) AS started, round(epoch(ended_at - started_at), 1) AS seconds, "
        "rows_read AS read, rows_inserted AS inserted, rows_updated AS updated, rows_unchanged AS unchanged, "
        "rows_duplicate AS duplicates, rows_quarantined AS quarantined, reconciled, left(reconciliation, 60) AS usaspending, "
        "left(message, 80) AS message "
        f"FROM runs ORDER BY started_at DESC LIMIT {int(limit)}"
    )
    columns, rows = query_warehouse(s.warehouse, sql)
    render(columns, rows, fmt.value, out)


Agencies = Annotated[
    Optional[list[str]],
    typer.Option("--agency", "-a", help="Agency abbreviation or code (ICE, CBP, 7012, DHS...); repeat for several. \\[env AWARDWATCH_AGENCIES, default DHS]", show_default=False),
]


def print_job(result: dict) -> None:
    for source, info in result["sources"].items():
        line = f"{source} {info['scope']}: windows {', '.join(info['windows']) or 'none'}"
        if info.get("watermark"):
            line += f"; watermark now {info['watermark']}"
        if info.get("skipped"):
            line += f"; skipped {len(info['skipped'])} finished chunk(s)"
        out.print(line, highlight=False)
    c = result["counts"]
    columns = ["runs", "read", "inserted", "updated", "unchanged", "duplicates", "quarantined", "deleted", "reconciled"]
    render(columns, [(len(result["runs"]), c["read"], c["inserted"], c["updated"], c["unchanged"], c["duplicate"], c["quarantined"],
                      c["deleted"], "yes" if c["reconciled"] else "NO")], "table", out)
    out.print(result["snapshot"] or "no snapshot")


@app.command(name="run")
def run_nightly(
    warehouse: Warehouse = None,
    agency: Agencies = None,
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="Source to extract (usaspending, archive, fpds); repeat for several. \\[env AWARDWATCH_SOURCES, default usaspending]", show_default=False)] = None,
    lookback_days: Annotated[Optional[int], typer.Option(help="Days before each watermark to read again. \\[env AWARDWATCH_LOOKBACK_DAYS, default 3]", show_default=False)] = None,
) -> None:
    """Run the nightly job now: extract what changed since each source's watermark, load it, publish a snapshot."""
    from flows import jobs
    from flows.nightly import nightly

    config.load().but(lookback_days=lookback_days)  # settings checked before Prefect starts
    quiet_prefect_console()
    with ingest_progress() as progress:
        jobs.PROGRESS = progress
        result = nightly(sources=source, agencies=agency, lookback_days=lookback_days, warehouse=str(warehouse) if warehouse else None)
    print_job(result)


@app.command(name="backfill")
def run_backfill(
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First action date (YYYY-MM-DD).", show_default=False)],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last action date (YYYY-MM-DD).", show_default=False)],
    warehouse: Warehouse = None,
    agency: Agencies = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Chunks downloading at once. \\[env AWARDWATCH_BACKFILL_CONCURRENCY, default 2]", show_default=False)] = None,
    source: Annotated[str, typer.Option("--source", "-s", help="usaspending (bulk downloads, one month per chunk), fpds (ATOM feed, one month per chunk) or archive (Award Data Archive Full files, one fiscal year per chunk).")] = "usaspending",
) -> None:
    """Load a date range of history in chunks; re-running skips the chunks already done."""
    from flows import jobs
    from flows.backfill import backfill

    config.load().but(backfill_concurrency=concurrency)  # settings checked before Prefect starts
    quiet_prefect_console()
    with ingest_progress() as progress:
        jobs.PROGRESS = progress
        result = backfill(start=start.date(), end=end.date(), agencies=agency, source=source, concurrency=concurrency,
                          warehouse=str(warehouse) if warehouse else None)
    print_job(result)


@app.command()
def demo(
    warehouse: Warehouse = None,
    rows: Annotated[int, typer.Option(help="Transactions in the generated feed.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the generated feed (same seed, same data).")] = 2018,
) -> None:
    """Run the whole pipeline offline on a generated sample feed and show a query on the result."""
    from flows.demo import EXAMPLE_SQL, run_demo

    s = config.load().but(warehouse=warehouse)
    with ingest_progress() as progress:
        result = run_demo(s, rows=rows, seed=seed, progress=progress)
    out.print(f"generated feed: {', '.join(str(p) for p in result.feed)}")
    print_run(result.run)
    print_publish(result.snapshot)
    out.print(f"\nwarehouse: {s.warehouse}\nsnapshots: {s.snapshots}\n")
    out.print("example query (awardwatch query \"...\", or on the snapshot: awardwatch query --snapshot latest \"...\"):")
    out.print(EXAMPLE_SQL, highlight=False, markup=False)
    render(result.columns, result.rows, "table", out, title="ICE and CBP: top parent companies (warehouse)")
    same = "the same" if result.snapshot_rows == result.rows else "DIFFERENT"
    out.print(f"the snapshot {result.snapshot.snapshot_id} gives {same} result")


class _QuietConsole(logging.Filter):
    """Keeps errors and tracebacks of Prefect off the terminal: they stay in Prefect's own logs
    (its API handler), and the CLI prints the error once, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.ERROR:
            return False
        message = record.getMessage()
        return not (message.startswith("Finished in state") and "Completed" not in message)


def quiet_prefect_console() -> None:
    """Adds ``_QuietConsole`` to Prefect's console handlers (set up when prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry error lines offline
    import prefect  # noqa: F401  (configures Prefect's logging)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, _QuietConsole) for f in handler.filters):
                handler.addFilter(_QuietConsole())


# Free space a command needs (set by ingest: its inputs, twice over: staging and the warehouse)
_NEEDS: dict[str, object] = {}


def _need_space(s: config.Settings, paths: list[Path]) -> None:
    size = 0
    for p in paths:
        try:
            size += sum(f.stat().st_size for f in Path(p).iterdir() if f.is_file()) if Path(p).is_dir() else Path(p).stat().st_size
        except OSError:
            pass
    _NEEDS.update(folder=s.warehouse.parent, bytes=2 * size)


def disk_full(exc: BaseException) -> bool:
    """Is this error a full disk (ENOSPC), whatever DuckDB or polars called it (IOException, OutOfMemoryException...)?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "no space left on device" in str(seen).lower() or "os error 28" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full_message() -> str:
    folder = _NEEDS.get("folder")
    if folder is None:
        try:
            folder = config.load().warehouse.parent
        except AwardwatchError:
            folder = Path(".")
    where = Path(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    need = f"; this run needs about {_size(int(_NEEDS['bytes']))} there (its input twice over: staging and the warehouse)" if _NEEDS.get("bytes") else ""
    return (f"disk full: no space left on the disk of {folder} ({_size(free)} free){need}; "
            "free some space there, or put the warehouse on a bigger disk (--warehouse or AWARDWATCH_HOME), then run again")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _terminate(signum, frame) -> None:
    """SIGTERM: stop HTTP transfers in every thread and unwind the main thread like Ctrl-C,
    so the run in progress is recorded as 'interrupted'."""
    _http.STOPPING.set()
    _NEEDS["terminated"] = True
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _terminated() -> None:
    """Ends the process now: the run in progress is already recorded as interrupted (the main
    thread unwound through it). Exit handlers run (they stop Prefect's temporary server), but
    worker threads still sleeping in a Prefect retry delay or a download are not waited for."""
    import atexit

    print("interrupted (SIGTERM); the run is recorded as interrupted", file=sys.stderr, flush=True)
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143)


TERM_GRACE = 10.0  # seconds the main thread has after SIGTERM to record its run before the process ends anyway


def _watch_sigterm():
    """Python runs a signal handler only when the main thread runs Python code; a main thread
    blocked in a wait (a Prefect future, a retry delay) would not see SIGTERM for minutes. The C
    handler also writes the signal number to a wake-up pipe: a watcher thread reads it and, if the
    main thread has not ended the process within ``TERM_GRACE`` seconds, ends it. Returns the undo."""
    import threading

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_end)
        os.close(write_end)
        return lambda: None

    def watch() -> None:
        while True:
            data = os.read(read_end, 64)
            if not data:  # undone: the command ended
                os.close(read_end)
                return
            if signal.SIGTERM in data:
                break
        _http.STOPPING.set()
        _NEEDS["terminated"] = True
        time.sleep(TERM_GRACE)
        _terminated()

    threading.Thread(target=watch, name="awardwatch-sigterm", daemon=True).start()

    def undo() -> None:
        signal.set_wakeup_fd(previous)
        os.close(write_end)

    return undo


def main() -> None:
    _NEEDS.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        previous = None
    undo = _watch_sigterm() if previous is not None else (lambda: None)
    try:
        _main()
    finally:
        undo()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        app()
    except AwardwatchError as exc:
        if disk_full(exc):
            print(f"error: {disk_full_message()}", file=sys.stderr)
            sys.exit(1)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except SystemExit:
        if _NEEDS.get("terminated"):  # typer turns the KeyboardInterrupt of SIGTERM into exit code 130
            _terminated()
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM, Prefect's TerminationSignal
            if _NEEDS.get("terminated") or not isinstance(exc, KeyboardInterrupt):
                _terminated()
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if disk_full(exc):
            print(f"error: {disk_full_message()}", file=sys.stderr)
            sys.exit(1)
        if os.environ.get("AWARDWATCH_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (set AWARDWATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
