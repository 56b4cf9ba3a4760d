"""Reports over the warehouse (company, agency) and what changed between two snapshots.

Plain Python over DuckDB connections: the CLI (``flows/cli_reports.py``), the HTML page
(``flows/report_html.py``) and flows call these functions.

- ``company_report``: a company's awards, matched on ``parent_company`` or recipient and parent
  names (normalised, whole words: ``Palantir`` matches ``Palantir Technologies`` and ``PALANTIR
  USG INC.``), the resellers' transactions naming its brands, and totals per fiscal year.
- ``agency_report``: an awarding agency's top parent companies in a fiscal year, with their
  share and the change from the year before (from the ``company_agency_fiscal_year`` mart).
- ``snapshot_changes``: new awards, new modifications, deobligations, corrections and deletions
  between two snapshots, limited to a watchlist; ``changes_markdown`` renders them.

Agencies are awarding agencies: an abbreviation of ``flows.sources.usaspending.AGENCIES`` (ICE,
CBP, DOJ...) or a code: 3 characters for a toptier agency (070), 4 for a subtier (7012).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

from flows.sources.usaspending import AGENCIES
from schemas.errors import AwardwatchError, InputError
from warehouse import companies, db
from warehouse.companies import MART

DESCRIPTION_CHARS = 200  # descriptions in Markdown cells


class ReportError(AwardwatchError):
    """A report that cannot be made as asked (unknown agency, nothing matches, no resolution yet)."""


# ---------------------------------------------------------------------------------------------------------
# Agencies
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgencyRef:
    """An awarding agency filter: a toptier (``awarding_agency_code``) or subtier (``awarding_sub_agency_code``) code."""

    code: str
    tier: str  # toptier | subtier
    label: str  # abbreviation or code

    @property
    def column(self) -> str:
        return "awarding_agency_code" if self.tier == "toptier" else "awarding_sub_agency_code"


def agency_ref(text: str) -> AgencyRef:
    """ICE, cbp, 7012, 070 -> the agency filter; unknown abbreviations are an error naming the known ones."""
    value = (text or "").strip()
    known = AGENCIES.get(value.upper())
    if known is None:
        known = next((a for a in AGENCIES.values() if a.code == value.upper()), None)
    if known is not None:
        return AgencyRef(known.code, known.tier, known.abbreviation)
    if re.fullmatch(r"\d{3}", value):
        return AgencyRef(value, "toptier", value)
    if re.fullmatch(r"[0-9A-Za-z]{4}", value) and any(c.isdigit() for c in value):
        return AgencyRef(value.upper(), "subtier", value.upper())
    raise InputError(f"unknown agency {text!r}; use an abbreviation ({', '.join(AGENCIES)}), "
                     "a toptier code like 070 or a subtier code like 7012")


ABBREVIATIONS = {a.code: a.abbreviation for a in AGENCIES.values() if a.tier == "subtier"}


def _agency_sql() -> str:
    """SQL expression: the subtier's abbreviation when known, else its name (or code)."""
    cases = " ".join(f"WHEN '{code}' THEN '{abbr}'" for code, abbr in ABBREVIATIONS.items())
    return f"CASE awarding_sub_agency_code {cases} ELSE coalesce(awarding_sub_agency_name, awarding_sub_agency_code) END"


