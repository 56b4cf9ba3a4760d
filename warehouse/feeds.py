"""Watermarks of incremental feeds and the chunks of backfills."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import duckdb

from awardwatch.warehouse.runs import now


def watermark(con: duckdb.DuckDBPyConnection, source: str, scope: str) -> datetime | None:
    row = con.execute("SELECT value FROM watermarks WHERE source = ? AND scope = ?", [source, scope]).fetchone()
    return row[0] if row else None


def set_watermark(con: duckdb.DuckDBPyConnection, source: str, scope: str, value: datetime, run_id: str) -> None:
    """Moves a watermark (never backwards: re-reading old windows must not rewind it)."""
    con.execute(
        """
        INSERT INTO watermarks VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (source, scope) DO UPDATE SET value = greatest(watermarks.value, excluded.value),
            run_id = excluded.run_id, updated_at = excluded.updated_at
        """,
        [source, scope, value, run_id, now()],
    )


def watermarks(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {f"{s}/{scope}": v.isoformat() for s, scope, v in con.execute("SELECT source, scope, value FROM watermarks ORDER BY 1, 2").fetchall()}


def backfill_id(source: str, scope: str, start: date, end: date, chunk: str) -> str:
    return hashlib.sha256(f"{source}|{scope}|{start}|{end}|{chunk}".encode()).hexdigest()[:16]


def done_chunks(con: duckdb.DuckDBPyConnection, backfill: str) -> set[date]:
    return {r[0] for r in con.execute("SELECT chunk_start FROM backfill_chunks WHERE backfill_id = ? AND status = 'done'", [backfill]).fetchall()}


def chunk_done(con: duckdb.DuckDBPyConnection, backfill: str, source: str, scope: str, start: date, end: date,
               run_id: str, rows_read: int, worker: str = "") -> None:
    """A chunk merged: its run, rows, and where its map stage ran (a Dask worker's address, or '' for this process)."""
    con.execute(
        "INSERT OR REPLACE INTO backfill_chunks (backfill_id, source, scope, chunk_start, chunk_end, status, run_id, rows_read, "
        "finished_at, worker) VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?, ?)",
        [backfill, source, scope, start, end, run_id, rows_read, now(), worker],
    )


def previous_window(con: duckdb.DuckDBPyConnection, source: str, scope: str, before: date, *,
                    by_action_date: bool) -> tuple[str, str, int] | None:
    """The window loaded before this one for the same source and scope: (its dates, its run, rows read).
    By action date (backfill chunks): the done chunk ending latest before ``before``, of any backfill.
    By last-modified date (nightly): the latest succeeded nightly run of the scope."""
    if by_action_date:
        found = con.execute(
            "SELECT chunk_start || '..' || chunk_end, run_id, rows_read FROM backfill_chunks WHERE source = ? AND scope = ? "
            "AND status = 'done' AND chunk_end < ? ORDER BY chunk_end DESC, finished_at DESC LIMIT 1",
            [source, scope, before]).fetchone()
    else:
        found = con.execute(
            "SELECT coalesce(json_extract_string(parameters, '$.windows[-1]'), ''), run_id, rows_read FROM runs "
            "WHERE status = 'succeeded' AND command = 'run' AND json_extract_string(parameters, '$.source') = ? "
            "AND json_extract_string(parameters, '$.scope') = ? ORDER BY started_at DESC LIMIT 1",
            [source, scope]).fetchone()
    return tuple(found) if found else None
