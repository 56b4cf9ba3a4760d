"""Read-only SQL on the warehouse or on a snapshot, for SQL the user supplies.

Every connection that runs such SQL is sandboxed (``snapshots.sandbox``: no file or network
access beyond the snapshot's own files, configuration locked) and takes one statement that
DuckDB's own parser classifies as a SELECT (``WITH``, ``FROM``, ``VALUES``, ``DESCRIBE``,
``SHOW``, ``SUMMARIZE`` and table-valued ``PRAGMA``s parse as one too). Anything else
(ATTACH, COPY, EXPORT, INSTALL, LOAD, SET, PRAGMA that sets, DETACH, IMPORT, CREATE SECRET,
EXPLAIN, CALL, transactions...) is refused before it runs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from awardwatch.schemas.errors import AwardwatchError
from awardwatch.warehouse.db import connect

EXAMPLE = 'awardwatch query "SELECT count(*) FROM transactions"'


class QueryError(AwardwatchError):
    """SQL that failed or tried to write."""


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def checked_statement(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """The one SELECT-like statement in ``sql``, parsed by the (sandboxed) connection, or a QueryError.
    Parsing runs on that connection because DuckDB's parser reads files for some statements
    (``IMPORT DATABASE`` reads its ``schema.sql``)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {_one_line(exc)}") from None
    if not statements:
        raise QueryError(f"no SQL statement given; pass one SELECT, e.g. {EXAMPLE}")
    if len(statements) > 1:
        raise QueryError(f"query takes one statement, got {len(statements)}; run them one at a time")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        words = statement.query.split()
        kind = words[0].upper() if words else statement.type.name
        raise QueryError(f"query is read-only: {kind} is not allowed, only SELECT (or WITH, FROM, DESCRIBE, SHOW, SUMMARIZE)")
    return statement


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs one SELECT-like statement; returns column names and rows. Errors become one line."""
    statement = checked_statement(con, sql)
    try:
        cursor = con.execute(statement)
    except duckdb.Error as exc:
        message = _one_line(exc)
        if any(word in message.lower() for word in ("read-only", "read_only", "external access", "file system operations are disabled")):
            raise QueryError(f"query is read-only and reads only the tables awardwatch gives it: {message}") from None
        raise QueryError(f"query failed: {message}") from None
    if cursor.description is None:
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()


def query_warehouse(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs SQL on a read-only, sandboxed connection that can neither write nor touch other files."""
    from awardwatch.warehouse.snapshots import sandbox

    con = connect(path, read_only=True)
    try:
        con.execute("SET allow_persistent_secrets = false")  # no secret read from ~/.duckdb/stored_secrets
        sandbox(con)
        return run_sql(con, sql)
    finally:
        con.close()


def query_snapshot(snapshot_url: str, snapshot: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs SQL over a published snapshot's Parquet files (local or S3), each table under its name,
    on a sandboxed connection that reads those files and nothing else."""
    from awardwatch.warehouse.snapshots import connect_snapshot
    from awardwatch.warehouse.store import open_store

    con, _ = connect_snapshot(open_store(snapshot_url), snapshot)
    try:
        return run_sql(con, sql)
    finally:
        con.close()
