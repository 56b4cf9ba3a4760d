"""`awardwatch report company|agency|resolve` and `awardwatch changes`.

Registered by flows/cli/app.py::

    from awardwatch.flows.cli.reports import changes_command, report_app
    app.add_typer(report_app, name="report")
    app.command(name="changes")(changes_command)
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from awardwatch.flows.cli.options import Format, SnapshotUrl, Warehouse, err, out
from awardwatch.flows.cli.render import dumps, render
from awardwatch.schemas.errors import InputError

report_app = typer.Typer(help="Reports: a company's awards and brands bought through resellers; an agency's top companies.",
                         no_args_is_help=True)


class ChangesFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


ReportFormat = Annotated[Format, typer.Option("--format", "-f", help="Output format: table; csv (the main table only); json (everything).")]
Html = Annotated[Optional[Path], typer.Option("--html", help="Also write the report as one self-contained HTML page with charts to this file.", show_default=False)]
Agency = Annotated[Optional[str], typer.Option("--agency", "-a", help="Awarding agency: abbreviation (ICE, CBP, USCIS, TSA, FEMA, DOJ, BOP, FBI...), toptier code (070) or subtier code (7012).", show_default=False)]


def _short(text: object, width: int = 70) -> object:
    if not isinstance(text, str):
        return text
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


YEAR_COLUMNS = {"fiscal_year", "rank"}


def _show(table, title: str, drop: tuple[str, ...] = (), description: int = 60) -> None:
    """A report table in the terminal: years without thousands separators, long descriptions cut."""
    keep = [i for i, c in enumerate(table.columns) if c not in drop]
    columns = [table.columns[i] for i in keep]
    rows = []
    for r in table.rows:
        row = []
        for i in keep:
            c, v = table.columns[i], r[i]
            if c in YEAR_COLUMNS and isinstance(v, int):
                v = str(v)
            elif c.endswith("description"):
                v = _short(v, description)
            row.append(v)
        rows.append(tuple(row))
    render(columns, rows, "table", out, title=title)


def _write_html(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    err.print(f"wrote {path}")


@report_app.command("company")
def company_command(
    name: Annotated[str, typer.Argument(help="Company: matched on parent companies and recipient names, normalised, whole words (Palantir, \"GEO Group\", Microsoft).", show_default=False)],
    agency: Agency = None,
    since: Annotated[Optional[int], typer.Option("--since", help="First fiscal year (Oct-Sep, named by its end), e.g. 2018.", show_default=False)] = None,
    fmt: ReportFormat = Format.table,
    html: Html = None,
    warehouse: Warehouse = None,
) -> None:
    """A company's awards (agency, award, PIID, first and latest action, obligated, current and potential
    value, description), the resellers' awards that name its brands, and totals per fiscal year."""
    from awardwatch.flows.cli.html import company_html
    from awardwatch.warehouse.reports import company_report

    report = _build(warehouse, lambda con: company_report(con, name, agency=agency, since=since))
    if _written(report, company_html, html, fmt, report.awards):
        return
    scope = f" at {report.agency.label}" if report.agency else ""
    scope += f" from FY{since}" if since is not None else ""
    companies = ", ".join(r[0] for r in report.companies.rows) or "none"
    out.print(f"{name}{scope}: parent companies matched: {companies}", highlight=False)
    _show(report.awards, f"{name}: awards{scope}", drop=("parent_company", "actions"), description=50)
    if report.brand_mentions.rows:
        _show(report.brand_mentions, f"{name}: bought through resellers{scope}",
              drop=("brands", "current_value", "matched_in", "matched_transaction_key"), description=40)
    else:
        out.print(f"no reseller transactions naming {name}'s brands{scope}", highlight=False)
    _show(report.years, f"{name}: per fiscal year{scope}")
    _print_provenance(report)


def _print_provenance(report) -> None:
    """The "data as of" line under a report in the terminal (the HTML page's block)."""
    from awardwatch.flows.cli.html import provenance_items

    items = provenance_items(report.provenance)
    line = "; ".join(f"{p['label']} {p['text']}" for p in items) or "not recorded"
    out.print(f"data as of: {line}", highlight=False)


def _build(warehouse: Path | None, make):
    """A report made on a read-only connection to the warehouse."""
    from awardwatch.flows import settings as config
    from awardwatch.warehouse.reports import open_warehouse

    con = open_warehouse(config.load().but(warehouse=warehouse).warehouse)
    try:
        return make(con)
    finally:
        con.close()


def _written(report, page, html: Path | None, fmt: Format, main_table) -> bool:
    """Writes the HTML page if asked; prints JSON (everything) or CSV (the main table). True when done."""
    if html:
        _write_html(html, page(report))
    if fmt == Format.json:
        out.file.write(dumps(report.as_dict()) + "\n")
    elif fmt == Format.csv:
        render(main_table.columns, main_table.rows, "csv", out)
    return fmt != Format.table