# ---------------------------------------------------------------------------------------------------------
# Warehouse access
# ---------------------------------------------------------------------------------------------------------


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection with the company macros, checked to hold resolved parent companies."""
    con = db.connect(Path(path), read_only=True)
    try:
        companies.install_macros(con)
        check_resolved(con)
    except BaseException:
        con.close()
        raise
    return con


def check_resolved(con: duckdb.DuckDBPyConnection) -> None:
    columns = {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'transactions'").fetchall()}
    if "parent_company" not in columns:
        raise ReportError("the warehouse predates parent-company resolution; run `awardwatch report resolve` "
                          "(or any load) to upgrade it")
    pending = con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL").fetchone()[0]
    if pending:
        raise ReportError(f"{pending:,} transactions have no parent company yet; run `awardwatch report resolve`")


@dataclass
class Table:
    """Columns and rows, as ``flows.output.render`` takes them."""

    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def _table(con: duckdb.DuckDBPyConnection, sql: str, params: dict | list | None = None) -> Table:
    cursor = con.execute(sql, params or [])
    return Table([d[0] for d in cursor.description], cursor.fetchall())


# ---------------------------------------------------------------------------------------------------------
# Company report
# ---------------------------------------------------------------------------------------------------------


@dataclass
class CompanyReport:
    name: str
    normalised: str
    agency: AgencyRef | None
    since: int | None
    companies: Table  # parent companies matched, with their rows and obligations in scope
    awards: Table
    brand_mentions: Table  # resellers' awards naming the company's brands
    years: Table  # per fiscal year: direct and via resellers

    def as_dict(self) -> dict:
        return {
            "company": self.name, "normalised": self.normalised, "agency": self.agency.label if self.agency else None,
            "since_fiscal_year": self.since, "companies": self.companies.records(), "awards": self.awards.records(),
            "brand_mentions": self.brand_mentions.records(), "fiscal_years": self.years.records(),
        }


def _scope_sql(agency: AgencyRef | None, since: int | None, prefix: str = "") -> tuple[str, dict]:
    where, params = [], {}
    if agency:
        where.append(f"{prefix}{agency.column} = $agency")
        params["agency"] = agency.code
    if since is not None:
        where.append(f"{prefix}fiscal_year >= $since")
        params["since"] = since
    return " AND ".join(where) or "true", params


def company_report(con: duckdb.DuckDBPyConnection, name: str, *, agency: str | AgencyRef | None = None,
                   since: int | None = None) -> CompanyReport:
    """The company's awards (matched on parent company or recipient/parent names), its brands
    bought through others, and totals per fiscal year, optionally for one agency and from a fiscal year on."""
    companies.install_macros(con)
    ref = agency_ref(agency) if isinstance(agency, str) else agency
    q = con.execute("SELECT aw_normalise_name(?)", [name]).fetchone()[0]
    if not q:
        raise InputError(f"company name {name!r} is empty once normalised; give a name, e.g. Palantir")
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rpt_match AS
        SELECT t.* FROM transactions t
        WHERE t.parent_company IN (SELECT DISTINCT parent_company FROM transactions
                                   WHERE aw_word_match(aw_normalise_name(parent_company), $q))
           OR t.recipient_name IN (SELECT DISTINCT recipient_name FROM transactions
                                   WHERE aw_word_match(aw_normalise_name(recipient_name), $q))
           OR t.recipient_parent_name IN (SELECT DISTINCT recipient_parent_name FROM transactions
                                          WHERE aw_word_match(aw_normalise_name(recipient_parent_name), $q))
        """,
        {"q": q},
    )
    owners = [o for (o,) in con.execute(
        "SELECT DISTINCT brand_owner FROM brand_mentions WHERE aw_word_match(aw_normalise_name(brand_owner), $q) ORDER BY 1",
        {"q": q}).fetchall()]
    if not con.execute("SELECT count(*) FROM rpt_match").fetchone()[0] and not owners:
        raise ReportError(f"no company matches {name!r} (normalised {q!r}) in parent companies, recipient names "
                          "or brand owners; try a shorter name")
    where, params = _scope_sql(ref, since)
    agency_col = _agency_sql()
    matched = _table(con, f"""
        SELECT parent_company, count(*) AS transactions, count(DISTINCT contract_award_unique_key) AS awards,
               coalesce(sum(federal_action_obligation), 0) AS obligated
        FROM rpt_match WHERE {where} GROUP BY parent_company ORDER BY obligated DESC, parent_company""", params)
    awards = _table(con, f"""
        WITH scope AS (SELECT * FROM rpt_match WHERE {where}),
        latest AS (
            SELECT * FROM scope
            QUALIFY row_number() OVER (PARTITION BY contract_award_unique_key
                ORDER BY action_date DESC, last_modified_date DESC NULLS LAST, modification_number DESC,
                         contract_transaction_unique_key DESC) = 1
        ),
        totals AS (
            SELECT contract_award_unique_key, min(action_date) AS first_action_date, max(action_date) AS latest_action_date,
                   coalesce(sum(federal_action_obligation), 0) AS obligated, count(*) AS actions
            FROM scope GROUP BY contract_award_unique_key
        ),
        final AS (
            SELECT {agency_col} AS agency, l.contract_award_unique_key AS award_key, l.award_id_piid AS piid,
                   l.recipient_name AS recipient, l.parent_company,
                   t.first_action_date, t.latest_action_date, t.actions, t.obligated,
                   l.current_total_value_of_award AS current_value, l.potential_total_value_of_award AS potential_value,
                   coalesce(l.prime_award_base_transaction_description, l.transaction_description) AS description
            FROM latest l JOIN totals t USING (contract_award_unique_key)
        )
        SELECT * FROM final ORDER BY obligated DESC, award_key""", params)
    bwhere, bparams = _scope_sql(ref, since)
    mentions = _table(con, f"""
        WITH scope AS (
            SELECT * FROM brand_mentions
            WHERE brand_owner IN (SELECT unnest($owners::VARCHAR[])) AND {bwhere}
        ),
        final AS (
            SELECT {agency_col} AS agency, contract_award_unique_key AS award_key, any_value(award_id_piid) AS piid,
                   arg_max(recipient_name, action_date) AS reseller, arg_max(parent_company, action_date) AS reseller_parent,
                   string_agg(DISTINCT brand, '; ' ORDER BY brand) AS brands,
                   string_agg(DISTINCT matched_text, '; ' ORDER BY matched_text) AS matched_text,
                   min(action_date) AS first_action_date, max(action_date) AS latest_action_date,
                   coalesce(sum(federal_action_obligation), 0) AS obligated,
                   arg_max(current_total_value_of_award, action_date) AS current_value,
                   arg_max(potential_total_value_of_award, action_date) AS potential_value,
                   arg_max(transaction_description, action_date) AS description
            FROM scope GROUP BY ALL
        )
        SELECT * FROM final ORDER BY obligated DESC, award_key""", {**bparams, "owners": owners})
    years = _table(con, f"""
        WITH direct AS (
            SELECT fiscal_year, coalesce(sum(federal_action_obligation), 0) AS direct_obligated,
                   count(DISTINCT contract_award_unique_key) AS direct_awards
            FROM rpt_match WHERE {where} GROUP BY fiscal_year
        ),
        resold AS (
            SELECT fiscal_year, coalesce(sum(federal_action_obligation), 0) AS via_resellers_obligated,
                   count(DISTINCT contract_award_unique_key) AS via_resellers_awards
            FROM brand_mentions
            WHERE brand_owner IN (SELECT unnest($owners::VARCHAR[])) AND {bwhere}
              AND contract_transaction_unique_key NOT IN (SELECT contract_transaction_unique_key FROM rpt_match)
            GROUP BY fiscal_year
        )
        SELECT fiscal_year, coalesce(direct_obligated, 0) AS direct_obligated, coalesce(direct_awards, 0) AS direct_awards,
               coalesce(via_resellers_obligated, 0) AS via_resellers_obligated,
               coalesce(via_resellers_awards, 0) AS via_resellers_awards,
               coalesce(direct_obligated, 0) + coalesce(via_resellers_obligated, 0) AS total_obligated
        FROM direct FULL JOIN resold USING (fiscal_year)
        ORDER BY fiscal_year""", {**params, "owners": owners})
    con.execute("DROP TABLE IF EXISTS rpt_match")
    return CompanyReport(name, q, ref, since, matched, awards, mentions, years)


