"""The ``runs`` table: one row per pipeline run, with counts that must reconcile."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import duckdb

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


def counts_of(con: duckdb.DuckDBPyConnection, run_id: str) -> Counts:
    row = con.execute(f"SELECT {', '.join(f'rows_{n}' for n in COUNTS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return Counts(*row)


def as_dict(counts: Counts) -> dict:
    return asdict(counts) | {"reconciled": counts.reconciled}
