"""The ``runs`` table: one row per pipeline run, with counts that must reconcile."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from awardwatch.schemas.errors import InputError
from awardwatch.warehouse import db

COUNTS = ("read", "inserted", "updated", "unchanged", "duplicate", "quarantined", "deleted")


@dataclass
class Counts:
    """Rows of one file or one run: ``read`` = inserted + updated + unchanged + duplicate
    + quarantined + deleted, where ``deleted`` counts the deletion records read (the
    ``deletions`` table says which of them removed a row)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicate: int = 0
    quarantined: int = 0
    deleted: int = 0

    def __iadd__(self, other: "Counts") -> "Counts":
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def reconciled(self) -> bool:
        return self.read == self.inserted + self.updated + self.unchanged + self.duplicate + self.quarantined + self.deleted


@dataclass
class Run:
    run_id: str
    command: str
    parameters: dict = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_run_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def start(con: duckdb.DuckDBPyConnection, command: str, parameters: dict) -> Run:
    """Marks runs left 'running' by a dead process as interrupted, then records a new run."""
    con.execute(
        "UPDATE runs SET status = 'interrupted', ended_at = coalesce(ended_at, ?), "
        "message = 'did not finish (killed or crashed); its committed files are kept' WHERE status = 'running'",
        [now()],
    )
    run = Run(new_run_id(), command, parameters)
    con.execute(
        "INSERT INTO runs (run_id, command, parameters, started_at, status) VALUES (?, ?, ?, ?, 'running')",
        [run.run_id, command, json.dumps(parameters, default=str), now()],
    )
    return run


def add_counts(con: duckdb.DuckDBPyConnection, run_id: str, counts: Counts) -> None:
    """Adds a file's counts to its run (inside the file's transaction)."""
    sets = ", ".join(f"rows_{n} = rows_{n} + ?" for n in COUNTS)
    con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*(getattr(counts, n) for n in COUNTS), run_id])


def finish(con: duckdb.DuckDBPyConnection, run: Run, status: str, message: str | None = None) -> None:
    con.execute(
        "UPDATE runs SET status = ?, ended_at = ?, message = ?, reconciled = ? WHERE run_id = ?",
        [status, now(), message, run.counts.reconciled, run.run_id],
    )


def record_skipped(con: duckdb.DuckDBPyConnection, run_id: str, source: str, skipped: list) -> None:
    """Lists the inputs a run did not read (``files.Skipped``: name, size, why) in ``run_files``, status 'skipped'."""
    for s in skipped:
        con.execute("INSERT OR REPLACE INTO run_files (run_id, source, source_file, status, message) VALUES (?, ?, ?, 'skipped', ?)",
                    [run_id, source, s.name, f"{s.why} ({s.size:,} bytes)"])


def skipped_note(skipped: list) -> str | None:
    """The run's message when it skipped inputs (None when it read them all)."""
    if not skipped:
        return None
    shown = "; ".join(f"{s.name} ({s.size:,} bytes, {s.why})" for s in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"skipped {len(skipped)} input(s) not read: {shown}{more} (see run_files, status 'skipped')"


def counts_of(con: duckdb.DuckDBPyConnection, run_id: str) -> Counts:
    row = con.execute(f"SELECT {', '.join(f'rows_{n}' for n in COUNTS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return Counts(*row)


def as_dict(counts: Counts) -> dict:
    return asdict(counts) | {"reconciled": counts.reconciled}


def unfinished(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the warehouse must not be published now, or None: its latest run did not finish
    ('running' while nobody holds the warehouse, i.e. killed; 'interrupted'), or failed after
    committing files (their company resolution, marts and invariants never ran). A run that
    failed before committing anything left the warehouse as the run before it."""
    row = con.execute(
        "SELECT run_id, command, status, started_at::TIMESTAMP(0), parameters, message, "
        "rows_read > 0 OR EXISTS (SELECT 1 FROM run_files f WHERE f.run_id = r.run_id AND f.status = 'loaded') AS committed "
        "FROM runs r ORDER BY started_at DESC, run_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run_id, command, status, started, parameters, message, committed = row
    if status == "succeeded" and con.execute("SELECT count(*) FROM pending_awards").fetchone()[0]:
        return (f"run {run_id} ({command}, started {started}) loaded rows whose parent companies and marts were never "
                "refreshed (the job stopped before its last step); run `awardwatch report resolve`, or the same job again")
    if status == "succeeded" or (status == "failed" and not committed):
        return None
    how = status if status != "running" else "killed or crashed (still marked running)"
    paths = (json.loads(parameters or "{}") or {}).get("paths") if command == "ingest" else None
    again = f"`awardwatch ingest {' '.join(paths)}`" if paths else f"`awardwatch {command}` with the same options"
    note = f": {message.splitlines()[0][:160]}" if status == "failed" and message else ""
    return (f"run {run_id} ({command}, started {started}) did not finish ({how}{note}) and part of it is in the warehouse; "
            f"finish it by running {again} again, or roll it back by restoring the warehouse file from before the run")


def set_snapshot(con: duckdb.DuckDBPyConnection, run_ids: list[str], snapshot_id: str) -> None:
    """Records the snapshot that first reflects these runs."""
    con.execute(f"UPDATE runs SET snapshot_id = ? WHERE run_id IN ({', '.join('?' * len(run_ids))})", [snapshot_id, *run_ids])


def listing(path: Path, limit: int) -> tuple[list[str], list[tuple]]:
    """The latest ``limit`` runs with their counts, newest first, on a read-only connection: (columns, rows)."""
    if limit < 0:
        raise InputError(f"--limit must be 0 or more, not {limit}")
    con = db.connect(path, read_only=True)
    try:
        cursor = con.execute(
            "SELECT run_id, command, status, started_at::TIMESTAMP(0) AS started, "
            "round(epoch(ended_at - started_at), 1) AS seconds, rows_read AS read, rows_inserted AS inserted, "
            "rows_updated AS updated, rows_unchanged AS unchanged, rows_duplicate AS duplicates, "
            "rows_quarantined AS quarantined, reconciled, left(reconciliation, 60) AS usaspending, "
            "left(message, 80) AS message FROM runs ORDER BY started_at DESC LIMIT ?", [int(limit)])
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def mark_failed(con: duckdb.DuckDBPyConnection, run_ids: list[str], message: str) -> None:
    """A job step after its runs (``flows.core.ingest.settle``) failed: the runs are failed, with why."""
    con.execute(f"UPDATE runs SET status = 'failed', message = ? WHERE run_id IN ({', '.join('?' * len(run_ids))})",
                [message, *run_ids])


def unpublished(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Succeeded runs that no snapshot reflects yet, oldest first."""
    return [r for (r,) in con.execute(
        "SELECT run_id FROM runs WHERE status = 'succeeded' AND snapshot_id IS NULL ORDER BY started_at, run_id").fetchall()]


def quarantine_query(run_id: str) -> str:
    """The query a run's summary suggests for its quarantined rows and their reasons."""
    return f"SELECT source_file, source_row, reasons FROM quarantine WHERE last_run_id = '{run_id}'"
