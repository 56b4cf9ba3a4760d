"""SQL of `awardwatch reconcile` and `awardwatch status`: the warehouse's own figures, the
``reconciliations`` table (migration 005) and what the feed tables say about completeness.

Plain functions over a DuckDB connection; flows/reconcile.py puts them together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

FIGURES = ("warehouse_obligations", "usaspending_obligations", "obligations_difference",
           "warehouse_transactions", "usaspending_transactions", "transactions_difference")
# Award Data Archive names (usaspending-api download/v2/list_monthly_downloads.py builds them):
# FY2018_070_Contracts_Full_20240708.zip, FY(All)_070_Contracts_Delta_20240808.zip; loaded members add _1.csv
ARCHIVE_NAME = re.compile(r"FY(?P<fy>\d{4}|\(All\))_(?P<agency>[0-9A-Z]{3,4})_Contracts_(?P<kind>Full|Delta)_(?P<stamp>\d{8})")


# ------------------------------------------------------------------ reconciliation


def subtiers_of(con: duckdb.DuckDBPyConnection, toptier_code: str) -> list[tuple[str, str, str]]:
    """(subtier code, most reported subtier name, toptier name) of a department's sub-agencies in the warehouse."""
    return con.execute(
        """
        SELECT awarding_sub_agency_code, mode(awarding_sub_agency_name), mode(awarding_agency_name)
        FROM transactions
        WHERE awarding_agency_code = ? AND awarding_sub_agency_code IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """,
        [toptier_code],
    ).fetchall()


def names_of(con: duckdb.DuckDBPyConnection, codes: list[str], years: list[int] | None = None) -> dict[str, str]:
    """The most reported name of each subtier code in the warehouse (in those fiscal years, when given)."""
    rows = con.execute(
        "SELECT awarding_sub_agency_code, mode(awarding_sub_agency_name) FROM transactions "
        f"WHERE list_contains(?, awarding_sub_agency_code) {_in_years(years) if years is not None else ''} GROUP BY 1",
        [codes],
    ).fetchall()
    return dict(rows)


def _in_years(years: list[int]) -> str:
    """``AND fiscal_year IN (...)`` with literals, so the scan skips the row groups of other years."""
    return f"AND fiscal_year IN ({', '.join(str(int(fy)) for fy in years) or 'NULL'})"


def fiscal_years(con: duckdb.DuckDBPyConnection, codes: list[str]) -> list[int]:
    """Every fiscal year (of action_date) the warehouse holds for these subtier codes."""
    rows = con.execute(
        "SELECT DISTINCT fiscal_year FROM transactions WHERE list_contains(?, awarding_sub_agency_code) "
        "AND fiscal_year IS NOT NULL ORDER BY 1",
        [codes],
    ).fetchall()
    return [r[0] for r in rows]


def warehouse_figures(con: duckdb.DuckDBPyConnection, codes: list[str], years: list[int]) -> dict[tuple[str, int], tuple[Decimal, int]]:
    """(sum of federal_action_obligation, transactions) per (subtier code, fiscal year); absent cells are zero.

    The warehouse holds contract and IDV transactions only, so every row counts (as the search
    endpoints count award types A-D and IDV_*)."""
    rows = con.execute(
        f"""
        SELECT awarding_sub_agency_code, fiscal_year, coalesce(sum(federal_action_obligation), 0)::DECIMAL(38,2), count(*)
        FROM transactions
        WHERE list_contains(?, awarding_sub_agency_code) {_in_years(years)}
        GROUP BY 1, 2
        """,
        [codes],
    ).fetchall()
    found = {(c, fy): (money, n) for c, fy, money, n in rows}
    return {(c, fy): found.get((c, fy), (Decimal("0.00"), 0)) for c in codes for fy in years}


def record(con: duckdb.DuckDBPyConnection, run_id: str, checked_at: datetime, phase: str, rows: list[dict], scope: str = "all") -> None:
    """Stores one check of a run (rows as flows/reconcile.Row.as_dict gives them); ``scope`` 'touched': it
    checked only the groups a job touched (migration 008)."""
    if not rows:
        return
    con.executemany(
        f"INSERT INTO reconciliations (run_id, checked_at, phase, agency_code, agency_name, fiscal_year, {', '.join(FIGURES)}, "
        "status, repair_run_id, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[run_id, checked_at, phase, r["agency_code"], r["agency_name"], r["fiscal_year"], *(r[f] for f in FIGURES), r["status"],
          r.get("repair_run_id"), scope] for r in rows],
    )


