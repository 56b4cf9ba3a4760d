"""Opening the DuckDB warehouse, and its versioned DDL.

The pipeline is the only writer: ``connect`` opens the file for writing and
applies pending migrations (``migrations/NNN_name.sql``, each in its own
transaction). Readers use ``connect(read_only=True)`` or the snapshots.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from schemas.errors import WarehouseError

MIGRATIONS = Path(__file__).with_name("migrations")
# DuckDB's memory cap; work beyond it spills to staging/duckdb-spill. Every step of a run
# (loads, company resolution, awards, publish) was measured to fit at 4M rows under it.
MEMORY_LIMIT = "1GB"


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped, in order."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        m = re.match(r"(\d+)_(.+)\.sql$", path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path.read_text()))
    return found


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = 'main'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Applies pending migrations; returns the versions applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
    )
    current = schema_version(con)
    applied = []
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, _now()])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def connect(path: Path, *, read_only: bool = False, threads: int | None = None, wait: float = 0.0,
            memory_limit: str = MEMORY_LIMIT, sleep=time.sleep) -> duckdb.DuckDBPyConnection:
    """Opens the warehouse file (creating it and its folder when writing).

    DuckDB allows one writing process per file. While another process holds it, this
    waits up to ``wait`` seconds, then fails with one line naming the run that holds it."""
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}; run `awardwatch ingest` or `awardwatch demo` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config = {"preserve_insertion_order": "false", "memory_limit": memory_limit,
              "temp_directory": str(path.parent / "staging" / "duckdb-spill")}
    if threads:
        config["threads"] = str(threads)
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise WarehouseError(f"cannot open warehouse {path}: {str(exc).splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                raise WarehouseError(_busy(path, str(exc), read_only, wait)) from None
            sleep(0.5)
    con.execute("SET enable_progress_bar = false")
    if not read_only:
        migrate(con)
    return con


def owner_file(path: Path) -> Path:
    return Path(str(path) + ".owner.json")


def claim(path: Path, run_id: str, command: str) -> None:
    """Notes which run writes the warehouse, for the message another process gets."""
    info = {"run_id": run_id, "command": command, "pid": os.getpid(), "since": _now().isoformat(timespec="seconds")}
    owner_file(path).write_text(json.dumps(info))


def _busy(path: Path, text: str, read_only: bool, wait: float) -> str:
    try:
        o = json.loads(owner_file(path).read_text())
        holder = f"run {o['run_id']} ({o['command']}, process {o['pid']}, since {o['since']})"
    except (OSError, ValueError, KeyError):
        pid = re.search(r"PID (\d+)", text)
        holder = f"process {pid.group(1)}" if pid else "another process"
    waited = f" after waiting {wait:.0f} s" if wait else ""
    advice = "query a snapshot instead: awardwatch query --snapshot latest" if read_only else "try again when it has finished"
    return f"warehouse {path} is being written by {holder}{waited}; {advice}"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
