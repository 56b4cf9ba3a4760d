"""Watermarks of incremental feeds and the chunks of backfills."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import duckdb

from warehouse.runs import now


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
               run_id: str, rows_read: int) -> None:
    con.execute(
        "INSERT OR REPLACE INTO backfill_chunks VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?)",
        [backfill, source, scope, start, end, run_id, rows_read, now()],
    )