def mismatch_since(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], datetime]:
    """For each (subtier, fiscal year), when its current run of mismatching checks began (the
    first mismatch after its last match), from every earlier reconciliation."""
    if not keys:
        return {}
    rows = con.execute(
        """
        WITH final AS (  -- a run's last word on a cell: its recheck when it repaired it
            SELECT * FROM reconciliations QUALIFY row_number() OVER (PARTITION BY run_id, agency_code, fiscal_year ORDER BY phase = 'recheck' DESC) = 1
        ), last_match AS (
            SELECT agency_code, fiscal_year, max(checked_at) AS at FROM final WHERE status = 'match' GROUP BY 1, 2
        )
        SELECT f.agency_code, f.fiscal_year, min(f.checked_at)
        FROM final f LEFT JOIN last_match m USING (agency_code, fiscal_year)
        WHERE f.status = 'mismatch' AND (m.at IS NULL OR f.checked_at > m.at)
        GROUP BY 1, 2
        """
    ).fetchall()
    wanted = set(keys)
    return {(c, fy): at for c, fy, at in rows if (c, fy) in wanted}


# Each cell's latest word: that of the latest run that checked every year of its agencies (scope 'all'),
# unless a nightly checked the cell since (scope 'touched', migration 008); within a run, its recheck.
CURRENT = """
WITH final AS (
    SELECT * FROM reconciliations QUALIFY row_number() OVER (PARTITION BY run_id, agency_code, fiscal_year ORDER BY phase = 'recheck' DESC) = 1
), base AS (
    SELECT run_id, max(checked_at) AS last_at FROM reconciliations WHERE coalesce(scope, 'all') <> 'touched' GROUP BY 1 ORDER BY 2 DESC LIMIT 1
), cells AS (
    SELECT f.* FROM final f
    WHERE f.run_id IN (SELECT run_id FROM base)
       OR (f.scope = 'touched' AND f.checked_at > coalesce((SELECT last_at FROM base), '-infinity'::TIMESTAMP))
    QUALIFY row_number() OVER (PARTITION BY agency_code, fiscal_year ORDER BY checked_at DESC) = 1
)
"""


def _latest_run(con: duckdb.DuckDBPyConnection) -> tuple | None:
    return con.execute("SELECT run_id, max(checked_at) FROM reconciliations GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()


def latest_mismatches(con: duckdb.DuckDBPyConnection) -> tuple[str | None, datetime | None, list[dict]]:
    """The latest reconciliation run, and the cells whose latest word (``CURRENT``) is a mismatch, each with
    the run and time of that word."""
    latest = _latest_run(con)
    if latest is None:
        return None, None, []
    cursor = con.execute(
        f"""
        {CURRENT}
        SELECT agency_code, agency_name, fiscal_year, {', '.join(FIGURES)}, phase, run_id, checked_at
        FROM cells WHERE status = 'mismatch'
        ORDER BY abs(obligations_difference) DESC, abs(transactions_difference) DESC, agency_code, fiscal_year
        """
    )
    columns = [d[0] for d in cursor.description]
    return latest[0], latest[1], [dict(zip(columns, r)) for r in cursor.fetchall()]


# ------------------------------------------------------------------ status


def source_state(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per (source, scope) seen in runs or watermarks: last nightly success, last success of any
    command, last failure, watermark value and when it moved."""
    cursor = con.execute(
        """
        WITH r AS (
            SELECT json_extract_string(parameters, '$.source') AS source, json_extract_string(parameters, '$.scope') AS scope,
                   command, status, started_at, coalesce(ended_at, started_at) AS ended_at, message, run_id
            FROM runs WHERE command IN ('run', 'backfill')
        ), s AS (
            SELECT source, scope,
                   max(ended_at) FILTER (WHERE status = 'succeeded' AND command = 'run') AS last_nightly,
                   max(ended_at) FILTER (WHERE status = 'succeeded') AS last_success,
                   arg_max(run_id, ended_at) FILTER (WHERE status = 'succeeded') AS last_success_run,
                   max(ended_at) FILTER (WHERE status IN ('failed', 'interrupted')) AS last_failure,
                   arg_max(message, ended_at) FILTER (WHERE status IN ('failed', 'interrupted')) AS last_failure_message
            FROM r WHERE source IS NOT NULL AND scope IS NOT NULL GROUP BY 1, 2
        )
        SELECT coalesce(s.source, w.source) AS source, coalesce(s.scope, w.scope) AS scope, last_nightly, last_success,
               last_success_run, last_failure, last_failure_message, w.value AS watermark, w.updated_at AS watermark_moved
        FROM s FULL JOIN watermarks w ON s.source = w.source AND s.scope = w.scope
        ORDER BY 1, 2
        """
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, r)) for r in cursor.fetchall()]


def unfinished_chunks(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Backfill chunks not done: planned and never finished, or whose load failed (runs of command
    'backfill' carry the chunk and backfill id), or a month missing between the done chunks of a backfill."""
    cursor = con.execute(
        """
        WITH failed AS (
            SELECT json_extract_string(parameters, '$.backfill_id') AS backfill_id,
                   json_extract_string(parameters, '$.source') AS source, json_extract_string(parameters, '$.scope') AS scope,
                   split_part(json_extract_string(parameters, '$.chunk'), '..', 1)::DATE AS chunk_start,
                   split_part(json_extract_string(parameters, '$.chunk'), '..', 2)::DATE AS chunk_end,
                   arg_max(status, started_at) AS run_status, arg_max(message, started_at) AS message, arg_max(run_id, started_at) AS run_id
            FROM runs WHERE command = 'backfill' AND status IN ('failed', 'interrupted') AND json_extract_string(parameters, '$.chunk') IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5
        ), planned AS (
            SELECT backfill_id, source, scope, chunk_start, chunk_end FROM backfill_chunks WHERE status <> 'done'
        ), spans AS (  -- months between the first and last done chunk of each monthly backfill
            SELECT backfill_id, any_value(source) AS source, any_value(scope) AS scope, min(chunk_start) AS lo, max(chunk_start) AS hi
            FROM backfill_chunks WHERE status = 'done' GROUP BY 1 HAVING count(*) > 1
               AND bool_and(chunk_end < chunk_start + INTERVAL 31 DAY)
        ), gaps AS (
            SELECT backfill_id, source, scope, m::DATE AS chunk_start, (m + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE AS chunk_end
            FROM spans, unnest(generate_series(date_trunc('month', lo), date_trunc('month', hi), INTERVAL 1 MONTH)) AS g(m)
        ), candidates AS (
            SELECT backfill_id, source, scope, chunk_start, chunk_end FROM failed
            UNION SELECT * FROM planned
            UNION SELECT * FROM gaps
        )
        SELECT c.backfill_id, c.source, c.scope, c.chunk_start, c.chunk_end,
               coalesce(f.run_status, CASE WHEN p.backfill_id IS NOT NULL THEN 'never finished' ELSE 'missing' END) AS state,
               f.message, f.run_id
        FROM candidates c
        LEFT JOIN failed f USING (backfill_id, chunk_start)
        LEFT JOIN planned p USING (backfill_id, chunk_start)
        WHERE NOT EXISTS (SELECT 1 FROM backfill_chunks d WHERE d.backfill_id = c.backfill_id AND d.chunk_start = c.chunk_start AND d.status = 'done')
        ORDER BY c.source, c.scope, c.chunk_start
        """
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, r)) for r in cursor.fetchall()]