# ---------------------------------------------------------------------------------------------------------
# Agency report
# ---------------------------------------------------------------------------------------------------------


@dataclass
class AgencyReport:
    agency: AgencyRef
    agency_name: str | None
    fiscal_year: int | None
    total: Decimal
    previous_total: Decimal | None
    companies: Table  # top parent companies in the fiscal year
    years: Table  # the agency per fiscal year

    def as_dict(self) -> dict:
        return {
            "agency": self.agency.label, "code": self.agency.code, "tier": self.agency.tier, "agency_name": self.agency_name,
            "fiscal_year": self.fiscal_year, "total_obligated": self.total, "previous_total_obligated": self.previous_total,
            "companies": self.companies.records(), "fiscal_years": self.years.records(),
        }


def agency_report(con: duckdb.DuckDBPyConnection, agency: str | AgencyRef, *, fiscal_year: int | None = None,
                  top: int = 20) -> AgencyReport:
    """Top ``top`` parent companies of an awarding agency in a fiscal year (default: its latest),
    with share of the agency's obligations, the year before, and the change."""
    companies.install_macros(con)
    ref = agency_ref(agency) if isinstance(agency, str) else agency
    if top < 1:
        raise InputError("--top must be at least 1")
    name_col = "awarding_agency_name" if ref.tier == "toptier" else "awarding_sub_agency_name"
    params = {"code": ref.code}
    years = _table(con, f"""
        SELECT fiscal_year, coalesce(sum(federal_action_obligation), 0) AS obligated,
               count(DISTINCT contract_award_unique_key) AS awards, count(DISTINCT parent_company) AS companies,
               coalesce(sum(federal_action_obligation) FILTER (WHERE aw_is_technology(product_or_service_code, naics_code)), 0)
                   AS technology_obligated
        FROM transactions WHERE {ref.column} = $code GROUP BY fiscal_year ORDER BY fiscal_year""", params)
    agency_name = con.execute(
        f"SELECT arg_max({name_col}, action_date) FROM transactions WHERE {ref.column} = $code", params).fetchone()[0]
    if not years.rows:
        raise ReportError(f"no transactions awarded by {ref.label} ({ref.tier} {ref.code}) in the warehouse")
    by_year = {r[0]: r[1] for r in years.rows}
    fy = fiscal_year if fiscal_year is not None else max(by_year)
    total = by_year.get(fy, Decimal(0))
    previous = by_year.get(fy - 1)
    ranked = _table(con, f"""
        WITH cur AS (
            SELECT parent_company, sum(obligated_amount) AS obligated, sum(transactions) AS transactions,
                   sum(obligated_amount) FILTER (WHERE is_technology) AS technology_obligated
            FROM {MART} WHERE {ref.column} = $code AND fiscal_year = $fy GROUP BY parent_company
        ),
        awards AS (
            SELECT parent_company, count(DISTINCT contract_award_unique_key) AS awards
            FROM transactions WHERE {ref.column} = $code AND fiscal_year = $fy GROUP BY parent_company
        ),
        prev AS (
            SELECT parent_company, sum(obligated_amount) AS previous_obligated
            FROM {MART} WHERE {ref.column} = $code AND fiscal_year = $fy - 1 GROUP BY parent_company
        ),
        final AS (
            SELECT row_number() OVER (ORDER BY c.obligated DESC, c.parent_company) AS rank,
                   c.parent_company, c.obligated,
                   CASE WHEN $total <> 0 THEN round(c.obligated * 100 / $total, 1)::DECIMAL(18,1) END AS share_pct,
                   a.awards, coalesce(c.technology_obligated, 0) AS technology_obligated,
                   p.previous_obligated,
                   c.obligated - coalesce(p.previous_obligated, 0) AS change,
                   CASE WHEN p.previous_obligated > 0
                        THEN round((c.obligated - p.previous_obligated) * 100 / p.previous_obligated, 1)::DECIMAL(18,1) END AS change_pct
            FROM cur c LEFT JOIN awards a USING (parent_company) LEFT JOIN prev p USING (parent_company)
        )
        SELECT * FROM final WHERE rank <= $top ORDER BY rank""",
        {**params, "fy": fy, "total": total, "top": top})
    return AgencyReport(ref, agency_name, fy, total, previous, ranked, years)


