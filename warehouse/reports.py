"""Report queries over the warehouse: a company's awards, an agency's top companies, the demo's example.

Plain functions over DuckDB connections; the CLI (``flows/cli/reports.py``), the HTML page
(``flows/cli/html.py``) and the demo call them. What changed between two snapshots is in
``warehouse/changes.py``.

- ``company_report``: a company's awards, matched on ``parent_company`` or recipient and parent
  names (normalised, whole words: ``Palantir`` matches ``Palantir Technologies`` and ``PALANTIR
  USG INC.``), the resellers' awards naming its brands (with the evidence: the action that named
  the brand, its modification number, the text matched and the description it was found in), and
  totals per fiscal year.
- ``agency_report``: an awarding agency's top parent companies in a fiscal year, with their
  share and the change from the year before (from the ``company_agency_fiscal_year`` mart).
- ``example``: ``EXAMPLE_SQL`` (ICE and CBP's top parent companies) on the warehouse and a snapshot.
- ``resolve``: parent companies and brand mentions resolved again, marts rebuilt (``awardwatch report resolve``).

Every report carries its ``provenance``: the latest succeeded run and the snapshot recorded on it
(``runs``), or, for a report made on a snapshot (``snapshots.connect_snapshot``), that snapshot's
manifest (id, created_at, the runs it reflects); the latest ``last_modified_date`` and the sources
(``transactions.source``: usaspending, archive, fpds, file) of the rows in the report's scope.

Agencies are awarding agencies: an abbreviation of ``schemas.agencies.AGENCIES`` (ICE,
CBP, DOJ...) or a code: 3 characters for a toptier agency (070), 4 for a subtier (7012).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from awardwatch.schemas.agencies import ABBREVIATIONS, AgencyRef, agency_ref
from awardwatch.schemas.errors import AwardwatchError, InputError
from awardwatch.warehouse import companies, db
from awardwatch.warehouse.companies import MART
from awardwatch.warehouse.query import query_snapshot, query_warehouse

EXAMPLE_SQL = """\
SELECT parent_company,
       awarding_sub_agency_name AS agency,
       count(DISTINCT contract_award_unique_key) AS awards,
       sum(federal_action_obligation) AS obligated
FROM transactions
WHERE awarding_sub_agency_code IN ('7012', '7014')  -- ICE, CBP
GROUP BY ALL
ORDER BY obligated DESC
LIMIT 10"""


class ReportError(AwardwatchError):
    """A report that cannot be made as asked (unknown agency, nothing matches, no resolution yet)."""


# ---------------------------------------------------------------------------------------------------------
# Agencies
# ---------------------------------------------------------------------------------------------------------


def agency_sql(table: str = "") -> str:
    """SQL expression: the subtier's abbreviation when known, else its name (or code); columns of ``table`` if given."""
    code, name = (f"{table}.awarding_sub_agency_code", f"{table}.awarding_sub_agency_name") if table else (
        "awarding_sub_agency_code", "awarding_sub_agency_name")
    cases = " ".join(f"WHEN '{c}' THEN '{abbr}'" for c, abbr in ABBREVIATIONS.items())
    return f"CASE {code} {cases} ELSE coalesce({name}, {code}) END"


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