def plan_chunks(con: duckdb.DuckDBPyConnection, backfill: str, source: str, scope: str, chunks: list[tuple[date, date]], planned_at: datetime) -> None:
    """Records a backfill's chunks before they run (status 'planned'; feeds.chunk_done replaces each
    with 'done'), so a chunk whose download failed is still known to status."""
    con.executemany(
        "INSERT INTO backfill_chunks (backfill_id, source, scope, chunk_start, chunk_end, status, run_id, rows_read, finished_at) "
        "VALUES (?, ?, ?, ?, ?, 'planned', '', 0, ?) ON CONFLICT DO NOTHING",
        [[backfill, source, scope, a, b, planned_at] for a, b in chunks],
    )


@dataclass(frozen=True)
class Applied:
    """An Award Data Archive file the warehouse loaded."""

    toptier: str
    kind: str  # Full | Delta
    fiscal_year: int | None
    generated: date
    rows: int  # rows read from it (all parts)


def archive_files_loaded(con: duckdb.DuckDBPyConnection) -> list[Applied]:
    """Archive files loaded by succeeded runs, by name (their parts summed)."""
    rows = con.execute(
        "SELECT f.source_file, f.rows_read FROM run_files f JOIN runs r USING (run_id) "
        "WHERE f.source = 'archive' AND f.status = 'loaded' AND r.status = 'succeeded'"
    ).fetchall()
    found: dict[tuple, int] = {}
    for name, n in rows:
        m = ARCHIVE_NAME.search(name)
        if m:
            key = (m["agency"], m["kind"], None if m["fy"] == "(All)" else int(m["fy"]), datetime.strptime(m["stamp"], "%Y%m%d").date())
            found[key] = found.get(key, 0) + int(n or 0)
    return sorted((Applied(*k, n) for k, n in found.items()), key=lambda a: (a.toptier, a.kind, a.generated))


# ------------------------------------------------------------------ nightly


def mark_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str], verdict: str) -> None:
    """Notes a reconciliation's verdict on the load runs it checked (shown by ``awardwatch runs``)."""
    if run_ids:
        con.execute("UPDATE runs SET reconciliation = ? WHERE list_contains(?, run_id)", [verdict, run_ids])


def manifest_section(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The reconciliation as a snapshot manifest's ``reconciliation`` section (None before any): the latest
    run, and each cell's latest word (``CURRENT``) with the run that gave it."""
    latest = _latest_run(con)
    if latest is None:
        return None
    cursor = con.execute(
        f"""
        {CURRENT}
        SELECT agency_code, agency_name, fiscal_year, {', '.join(f"{f}::VARCHAR AS {f}" if "obligations" in f else f for f in FIGURES)}, status,
               run_id
        FROM cells ORDER BY agency_code, fiscal_year
        """
    )
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, r)) for r in cursor.fetchall()]  # money as exact decimal strings
    return {"run_id": latest[0], "checked_at": latest[1].isoformat(), "ok": all(r["status"] == "match" for r in rows),
            "rows": rows}
