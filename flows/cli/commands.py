"""The `awardwatch` command.

The modules of this package import only typer, rich and light project modules at their top; a command imports
what it needs (settings, polars, DuckDB, httpx, Prefect) when it runs, so `--help` and a bad argument are quick
(tests/flows/cli/test_startup.py)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from awardwatch.flows.cli.checks import reconcile_command, status_command
from awardwatch.flows.cli.options import BatchRows, Format, MaxRejected, OutputFormat, Publish, SnapshotUrl, Warehouse, out
from awardwatch.flows.cli.progress import ingest_progress
from awardwatch.flows.cli.render import render
from awardwatch.flows.cli.reports import changes_command, report_app
from awardwatch.schemas.errors import AwardwatchError, InputError, UsageError

if TYPE_CHECKING:  # the heavy modules (settings, polars, DuckDB, httpx) are imported by the commands that run
    from awardwatch.flows.core.ingest import RunResult
    from awardwatch.flows.settings import Settings

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


def print_run(result: RunResult) -> None:
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
        from awardwatch.warehouse.companies import format_shares

        out.print(f"parent companies resolved by: {format_shares(result.resolution)}", highlight=False)
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} input(s) not read (listed in run_files with status 'skipped'):", highlight=False, markup=False)
        for s in result.skipped:
            out.print(f"  {s.name} ({s.size:,} bytes): {s.why}", highlight=False, markup=False)
    if c.quarantined:
        from awardwatch.warehouse.runs import quarantine_query

        out.print(f"quarantined rows and their reasons: awardwatch query \"{quarantine_query(result.run_id)}\"")
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
    from awardwatch.flows import settings as config
    from awardwatch.flows.core import ingest as loading
    from awardwatch.flows.core import publish as publishing

    s = config.load().but(warehouse=warehouse, batch_rows=batch_rows, max_rejected_share=max_rejected, snapshot_url=snapshot_url)
    _need_space(s, paths)
    with ingest_progress() as progress:
        result = loading.ingest(paths, warehouse=s.warehouse, batch_rows=s.batch_rows, max_rejected_share=s.max_rejected_share,
                                 threads=s.threads, progress=progress, lock_wait=s.lock_wait)
    print_run(result)
    if publish:
        print_publish(publishing.publish(s.warehouse, s.snapshots, keep=s.keep_snapshots, threads=s.threads, lock_wait=s.lock_wait,
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
    from awardwatch.flows import settings as config
    from awardwatch.flows.core import publish as publishing

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url, keep_snapshots=keep)
    print_publish(publishing.publish(s.warehouse, s.snapshots, keep=s.keep_snapshots, threads=s.threads, lock_wait=s.lock_wait))


@snapshots_app.command(name="list")
def snapshots_list(snapshot_url: SnapshotUrl = None, warehouse: Warehouse = None, fmt: OutputFormat = Format.table) -> None:
    """List snapshots, newest first, marking the current one."""
    from awardwatch.flows import settings as config
    from awardwatch.warehouse.snapshots import list_snapshots
    from awardwatch.warehouse.store import open_store

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    found = list_snapshots(open_store(s.snapshots))
    columns = ["snapshot_id", "created_at", "tables", "rows", "bytes", "current", "complete"]
    render(columns, [tuple("*" if c == "current" and x[c] else ("" if c == "current" else x[c]) for c in columns) for x in found], fmt.value, out)


@snapshots_app.command(name="prune")
def snapshots_prune(keep: Annotated[int, typer.Option(help="How many of the newest snapshots to keep (the current one always is).")],
                    snapshot_url: SnapshotUrl = None, warehouse: Warehouse = None) -> None:
    """Delete old snapshots, keeping the newest N and always the current one."""
    from awardwatch.flows import settings as config
    from awardwatch.warehouse.snapshots import prune
    from awardwatch.warehouse.store import open_store

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
    from awardwatch.flows import settings as config
    from awardwatch.warehouse.query import EXAMPLE, query_snapshot, query_warehouse

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    if not sql.strip().strip(";").strip():
        raise InputError(f"query: no SQL statement given; pass one, e.g. {EXAMPLE}")
    if snapshot:
        columns, rows = query_snapshot(s.snapshots, snapshot, sql)
    else:
        columns, rows = query_warehouse(s.warehouse, sql)
    render(columns, rows, fmt.value, out)


@app.command()
def runs(warehouse: Warehouse = None, limit: Annotated[int, typer.Option(help="How many runs.")] = 10, fmt: OutputFormat = Format.table) -> None:
    """Show the latest runs with their counts."""
    from awardwatch.flows import settings as config
    from awardwatch.warehouse.runs import listing

    s = config.load().but(warehouse=warehouse)
    columns, rows = listing(s.warehouse, limit)
    render(columns, rows, fmt.value, out)


Agencies = Annotated[
    Optional[list[str]],
    typer.Option("--agency", "-a", help="Agency abbreviation, code or full name (ICE, CBP, 7012, DHS, \"Federal Bureau of Investigation\"...); repeat for several. \\[env AWARDWATCH_AGENCIES, default DHS]", show_default=False),
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
    for note in result.get("notes", []):
        out.print(f"note: {note}", highlight=False, markup=False)


@app.command(name="run")
def run_nightly(
    warehouse: Warehouse = None,
    agency: Agencies = None,
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="Source to extract (usaspending, archive, fpds); repeat for several. \\[env AWARDWATCH_SOURCES, default usaspending]", show_default=False)] = None,
    lookback_days: Annotated[Optional[int], typer.Option(help="Days before each watermark to read again. \\[env AWARDWATCH_LOOKBACK_DAYS, default 3]", show_default=False)] = None,
) -> None:
    """Run the nightly job now: extract what changed since each source's watermark, load it, publish a snapshot."""
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.jobs import check_job
    from awardwatch.flows.sources.base import NIGHTLY

    s = config.load().but(lookback_days=lookback_days)
    check_job(s, NIGHTLY, list(source or s.sources), agency, None, None)  # before Prefect starts: one line, at once
    config.prefect_defaults()  # before Prefect is imported: no telemetry
    from awardwatch.flows.nightly import nightly
    from awardwatch.flows.tasks import quiet_console

    quiet_console()
    with ingest_progress() as progress:
        result = nightly(sources=source, agencies=agency, lookback_days=lookback_days, warehouse=str(warehouse) if warehouse else None,
                         progress=progress)
    print_job(result)


