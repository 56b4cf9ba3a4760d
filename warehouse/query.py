"""Read-only SQL on the warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.errors import AwardwatchError
from warehouse.db import connect


class QueryError(AwardwatchError):
    """SQL that failed or tried to write."""


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs one statement; returns column names and rows. Errors become one line."""
    try:
        cursor = con.execute(sql)
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if any(word in message.lower() for word in ("read-only", "read_only", "external access", "file system operations are disabled")):
            raise QueryError(f"query is read-only: {message}") from None
        raise QueryError(f"query failed: {message}") from None
    if cursor.description is None:
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()


def query_warehouse(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs SQL on a read-only connection that can neither write nor touch other files."""
    con = connect(path, read_only=True)
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return run_sql(con, sql)
    finally:
        con.close()


def query_snapshot(snapshot_url: str, snapshot: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs SQL over a published snapshot's Parquet files (local or S3), each table under its name."""
    from warehouse.snapshots import connect_snapshot
    from warehouse.store import open_store

    con, _ = connect_snapshot(open_store(snapshot_url), snapshot)
    try:
        con.execute("SET lock_configuration = true")
        return run_sql(con, sql)
    finally:
        con.close()
