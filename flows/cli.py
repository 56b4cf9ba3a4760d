"""The `awardwatch` command."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from flows import pipeline
from flows import settings as config
from flows.cli_reports import changes_command, report_app
from flows.options import BatchRows, Format, MaxRejected, OutputFormat, Publish, SnapshotUrl, Warehouse, err, out
from flows.output import render
from schemas.errors import AwardwatchError

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

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    doomed = prune(open_store(s.snapshots), keep)
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
        "rows_duplicate AS duplicates, rows_quarantined AS quarantined, reconciled, left(message, 80) AS message "
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


def main() -> None:
    try:
        app()
    except AwardwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still one line, with a way to see more
        if os.environ.get("AWARDWATCH_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (set AWARDWATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