@app.command(name="backfill")
def run_backfill(
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First action date (YYYY-MM-DD).", show_default=False)],
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last action date (YYYY-MM-DD).", show_default=False)],
    warehouse: Warehouse = None,
    agency: Agencies = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Chunks staged ahead of the merge. \\[env AWARDWATCH_BACKFILL_CONCURRENCY, default 2; on Dask, its workers + 1]", show_default=False)] = None,
    source: Annotated[str, typer.Option("--source", "-s", help="usaspending (bulk downloads, one month per chunk), fpds (ATOM feed, one month per chunk), archive (Award Data Archive Full files, one fiscal year per chunk) or sample (generated, offline).")] = "usaspending",
    workers: Annotated[Optional[int], typer.Option("--workers", help="Run each chunk's fetch, read, validation and transform on a local Dask cluster of this many worker processes; one writer merges them in order. \\[env AWARDWATCH_DASK_WORKERS]", show_default=False)] = None,
    dask_address: Annotated[Optional[str], typer.Option("--dask-address", help="Run that map stage on an existing Dask scheduler (tcp://host:8786); staged chunks go to AWARDWATCH_STAGING_URL, a folder every worker reaches or s3://bucket/prefix. \\[env AWARDWATCH_DASK_ADDRESS]", show_default=False)] = None,
) -> None:
    """Load a date range of history in chunks; re-running skips the chunks already done."""
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.jobs import check_job
    from awardwatch.flows.sources.base import BACKFILL

    s = config.load().but(backfill_concurrency=concurrency, dask_workers=workers, dask_address=dask_address)
    check_job(s, BACKFILL, [source], agency, start.date(), end.date())  # before Prefect starts: one line, at once
    config.prefect_defaults()  # before Prefect is imported: no telemetry
    from contextlib import nullcontext

    from awardwatch.flows.backfill import backfill
    from awardwatch.flows.tasks import cluster_workers, local_cluster, quiet_console, task_runner

    quiet_console()
    with (local_cluster(s.dask_workers) if s.dask_workers and not s.dask_address else nullcontext(s.dask_address)) as address:
        flow = backfill.with_options(task_runner=task_runner(s, address)) if address else backfill
        if address and concurrency is None and "backfill_concurrency" not in config.load().model_fields_set:
            concurrency = cluster_workers(address) + 1  # every worker stages while the writer merges
        with ingest_progress() as progress:
            result = flow(start=start.date(), end=end.date(), agencies=agency, source=source, concurrency=concurrency,
                          warehouse=str(warehouse) if warehouse else None,
                          progress=None if address else progress)  # a flow's parameters travel to Dask workers: no bars there
    print_job(result)


