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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from awardwatch.schemas.errors import WarehouseError

MIGRATIONS = Path(__file__).with_name("migrations")
SPILL = "duckdb-spill"  # DuckDB's spill folder, under staging/ beside the warehouse

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
    check_file(path)
    if not read_only:  # DuckDB creates its spill folder when it first spills, but not the folder above it
        (path.parent / "staging").mkdir(parents=True, exist_ok=True)
    config = {"preserve_insertion_order": "false", "memory_limit": memory_limit,
              "temp_directory": str(path.parent / "staging" / SPILL)}
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
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open warehouse {path}: {str(exc).splitlines()[0]}") from None
    opened = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]
    if not opened:  # DuckDB opens a path ending in .csv, .parquet, .json... as an in-memory database
        con.close()
        raise WarehouseError(f"warehouse path {path} (--warehouse, AWARDWATCH_WAREHOUSE) is not a DuckDB database file (DuckDB would open it as an empty in-memory "
                             "database and lose everything written); name a .duckdb file")
    con.execute("SET enable_progress_bar = false")
    if not read_only:
        migrate(con)
    return con


# a DuckDB database file: an 8-byte checksum, then this magic
MAGIC, MAGIC_AT = b"DUCK", 8


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""
    con.execute("BEGIN")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def setting(con: duckdb.DuckDBPyConnection, name: str, value: int) -> Iterator[None]:
    """DuckDB's integer setting ``name`` at ``value`` meanwhile, then back to what it was (failed or not)."""
    before = con.execute("SELECT current_setting(?)", [name]).fetchone()[0]
    con.execute(f"SET {name} = {int(value)}")
    try:
        yield
    finally:
        con.execute(f"SET {name} = {int(before)}")


def no_vacuum(con: duckdb.DuckDBPyConnection):
    """A checkpoint meanwhile (a large COMMIT triggers one) writes what changed without merging row groups.
    DuckDB's vacuum merges a changed row group with its neighbours when together they fit in fewer, so the
    commit of each small append rewrote the table's trailing partial row groups (up to 122,880 rows of 300
    columns, measured 6.5 s, against 0.5 s without: the last chunk of a 12-chunk backfill cost 2-5x the
    first). A file's load commits this way; the merging happens at the job's later checkpoints (and on
    close), once, over what the job touched."""
    return setting(con, "max_vacuum_tasks", 0)


def check_file(path: Path) -> None:
    """Refuses, in one line, a warehouse path that exists and is not a DuckDB database file
    (a folder, a CSV, Parquet or JSON file...): nothing is read from it or written to it."""
    if not path.exists():
        return
    if not path.is_file():
        raise WarehouseError(f"warehouse path {path} (--warehouse, AWARDWATCH_WAREHOUSE) is a folder, not a DuckDB database file; name a file such as {path / 'awardwatch.duckdb'}")
    with open(path, "rb") as f:
        head = f.read(MAGIC_AT + len(MAGIC))
    if head[MAGIC_AT:] != MAGIC:
        kind = "an empty file" if not head else "Parquet" if head.startswith(b"PAR1") else "a ZIP file" if head.startswith(b"PK") else "text" if _is_text(head) else "another format"
        raise WarehouseError(f"warehouse path {path} (--warehouse, AWARDWATCH_WAREHOUSE) exists and is not a DuckDB database (it holds {kind}); "
                             "nothing was read or written: name the warehouse's .duckdb file or a path that does not exist yet")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def owner_file(path: Path) -> Path:
    return Path(str(path) + ".owner.json")


def claim(path: Path, run_id: str, command: str) -> bool:
    """Notes which run writes the warehouse, for the message another process gets. The note is
    advisory (DuckDB's lock is what protects the file): one that cannot be written (a read-only
    or immutable file) is left as it is, and ``_busy`` trusts a note only if its process holds the lock."""
    info = {"run_id": run_id, "command": command, "pid": os.getpid(), "since": _now().isoformat(timespec="seconds")}
    try:
        owner_file(path).write_text(json.dumps(info))
        return True
    except OSError:
        return False


def _busy(path: Path, text: str, read_only: bool, wait: float) -> str:
    """Who holds the lock: DuckDB names the process and says when it holds the file read-only
    (its hint 'you would be able to open this database in read-only mode'); the owner note names
    the run, when the note's process is the one holding the lock."""
    found = re.search(r"PID (\d+)", text)
    pid = int(found.group(1)) if found else None
    waited = f" after waiting {wait:.0f} s" if wait else ""
    if "read-only mode" in text:
        who = f"process {pid}{_command_of(pid)}" if pid else "another process"
        return f"warehouse {path} is open for reading by {who}{waited}; try again when that query or report has finished"
    try:
        o = json.loads(owner_file(path).read_text())
        if pid is not None and int(o["pid"]) != pid:
            raise ValueError("the note is from an earlier run")
        holder = f"run {o['run_id']} ({o['command']}, process {o['pid']}, since {o['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        holder = f"process {pid}{_command_of(pid)}" if pid else "another process"
    advice = "query a snapshot instead: awardwatch query --snapshot latest" if read_only else "try again when it has finished"
    return f"warehouse {path} is being written by {holder}{waited}; {advice}"


def _command_of(pid: int | None) -> str:
    """`` (awardwatch query ...)`` for a process whose command line can be read (Linux), else ''."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except (OSError, TypeError):
        return ""
    args = [a for a in args if a]
    if "awardwatch.flows.cli" in args:
        args = ["awardwatch", *args[args.index("awardwatch.flows.cli") + 1:]]
    elif args and args[0].endswith("awardwatch"):
        args = ["awardwatch", *args[1:]]
    text = " ".join(args)
    return f" ({text[:57] + '...' if len(text) > 60 else text})" if text else ""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