def transaction_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The columns of ``transactions`` (older warehouses and snapshots lack ``parent_company``)."""
    return {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'transactions'").fetchall()}


def check_resolved(con: duckdb.DuckDBPyConnection) -> None:
    """A ReportError unless every transaction has its parent company."""
    if "parent_company" not in transaction_columns(con):
        raise ReportError("the warehouse predates parent-company resolution; run `awardwatch report resolve` "
                          "(or any load) to upgrade it")
    pending = con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL").fetchone()[0]
    if pending:
        raise ReportError(f"{pending:,} transactions have no parent company yet; run `awardwatch report resolve`")


def resolve(path: Path, threads: int | None = None) -> dict[str, float]:
    """Resolves parent companies and brand mentions again for every row and rebuilds the marts, in one
    transaction; returns the resolution shares (``companies.format_shares`` prints them)."""
    con = db.connect(Path(path), threads=threads)
    try:
        with db.transaction(con):
            companies.resolve(con)
            companies.marts(con)
        return companies.resolution_shares(con)
    finally:
        con.close()


@dataclass
class Table:
    """Columns and rows, as ``flows.cli.render.render`` takes them."""

    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def _table(con: duckdb.DuckDBPyConnection, sql: str, params: dict | list | None = None) -> Table:
    cursor = con.execute(sql, params or [])
    return Table([d[0] for d in cursor.description], cursor.fetchall())


# ---------------------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------------------


def _run_provenance(con: duckdb.DuckDBPyConnection, manifest: dict | None) -> dict:
    """The snapshot and run(s) the data comes from: the snapshot's manifest when the report is made on one,
    else the warehouse's latest succeeded run and the snapshot recorded on it (None before any publish)."""
    if manifest is not None:
        return {"snapshot_id": manifest.get("snapshot_id"), "snapshot_created_at": manifest.get("created_at"),
                "run_ids": list(manifest.get("run_ids") or [])}
    has_runs = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").fetchone()[0]
    row = con.execute("SELECT snapshot_id, run_id FROM runs WHERE status = 'succeeded' "
                      "ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchone() if has_runs else None
    return {"snapshot_id": row[0], "run_id": row[1]} if row else {}


def _provenance(con: duckdb.DuckDBPyConnection, manifest: dict | None, rows_sql: str, params: dict) -> dict:
    """``_run_provenance`` with the latest ``last_modified_date`` and the sources of the rows ``rows_sql`` selects
    (columns last_modified_date, source)."""
    latest, sources = con.execute(
        f"SELECT max(last_modified_date), list(DISTINCT source ORDER BY source) FROM ({rows_sql})", params).fetchone()
    return _run_provenance(con, manifest) | {"last_modified_date": latest, "source": [s for s in sources if s]}


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
    brand_mentions: Table  # resellers' awards naming the company's brands, with the action and text that matched
    years: Table  # per fiscal year: direct and via resellers
    provenance: dict  # snapshot_id, run_id or run_ids, last_modified_date, source (``_provenance``)

    def as_dict(self) -> dict:
        return {
            "company": self.name, "normalised": self.normalised, "agency": self.agency.label if self.agency else None,
            "since_fiscal_year": self.since, "provenance": self.provenance, "companies": self.companies.records(),
            "awards": self.awards.records(), "brand_mentions": self.brand_mentions.records(),
            "fiscal_years": self.years.records(),
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
                   since: int | None = None, manifest: dict | None = None) -> CompanyReport:
    """The company's awards (matched on parent company or recipient/parent names), its brands
    bought through others, and totals per fiscal year, optionally for one agency and from a fiscal year on.
    ``manifest``: the snapshot's, when ``con`` is a snapshot's (its provenance then)."""
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
    agency_col = agency_sql()
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
    bwhere, bparams = _scope_sql(ref, since, "m.")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rpt_mentions AS
        SELECT m.*, t.modification_number, t.prime_award_base_transaction_description, t.last_modified_date, t.source
        FROM brand_mentions m
        JOIN transactions t ON t.contract_transaction_unique_key = m.contract_transaction_unique_key
        WHERE m.brand_owner IN (SELECT unnest($owners::VARCHAR[])) AND {bwhere}""", {**bparams, "owners": owners})
    # the evidence of each award: its first action whose own description names the brand, else its first
    # action matched through the award's base description (the base action itself may not be loaded)
    mentions = _table(con, f"""
        WITH evidence AS (
            SELECT contract_award_unique_key,
                   CASE matched_in WHEN 'transaction_description' THEN transaction_description
                        ELSE prime_award_base_transaction_description END AS matched_description,
                   matched_in, modification_number AS matched_modification,
                   contract_transaction_unique_key AS matched_transaction_key
            FROM rpt_mentions
            QUALIFY row_number() OVER (PARTITION BY contract_award_unique_key
                ORDER BY matched_in = 'transaction_description' DESC, action_date, modification_number,
                         contract_transaction_unique_key) = 1
        ),
        final AS (
            SELECT {agency_col} AS agency, contract_award_unique_key AS award_key, any_value(award_id_piid) AS piid,
                   arg_max(recipient_name, action_date) AS reseller, arg_max(parent_company, action_date) AS reseller_parent,
                   string_agg(DISTINCT brand, '; ' ORDER BY brand) AS brands,
                   string_agg(DISTINCT matched_text, '; ' ORDER BY matched_text) AS matched_text,
                   min(action_date) AS first_action_date, max(action_date) AS latest_action_date,
                   coalesce(sum(federal_action_obligation), 0) AS obligated,
                   arg_max(current_total_value_of_award, action_date) AS current_value,
                   arg_max(potential_total_value_of_award, action_date) AS potential_value
            FROM rpt_mentions GROUP BY ALL
        )
        SELECT f.*, e.* EXCLUDE (contract_award_unique_key)
        FROM final f JOIN evidence e ON e.contract_award_unique_key = f.award_key
        ORDER BY obligated DESC, award_key""")
    years = _table(con, f"""
        WITH direct AS (
            SELECT fiscal_year, coalesce(sum(federal_action_obligation), 0) AS direct_obligated,
                   count(DISTINCT contract_award_unique_key) AS direct_awards
            FROM rpt_match WHERE {where} GROUP BY fiscal_year
        ),
        resold AS (
            SELECT fiscal_year, coalesce(sum(federal_action_obligation), 0) AS via_resellers_obligated,
                   count(DISTINCT contract_award_unique_key) AS via_resellers_awards
            FROM rpt_mentions
            WHERE contract_transaction_unique_key NOT IN (SELECT contract_transaction_unique_key FROM rpt_match)
            GROUP BY fiscal_year
        )
        SELECT fiscal_year, coalesce(direct_obligated, 0) AS direct_obligated, coalesce(direct_awards, 0) AS direct_awards,
               coalesce(via_resellers_obligated, 0) AS via_resellers_obligated,
               coalesce(via_resellers_awards, 0) AS via_resellers_awards,
               coalesce(direct_obligated, 0) + coalesce(via_resellers_obligated, 0) AS total_obligated
        FROM direct FULL JOIN resold USING (fiscal_year)
        ORDER BY fiscal_year""", params)
    provenance = _provenance(con, manifest, f"""
        SELECT last_modified_date, source FROM rpt_match WHERE {where}
        UNION ALL SELECT last_modified_date, source FROM rpt_mentions""", params)
    con.execute("DROP TABLE IF EXISTS rpt_match")
    con.execute("DROP TABLE IF EXISTS rpt_mentions")
    return CompanyReport(name, q, ref, since, matched, awards, mentions, years, provenance)


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
    provenance: dict  # snapshot_id, run_id or run_ids, last_modified_date, source (``_provenance``)

    def as_dict(self) -> dict:
        return {
            "agency": self.agency.label, "code": self.agency.code, "tier": self.agency.tier, "agency_name": self.agency_name,
            "fiscal_year": self.fiscal_year, "total_obligated": self.total, "previous_total_obligated": self.previous_total,
            "provenance": self.provenance, "companies": self.companies.records(), "fiscal_years": self.years.records(),
        }


def agency_report(con: duckdb.DuckDBPyConnection, agency: str | AgencyRef, *, fiscal_year: int | None = None,
                  top: int = 20, manifest: dict | None = None) -> AgencyReport:
    """Top ``top`` parent companies of an awarding agency in a fiscal year (default: its latest),
    with share of the agency's obligations, the year before, and the change. ``manifest``: the
    snapshot's, when ``con`` is a snapshot's. Provenance: the agency's rows, every fiscal year (the
    report shows them all)."""
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
    provenance = _provenance(
        con, manifest, f"SELECT last_modified_date, source FROM transactions WHERE {ref.column} = $code", params)
    return AgencyReport(ref, agency_name, fy, total, previous, ranked, years, provenance)


# ---------------------------------------------------------------------------------------------------------
# The demo's example query
# ---------------------------------------------------------------------------------------------------------


def example(warehouse: Path, snapshot_url: str, snapshot: str = "latest") -> tuple[list[str], list[tuple], list[tuple]]:
    """``EXAMPLE_SQL`` on the warehouse and on a snapshot: (columns, warehouse rows, snapshot rows)."""
    columns, rows = query_warehouse(warehouse, EXAMPLE_SQL)
    _, snapshot_rows = query_snapshot(snapshot_url, snapshot, EXAMPLE_SQL)
    return columns, rows, snapshot_rows