@app.command()
def demo(
    warehouse: Warehouse = None,
    rows: Annotated[int, typer.Option(help="Transactions in the generated feed.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the generated feed (same seed, same data).")] = 2018,
) -> None:
    """Run the whole pipeline offline on a generated sample feed and show a query on the result."""
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.demo import run_demo
    from awardwatch.warehouse.reports import EXAMPLE_SQL

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


# Free space a command needs (set by ingest: its inputs, twice over: staging and the warehouse)
_NEEDS: dict[str, object] = {}


def _need_space(s: Settings, paths: list[Path]) -> None:
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
    from awardwatch.flows import settings as config

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


def _stop_transfers() -> None:
    """Tells HTTP transfers in every thread to stop. None runs unless flows.sources.http was imported, and a
    signal handler should not import it (httpx) on the way out."""
    http = sys.modules.get("awardwatch.flows.sources.http")
    if http is not None:
        http.STOPPING.set()


def _terminate(signum, frame) -> None:
    """SIGTERM: stop HTTP transfers in every thread and unwind the main thread like Ctrl-C,
    so the run in progress is recorded as 'interrupted'."""
    _stop_transfers()
    _NEEDS["terminated"] = True
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _terminated() -> None:
    """Ends the process now: the run in progress is already recorded as interrupted (the main
    thread unwound through it). Exit handlers run (they stop Prefect's temporary server), but
    worker threads still sleeping in a Prefect retry delay or a download are not waited for."""
    import atexit

    print("interrupted (SIGTERM); the run is recorded as interrupted", file=sys.stderr, flush=True)
    try:
        _crash_flow_run()  # before the exit handlers: they may stop Prefect's temporary server
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143)


CRASH_WAIT = 3.0  # seconds the way out may spend telling Prefect that its flow run crashed


def _crash_flow_run() -> None:
    """Marks the Prefect flow run of this process Crashed ("terminated (SIGTERM)") unless it is already final:
    a main thread stuck in a wait (the task runner's threads) never reaches Prefect's own crash report, and the
    run would stay Running. Only when Prefect is already imported (never on the way of `--help`), at most
    ``CRASH_WAIT`` seconds, errors ignored: the exit does not hang on the API."""
    tasks = sys.modules.get("awardwatch.flows.tasks") if "prefect" in sys.modules else None
    flow_run = getattr(tasks, "FLOW_RUN", {}).get("id")
    if not flow_run:
        return
    import threading

    def crash() -> None:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Crashed

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run).state
                if state is None or not state.is_final():
                    client.set_flow_run_state(flow_run, Crashed(message="terminated (SIGTERM)"))
        except BaseException:  # noqa: BLE001 - the process is ending; its run is already recorded
            pass

    reporter = threading.Thread(target=crash, name="awardwatch-crash-flow-run", daemon=True)
    reporter.start()
    reporter.join(CRASH_WAIT)


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
        _stop_transfers()
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


def explain(exc: Exception) -> tuple[int, str]:
    """An error as the terminal shows it: (exit status, one line). 2 for a usage error or an unexpected
    one, 1 for an error of the input, the warehouse or the network."""
    if isinstance(exc, UsageError):
        return 2, f"error: {exc}"
    if disk_full(exc):
        return 1, f"error: {disk_full_message()}"
    if isinstance(exc, AwardwatchError):
        return 1, f"error: {exc}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return 2, f"error: unexpected {type(exc).__name__}: {first} (set AWARDWATCH_DEBUG=1 for the traceback)"


def _main() -> None:
    try:
        app()
    except SystemExit:
        if _NEEDS.get("terminated"):  # typer turns the KeyboardInterrupt of SIGTERM into exit code 130
            _terminated()
        raise
    except Exception as exc:
        from awardwatch.flows import settings as config

        if config.debug() and not isinstance(exc, AwardwatchError):
            raise
        code, line = explain(exc)
        print(line, file=sys.stderr)
        sys.exit(code)
    except BaseException:  # Ctrl-C, SIGTERM, Prefect's TerminationSignal
        _terminated() if _NEEDS.get("terminated") or not isinstance(sys.exc_info()[1], KeyboardInterrupt) else None
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