# ---------------------------------------------------------------------------------------------------------
# Watchlist
# ---------------------------------------------------------------------------------------------------------

DEFAULT_WATCHLIST = Path("watchlist.yaml")


@dataclass
class Watchlist:
    companies: list[str] = field(default_factory=list)
    agencies: list[AgencyRef] = field(default_factory=list)
    source: str | None = None

    @property
    def empty(self) -> bool:
        return not self.companies and not self.agencies

    def describe(self) -> str:
        if self.empty:
            return "everything (no watchlist)"
        parts = []
        if self.companies:
            parts.append("companies " + ", ".join(self.companies))
        if self.agencies:
            parts.append("agencies " + ", ".join(a.label for a in self.agencies))
        return "; ".join(parts)


def load_watchlist(path: Path) -> Watchlist:
    """A YAML file (``companies:`` and ``agencies:`` lists) or a CSV (columns ``kind``, ``name``;
    kind company or agency). Agencies are checked like ``--agency``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read watchlist {path}: {exc.strerror}") from None
    companies_, agencies_ = [], []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not {"kind", "name"} <= set(reader.fieldnames or []):
            raise InputError(f"{path}: a CSV watchlist needs the columns kind,name (kind: company or agency)")
        for r in reader:
            kind, value = (r.get("kind") or "").strip().lower(), (r.get("name") or "").strip()
            if not value:
                continue
            if kind == "company":
                companies_.append(value)
            elif kind == "agency":
                agencies_.append(value)
            else:
                raise InputError(f"{path}:{reader.line_num}: kind must be company or agency, not {kind!r}")
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise InputError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(data, dict) or not set(data) <= {"companies", "agencies"}:
            raise InputError(f"{path}: expected a mapping with the lists companies: and agencies:")
        for key, target in (("companies", companies_), ("agencies", agencies_)):
            values = data.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, (str, int)) for v in values):
                raise InputError(f"{path}: {key}: must be a list of names")
            target.extend(str(v).strip() for v in values if str(v).strip())
    return Watchlist(companies_, [agency_ref(a) for a in agencies_], str(path))


# ---------------------------------------------------------------------------------------------------------
# Changes between snapshots
# ---------------------------------------------------------------------------------------------------------

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
    from warehouse.snapshots import PREFIX, list_snapshots, read_json

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


def _columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'transactions'").fetchall()}


def _watch_sql(con: duckdb.DuckDBPyConnection, watchlist: Watchlist, table: str) -> tuple[str, dict]:
    """WHERE clause over ``table`` (transaction columns) for rows touching the watchlist."""
    if watchlist.empty:
        return "true", {}
    ors, params = [], {}
    if watchlist.companies:
        names = ["recipient_name", "recipient_parent_name"] + (["parent_company"] if "parent_company" in _columns(con) else [])
        tests = " OR ".join(f"aw_word_match(aw_normalise_name({table}.{n}), w.q)" for n in names)
        ors.append(f"EXISTS (SELECT 1 FROM (SELECT aw_normalise_name(unnest($companies::VARCHAR[])) AS q) w WHERE {tests})")
        params["companies"] = watchlist.companies
    for i, a in enumerate(watchlist.agencies):
        ors.append(f"{table}.{a.column} = $agency{i}")
        params[f"agency{i}"] = a.code
    return "(" + " OR ".join(ors) + ")", params


def _change_select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    parent = f"{table}.parent_company" if "parent_company" in _columns(con) else "NULL::VARCHAR"
    agency = _agency_sql().replace("awarding_sub_agency_", f"{table}.awarding_sub_agency_")
    return (f"{table}.action_date, {agency} AS agency, {table}.contract_award_unique_key, {table}.award_id_piid, "
            f"{table}.modification_number, {table}.recipient_name, {parent} AS parent_company, "
            f"{table}.federal_action_obligation, {table}.current_total_value_of_award, {table}.transaction_description, "
            f"{table}.contract_transaction_unique_key")


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
    from warehouse.snapshots import connect_snapshot

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


def _md_cell(value: object, limit: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = f"{value:,.2f}"
    else:
        text = str(value)
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def changes_markdown(changes: Changes) -> str:
    """The changes as Markdown: a summary table, then one table per kind of change."""
    lines = [
        f"# awardwatch changes: `{changes.old_snapshot}` → `{changes.new_snapshot}`",
        "",
        f"Watching: {_md_cell(changes.watchlist.describe())}",
        "",
        "| change | rows | obligation |",
        "|---|---:|---:|",
    ]
    for kind in CHANGE_KINDS:
        rows = changes.of(kind)
        lines.append(f"| {kind} | {len(rows):,} | {_md_cell(sum((r[8] or Decimal(0) for r in rows), Decimal(0)))} |")
    headings = {"new award": "New awards", "new modification": "New modifications", "deobligation": "Deobligations",
                "correction": "Corrections (same action, new content)", "deletion": "Deletions (gone from the new snapshot)"}
    for kind in CHANGE_KINDS:
        rows = changes.of(kind)
        if not rows:
            continue
        lines += ["", f"## {headings[kind]} ({len(rows):,})", "",
                  "| action date | agency | award | PIID | mod | recipient | parent company | obligation | current value | description |",
                  "|---|---|---|---|---|---|---|---:|---:|---|"]
        for r in rows:
            lines.append("| " + " | ".join([
                _md_cell(r[1]), _md_cell(r[2]), _md_cell(r[3]), _md_cell(r[4]), _md_cell(r[5]), _md_cell(r[6]),
                _md_cell(r[7]), _md_cell(r[8]), _md_cell(r[9]), _md_cell(r[10], DESCRIPTION_CHARS)]) + " |")
    if not changes.rows:
        lines += ["", "No changes touching the watchlist."]
    return "\n".join(lines) + "\n"


def write_changes_markdown(store, changes: Changes, text: str | None = None) -> str:
    """Writes the Markdown beside the new snapshot (``snapshots/<id>/changes.md``); returns its key."""
    from warehouse.snapshots import PREFIX

    key = f"{PREFIX}/{changes.new_snapshot}/changes.md"
    store.put_bytes(key, (text if text is not None else changes_markdown(changes)).encode("utf-8"))
    return key


def publish_changes(store, snapshot_id: str, watchlist: Watchlist | Path | None = None) -> tuple[Changes, str] | None:
    """After a publish: the changes since the previous snapshot, as Markdown written beside the new
    snapshot (``snapshots/<id>/changes.md``). Returns (changes, markdown), or None for a first snapshot."""
    if isinstance(watchlist, Path):
        watchlist = load_watchlist(watchlist) if watchlist.exists() else Watchlist()
    try:
        old = previous_snapshot(store, snapshot_id)
    except ReportError:
        return None
    changes = snapshot_changes(store, old, snapshot_id, watchlist)
    text = changes_markdown(changes)
    write_changes_markdown(store, changes, text)
    return changes, text


def to_json(data: dict) -> str:
    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        if isinstance(value, AgencyRef):
            return value.label
        return str(value)

    return json.dumps(data, indent=2, default=plain)
