"""`awardwatch reconcile` and `awardwatch status` (the work is in flows/core/reconcile.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from awardwatch.flows.cli.options import Format, OutputFormat, Warehouse, err, out
from awardwatch.flows.cli.render import dumps, render

TABLE = ["agency_code", "agency_name", "fiscal_year", "warehouse_obligations", "usaspending_obligations", "obligations_difference",
         "warehouse_transactions", "usaspending_transactions", "transactions_difference", "status"]
SHORT = ["code", "agency", "FY", "warehouse $", "USAspending $", "difference $", "warehouse n", "USAspending n", "difference n", "status"]


def reconcile_command(
    agency: Annotated[Optional[list[str]], typer.Option("--agency", "-a", help="Agency abbreviation, code or full name; a department means its sub-agencies in the warehouse. Repeat for several. \\[env AWARDWATCH_AGENCIES, default DHS]", show_default=False)] = None,
    fiscal_year: Annotated[Optional[list[int]], typer.Option("--fiscal-year", "-y", help="Fiscal year (October-September, by action date); repeat for several. \\[default every year the warehouse holds for the agencies]", show_default=False)] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Re-fetch each mismatching agency and year by action date, load it, and check again.")] = False,
    warehouse: Warehouse = None,
    fmt: OutputFormat = Format.table,
) -> None:
    """Compare the warehouse with USAspending's published totals, per awarding sub-agency and fiscal year.

    Obligations (sum of federal_action_obligation) and transaction counts of contracts and IDVs, to the cent.
    Exit 0 when all match, 1 when any differs. Every run is kept in the `reconciliations` table.
    """
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.reconcile import reconcile, repair_lines

    s = config.load().but(warehouse=warehouse)
    result = reconcile(s, agency, fiscal_year, repair=repair)
    if fmt == Format.json:
        out.file.write(dumps(result.as_dict()) + "\n")
    else:
        rows = [tuple(r.as_dict()[c] for c in TABLE) for r in result.rows]
        if fmt == Format.table:  # short headers; a year is not a quantity
            rows = [(*r[:2], str(r[2]), *r[3:]) for r in rows]
        render(SHORT if fmt == Format.table else TABLE, rows, fmt.value, out,
               title=f"reconciliation {result.run_id} against USAspending" if fmt == Format.table else None)
        if fmt == Format.table:
            for line in repair_lines(result):
                out.print(line, highlight=False)
    err.print(result.summary(), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(0 if result.ok else 1)


def status_command(
    warehouse: Warehouse = None,
    fmt: OutputFormat = Format.table,
    offline: Annotated[bool, typer.Option("--offline", help="Skip the checks that ask USAspending (Award Data Archive listing).")] = False,
) -> None:
    """Is the warehouse complete and current? A line per source, then a line per problem; exit 1 when there is any.

    Stale sources (no successful nightly run for AWARDWATCH_STALE_DAYS, default 2), backfill chunks that failed or never
    finished, Award Data Archive Delta months missing and newer Full files, FPDS windows not re-read, and the latest
    reconciliation's mismatches.
    """
    from awardwatch.flows import settings as config
    from awardwatch.flows.core.reconcile import status

    s = config.load().but(warehouse=warehouse)
    report = status(s, online=not offline)
    if fmt == Format.json:
        out.file.write(dumps(report.as_dict()) + "\n")
    else:
        columns = ["source", "scope", "last_success", "last_success_days", "watermark", "watermark_days", "state"]
        rows = [tuple(line[c].replace(microsecond=0) if hasattr(line[c], "microsecond") else line[c] for c in columns) for line in report.sources]
        if fmt == Format.csv:
            render(["kind", "scope", "message"], [(p.kind, p.scope, p.message) for p in report.problems], "csv", out)
        else:
            render(columns, rows, "table", out, title=f"awardwatch status at {report.checked_at:%Y-%m-%d %H:%M} UTC")
            for p in report.problems:
                out.print(f"PROBLEM {p.kind}: {p.message}", highlight=False, markup=False, soft_wrap=True)
            out.print(f"{len(report.problems)} problem(s)" if report.problems else "no problems: complete and current", highlight=False)
    raise typer.Exit(1 if report.problems else 0)