@report_app.command("agency")
def agency_command(
    agency: Annotated[str, typer.Argument(help="Awarding agency: abbreviation (ICE, CBP, USCIS, TSA, FEMA, DOJ, BOP, FBI...), toptier code (070) or subtier code (7012).", show_default=False)],
    fiscal_year: Annotated[Optional[int], typer.Option("--fiscal-year", "-y", help="Fiscal year (Oct-Sep, named by its end). \\[default: the agency's latest]", show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", "-n", help="How many parent companies.")] = 20,
    fmt: ReportFormat = Format.table,
    html: Html = None,
    warehouse: Warehouse = None,
) -> None:
    """An agency's top parent companies in a fiscal year: obligations, share of the agency, awards,
    technology obligations, the year before and the change."""
    from awardwatch.flows.cli.html import agency_html
    from awardwatch.warehouse.reports import agency_report

    report = _build(warehouse, lambda con: agency_report(con, agency, fiscal_year=fiscal_year, top=top))
    if _written(report, agency_html, html, fmt, report.companies):
        return
    name = f"{report.agency.label} ({report.agency_name})" if report.agency_name else report.agency.label
    prev = f"{report.previous_total:,.2f}" if report.previous_total is not None else "n/a"
    out.print(f"{name}, FY{report.fiscal_year}: obligated {report.total:,.2f} (FY{report.fiscal_year - 1}: {prev})", highlight=False)
    _show(report.companies, f"{report.agency.label}: top parent companies, FY{report.fiscal_year}")
    _show(report.years, f"{report.agency.label}: per fiscal year")
    _print_provenance(report)


@report_app.command("resolve")
def resolve_command(warehouse: Warehouse = None) -> None:
    """Resolve parent companies and brand mentions again for every row and rebuild the marts
    (after editing warehouse/reference/company_aliases.csv or brand_rules.csv)."""
    from awardwatch.flows import settings as config
    from awardwatch.warehouse import companies
    from awardwatch.warehouse.reports import resolve

    s = config.load().but(warehouse=warehouse)
    shares = resolve(s.warehouse, threads=s.threads)
    out.print(f"parent companies resolved: {companies.format_shares(shares)}", highlight=False)


def changes_command(
    since: Annotated[Optional[str], typer.Option("--since", help="Older snapshot id. \\[default: the snapshot before --snapshot]", show_default=False)] = None,
    snapshot: Annotated[str, typer.Option("--snapshot", help="Newer snapshot: 'latest' or a snapshot id.")] = "latest",
    watchlist: Annotated[Optional[Path], typer.Option("--watchlist", help="YAML (companies:, agencies:) or CSV (kind,name) of what to watch. \\[default: ./watchlist.yaml if present, else everything]", show_default=False)] = None,
    fmt: Annotated[ChangesFormat, typer.Option("--format", "-f", help="Output format.")] = ChangesFormat.table,
    snapshot_url: SnapshotUrl = None,
    warehouse: Warehouse = None,
) -> None:
    """What changed between two snapshots for the watchlist: new awards, new modifications,
    deobligations, corrections and deletions, with amounts and descriptions."""
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.changes import DEFAULT_WATCHLIST, changes_markdown, load_watchlist
    from awardwatch.schemas.watchlist import Watchlist
    from awardwatch.warehouse.changes import snapshot_changes
    from awardwatch.warehouse.store import open_store

    s = config.load().but(warehouse=warehouse, snapshot_url=snapshot_url)
    if watchlist is not None:
        watch = load_watchlist(watchlist)
    elif DEFAULT_WATCHLIST.exists():
        watch = load_watchlist(DEFAULT_WATCHLIST)
    else:
        watch = Watchlist()
    changes = snapshot_changes(open_store(s.snapshots), since, snapshot, watch)
    if fmt == ChangesFormat.markdown:
        out.file.write(changes_markdown(changes))
        return
    if fmt == ChangesFormat.json:
        out.file.write(dumps(changes.as_dict()) + "\n")
        return
    if fmt == ChangesFormat.csv:
        render(changes.columns, changes.rows, "csv", out)
        return
    counts = ", ".join(f"{k} {n:,}" for k, n in changes.counts().items())
    out.print(f"{changes.old_snapshot} -> {changes.new_snapshot}, watching {changes.watchlist.describe()}: {counts}", highlight=False)
    from awardwatch.warehouse.reports import Table

    if changes.rows:
        _show(Table(changes.columns, changes.rows), "changes", drop=("transaction_key",), description=50)
    else:
        out.print("no changes touching the watchlist", highlight=False)
