"""What changed in ``transactions`` between two snapshots, limited to a watchlist.

``snapshot_changes`` returns ``Changes``: new awards, new modifications, deobligations,
corrections and deletions; ``flows/core/changes.py`` renders and publishes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from awardwatch.schemas.watchlist import Watchlist
from awardwatch.warehouse import companies
from awardwatch.warehouse.reports import ReportError, agency_sql, transaction_columns

CHANGE_KINDS = ("new award", "new modification", "deobligation", "correction", "deletion")
CHANGE_COLUMNS = ["change", "action_date", "agency", "award_key", "piid", "modification_number", "recipient",
                  "parent_company", "obligation", "current_value", "description", "transaction_key"]


@dataclass
class Changes:
    old_snapshot: str
    new_snapshot: str
    watchlist: Watchlist
    rows: list[tuple]  # CHANGE_COLUMNS

    columns = CHANGE_COLUMNS

    def of(self, kind: str) -> list[tuple]:
        return [r for r in self.rows if r[0] == kind]

    def counts(self) -> dict[str, int]:
        return {k: len(self.of(k)) for k in CHANGE_KINDS}

    def as_dict(self) -> dict:
        return {"old_snapshot": self.old_snapshot, "new_snapshot": self.new_snapshot,
                "watchlist": self.watchlist.describe(), "counts": self.counts(),
                "changes": [dict(zip(self.columns, r)) for r in self.rows]}


def previous_snapshot(store, snapshot_id: str) -> str:
    """The snapshot published before ``snapshot_id`` (its manifest's ``previous_snapshot_id`` when
    still there, else the newest complete one created before it)."""
    from awardwatch.warehouse.snapshots import PREFIX, list_snapshots, read_json

    manifest = read_json(store, f"{PREFIX}/{snapshot_id}/manifest.json")
    if manifest is None:
        raise ReportError(f"no snapshot {snapshot_id!r} at {store.url}; see `awardwatch snapshots list`")
    previous = manifest.get("previous_snapshot_id")
    if previous and read_json(store, f"{PREFIX}/{previous}/manifest.json") is not None:
        return previous
    older = [s for s in list_snapshots(store) if s["complete"] and s["snapshot_id"] != snapshot_id
             and (s["created_at"] or "", s["snapshot_id"]) < (manifest.get("created_at") or "", snapshot_id)]
    if not older:
        raise ReportError(f"snapshot {snapshot_id} has no earlier snapshot to compare with; pass --since SNAPSHOT")
    return max(older, key=lambda s: (s["created_at"] or "", s["snapshot_id"]))["snapshot_id"]


def _watch_sql(con: duckdb.DuckDBPyConnection, watchlist: Watchlist, table: str) -> tuple[str, dict]:
    """WHERE clause over ``table`` (transaction columns) for rows touching the watchlist."""
    if watchlist.empty:
        return "true", {}
    ors, params = [], {}
    if watchlist.companies:
        names = ["recipient_name", "recipient_parent_name"] + (
            ["parent_company"] if "parent_company" in transaction_columns(con) else [])
        tests = " OR ".join(f"aw_word_match(aw_normalise_name({table}.{n}), w.q)" for n in names)
        ors.append(f"EXISTS (SELECT 1 FROM (SELECT aw_normalise_name(unnest($companies::VARCHAR[])) AS q) w WHERE {tests})")
        params["companies"] = watchlist.companies
    for i, a in enumerate(watchlist.agencies):
        ors.append(f"{table}.{a.column} = $agency{i}")
        params[f"agency{i}"] = a.code
    return "(" + " OR ".join(ors) + ")", params


def _change_select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    parent = f"{table}.parent_company" if "parent_company" in transaction_columns(con) else "NULL::VARCHAR"
    return (f"{table}.action_date, {agency_sql(table)} AS agency, {table}.contract_award_unique_key, "
            f"{table}.award_id_piid, {table}.modification_number, {table}.recipient_name, {parent} AS parent_company, "
            f"{table}.federal_action_obligation, {table}.current_total_value_of_award, "
            f"{table}.transaction_description, {table}.contract_transaction_unique_key")


def _copy(source: duckdb.DuckDBPyConnection, sql: str, target: duckdb.DuckDBPyConnection, table: str) -> None:
    """A query's result on one connection as a temp table on another (through Arrow, in memory)."""
    data = source.execute(sql).to_arrow_table()
    target.register(f"{table}_arrow", data)
    target.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
    target.unregister(f"{table}_arrow")


def snapshot_changes(store, old: str | None = None, new: str = "latest", watchlist: Watchlist | None = None) -> Changes:
    """What changed in ``transactions`` from snapshot ``old`` (default: the one before ``new``) to
    ``new``: new rows (a new award key: ``new award``; a negative obligation: ``deobligation``;
    else ``new modification``), rows whose content changed (``correction``) and keys gone
    (``deletion``), each limited to rows touching the watchlist (company or agency)."""
    from awardwatch.warehouse.snapshots import connect_snapshot

    watchlist = watchlist or Watchlist()
    con_new, manifest_new = connect_snapshot(store, new)
    try:
        new_id = manifest_new["snapshot_id"]
        old_id = old or previous_snapshot(store, new_id)
        con_old, _ = connect_snapshot(store, old_id)
        try:
            for con in (con_new, con_old):
                companies.install_macros(con)
            _copy(con_old, "SELECT contract_transaction_unique_key AS k, contract_award_unique_key AS award_key, row_hash "
                           "FROM transactions", con_new, "old_keys")
            watch, params = _watch_sql(con_new, watchlist, "t")
            added = con_new.execute(f"""
                SELECT CASE WHEN t.federal_action_obligation < 0 THEN 'deobligation'
                            WHEN t.contract_award_unique_key NOT IN (SELECT award_key FROM old_keys) THEN 'new award'
                            ELSE 'new modification' END AS change,
                       {_change_select(con_new, 't')}
                FROM transactions t ANTI JOIN old_keys o ON o.k = t.contract_transaction_unique_key
                WHERE {watch}""", params).fetchall()
            corrected = con_new.execute(f"""
                SELECT 'correction', {_change_select(con_new, 't')}
                FROM transactions t JOIN old_keys o ON o.k = t.contract_transaction_unique_key
                WHERE o.row_hash <> t.row_hash AND {watch}""", params).fetchall()
            _copy(con_new, "SELECT contract_transaction_unique_key AS k FROM transactions", con_old, "new_keys")
            watch_old, params_old = _watch_sql(con_old, watchlist, "t")
            deleted = con_old.execute(f"""
                SELECT 'deletion', {_change_select(con_old, 't')}
                FROM transactions t ANTI JOIN new_keys n ON n.k = t.contract_transaction_unique_key
                WHERE {watch_old}""", params_old).fetchall()
        finally:
            con_old.close()
    finally:
        con_new.close()
    order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    rows = sorted(added + corrected + deleted,
                  key=lambda r: (order[r[0]], -abs(r[8] or 0), r[3] or "", r[11] or ""))
    return Changes(old_id, new_id, watchlist, rows)
