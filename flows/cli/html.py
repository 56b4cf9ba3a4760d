"""Company and agency reports as ONE self-contained HTML page, rendered from jinja2 templates.

The templates (``flows/cli/templates/``, autoescaped: every value from the data is HTML-escaped)
hold the markup; this module turns a report into plain view data: cards, chart geometry, table
cells already formatted. No external JavaScript, CSS or fonts: styles are inline in the page,
charts are inline SVG (obligations per fiscal year as vertical bars on round y ticks, top
companies/agencies/resellers as horizontal bars), amounts are shown like ``$39.0M``.
Bars carry ``class="bar fy"`` and ``data-fy`` (vertical) or ``class="bar hbar"`` (horizontal),
y tick labels ``class="tick"``, so tests and scripts can find them.

Tables use fixed column widths: long text is cut with an ellipsis (the full text in ``title``),
descriptions and other long fields sit on their own row beneath each award, fiscal years have
no thousands separators, percentages a % sign, and the command giving the same rows is printed
under each table. ``provenance`` (snapshot id, run id, latest last_modified_date, source...) is
shown in a "data as of" block when the report or the caller gives it.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import jinja2

from awardwatch.warehouse.reports import AgencyReport, CompanyReport, Table

POSITIVE = "#2b6cb0"
RESOLD = "#dd6b20"
NEGATIVE = "#c53030"
GRID = "#e2e8f0"
INK = "#1a202c"
MUTED = "#4a5568"
COLOURS = {"POSITIVE": POSITIVE, "RESOLD": RESOLD, "NEGATIVE": NEGATIVE, "GRID": GRID, "INK": INK, "MUTED": MUTED}

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
ENV.filters["px"] = lambda v: f"{v:.1f}"


def money(value: object) -> str:
    """$39.0M, -$1.2K, $512."""
    if value is None:
        return ""
    v = float(value)
    sign, a = ("-" if v < 0 else ""), abs(v)
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if a >= div:
            return f"{sign}${a / div:.1f}{unit}"
    return f"{sign}${a:,.0f}"


def money_full(value: object) -> str:
    if value is None:
        return ""
    v = Decimal(str(value))
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def money_tick(value: float) -> str:
    """An axis label without needless decimals: $0, $250K, $2.5M, $100M."""
    sign, a = ("-" if value < 0 else ""), abs(value)
    unit, div = next(((u, d) for u, d in (("B", 1e9), ("M", 1e6), ("K", 1e3)) if a >= d), ("", 1.0))
    return f"{sign}${f'{a / div:.2f}'.rstrip('0').rstrip('.')}{unit}"


def ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round axis ticks covering [low, high] and zero, in steps of 1, 2, 2.5 or 5 x 10^n."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        return [0.0, 1.0]
    raw = (high - low) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(first, max(last, first + 1) + 1)]


def _num(value: object) -> float:
    return float(value) if value is not None else 0.0


# ---------------------------------------------------------------------------------------------------------
# Charts: geometry here, markup in templates/macros.html.j2
# ---------------------------------------------------------------------------------------------------------


def year_chart(years: list[tuple[int, object]], title: str, resold: dict[int, object] | None = None,
               width: int = 1070, height: int = 320) -> dict:
    """Vertical bars, one per fiscal year, negative years below the zero line, on round y ticks;
    with ``resold``, a second colour stacked on each year."""
    chart = {"kind": "years", "title": title, "width": width, "height": height, "empty": not years}
    if not years:
        return chart
    left, right, top, bottom = 76, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    resold = resold or {}
    values = [_num(v) for _, v in years]
    grid = ticks(min(values), max(v + max(_num(resold.get(fy)), 0.0) for (fy, _), v in zip(years, values)))
    low, high = grid[0], grid[-1]
    y = lambda v: top + (high - v) / (high - low) * plot_h  # noqa: E731
    slot = plot_w / len(years)
    bar_w = max(6.0, min(64.0, slot * 0.64))
    zero = y(0.0)
    bars = []
    for i, ((fy, value), v) in enumerate(zip(years, values)):
        x = left + slot * i + (slot - bar_w) / 2
        y0, y1 = (y(v), zero) if v >= 0 else (zero, y(v))
        bar = {"fy": fy, "x": x, "y": y0, "w": bar_w, "h": max(y1 - y0, 1.0), "fill": POSITIVE if v >= 0 else NEGATIVE,
               "title": f"FY{fy}: {money_full(value)}", "resold": None, "cx": x + bar_w / 2,
               "axis_y": height - bottom + 18}
        stacked_top, extra = (y0 if v >= 0 else zero), _num(resold.get(fy))
        if extra > 0:
            h = extra / (high - low) * plot_h
            stacked_top -= h
            bar["resold"] = {"y": stacked_top, "h": max(h, 1.0), "title": f"FY{fy} via resellers: {money_full(extra)}"}
        shown = v + max(extra, 0.0)
        bar |= {"label": money(shown), "label_y": (stacked_top - 6) if shown >= 0 else (y1 + 14)}
        bars.append(bar)
    return chart | {"left": left, "right": width - right, "zero": zero, "bars": bars,
                    "grid": [{"y": y(v), "label": money_tick(v)} for v in grid]}


def ranking_chart(items: list[tuple[str, object]], title: str, width: int = 520, label_width: int = 200) -> dict:
    """Horizontal bars, one per item, in the order given, amounts after each bar, long labels cut (full in a title)."""
    chart = {"kind": "ranking", "title": title, "width": width, "empty": not items}
    if not items:
        return chart
    row, top, value_w = 26, 8, 80
    plot_w = width - label_width - value_w - 16
    high = max([_num(v) for _, v in items] + [0.0]) or 1.0
    room = max(10, (label_width - 12) // 9)  # characters that fit before the bar (capitals ~9px at 12px)
    bars = []
    for i, (label, value) in enumerate(items):
        v, yy = _num(value), top + i * row
        w = max(max(v, 0.0) / high * plot_w, 1.0)
        bars.append({"label": label, "shown": label if len(label) <= room else label[: room - 1] + "…",
                     "y": yy, "w": w, "h": row - 8, "fill": POSITIVE if v >= 0 else NEGATIVE,
                     "title": f"{label}: {money_full(value)}", "value": money(value)})
    return chart | {"height": top * 2 + row * len(items), "label_width": label_width, "bars": bars}


# ---------------------------------------------------------------------------------------------------------
# Tables: fixed column widths, formatted cells, long fields on a row beneath
# ---------------------------------------------------------------------------------------------------------

MONEY_COLUMNS = {"obligated", "current_value", "potential_value", "direct_obligated", "via_resellers_obligated",
                 "total_obligated", "technology_obligated", "previous_obligated", "change"}
YEAR_COLUMNS = {"fiscal_year", "rank"}
WIDTHS = {"money": 132, "date": 100, "year": 64, "count": 72, "pct": 80}  # px; text columns share the rest
TEXT_WIDTHS = {"agency": 84, "piid": 140, "brands": 120}
FLEX_MIN = 170  # px: the least a text column without a fixed width gets (the table scrolls below that)
AWARD_DETAIL = ("description", "award_key", "parent_company")  # on the row beneath each award
# the evidence: the text the brand was found in, what matched, and on which action
MENTION_DETAIL = ("matched_description", "matched_text", "matched_in", "matched_modification",
                  "matched_transaction_key", "award_key", "reseller_parent")
PARAGRAPHS = {"description", "matched_description"}  # detail fields shown as a paragraph of their own


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    kind: str  # money | year | pct | date | count | text
    width: int | None  # None: shares what is left


def _kind(name: str, sample: object) -> str:
    if name in MONEY_COLUMNS:
        return "money"
    if name in YEAR_COLUMNS:
        return "year"
    if name.endswith("_pct"):
        return "pct"
    if name.endswith("_date") or isinstance(sample, (date, datetime)):
        return "date"
    if isinstance(sample, (int, float, Decimal)) and not isinstance(sample, bool):
        return "count"
    return "text"


def column(name: str, sample: object = None) -> Column:
    """The column's label and width: wide enough for the longest word of its label (bold, ~8px a letter)."""
    label = name.replace("_pct", " %").replace("_", " ")
    kind = _kind(name, sample)
    width = WIDTHS.get(kind) if kind != "text" else TEXT_WIDTHS.get(name)
    if width is not None:
        width = max(width, 8 * max(len(w) for w in label.split()) + 16)
    return Column(name, label, kind, width)


def cell(col: Column, value: object) -> dict:
    """Text, CSS class and hover title of one cell."""
    if value is None:
        return {"text": "", "cls": "n" if col.kind != "text" else "", "title": None}
    if col.kind == "money":
        return {"text": money_full(value), "cls": "n neg" if _num(value) < 0 else "n", "title": None}
    if col.kind == "year":
        return {"text": str(value), "cls": "n", "title": None}
    if col.kind == "pct":
        return {"text": f"{value}%", "cls": "n neg" if _num(value) < 0 else "n", "title": None}
    if col.kind == "date":
        text = value.isoformat() if isinstance(value, (date, datetime)) else str(value)
        return {"text": text, "cls": "n", "title": None}
    if col.kind == "count" and isinstance(value, int):
        return {"text": f"{value:,}", "cls": "n", "title": None}
    text = " ".join(str(value).split())
    return {"text": text, "cls": "n" if col.kind == "count" else "", "title": text if col.kind == "text" else None}


def table_view(table: Table, limit: int | None = None, command: dict | None = None,
               detail: tuple[str, ...] = ()) -> dict:
    """Columns, rows of formatted cells and the long fields shown beneath each row, for the ``table`` macro."""
    rows = table.rows[:limit] if limit else table.rows
    cols = [column(c, next((r[i] for r in rows if r[i] is not None), None)) for i, c in enumerate(table.columns)]
    main = [i for i, c in enumerate(table.columns) if c not in detail]
    below = [table.columns.index(c) for c in detail if c in table.columns]
    body = [{"cells": [cell(cols[i], r[i]) for i in main],
             "detail": [{"label": cols[i].label, "text": " ".join(str(r[i]).split()),
                         "paragraph": cols[i].name in PARAGRAPHS} for i in below if r[i] not in (None, "")]}
            for r in rows]
    shown = [cols[i] for i in main]
    return {"columns": shown, "rows": body, "span": len(shown), "more": len(table.rows) - len(rows), "command": command,
            "min_width": sum(c.width or FLEX_MIN for c in shown), "grouped": bool(below)}


# ---------------------------------------------------------------------------------------------------------
# Provenance and commands
# ---------------------------------------------------------------------------------------------------------

PROVENANCE_LABELS = {"snapshot_id": "snapshot", "snapshot_created_at": "snapshot created", "run_id": "run",
                     "run_ids": "runs", "last_modified_date": "latest last_modified_date", "source": "source"}


def provenance_items(provenance: dict | None) -> list[dict]:
    """(label, text) of each provenance field given: the known ones first, in PROVENANCE_LABELS order."""
    given = {k: v for k, v in (provenance or {}).items() if v not in (None, "", [], ())}
    keys = [k for k in PROVENANCE_LABELS if k in given] + [k for k in given if k not in PROVENANCE_LABELS]

    def text(v: object) -> str:
        if isinstance(v, (date, datetime)):
            return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
        return ", ".join(map(text, v)) if isinstance(v, (list, tuple)) else str(v)

    return [{"label": PROVENANCE_LABELS.get(k, k.replace("_", " ")), "text": text(given[k])} for k in keys]


def _provenance(report: object, provenance: dict | None) -> list[dict]:
    return provenance_items(provenance if provenance is not None else getattr(report, "provenance", None))


def _command(args: list[str], fmt: str, key: str | None = None) -> dict:
    """The command printed under a table: CSV gives the table's rows, JSON everything (the table under ``key``)."""
    return {"label": "Same rows as CSV" if fmt == "csv" else "As JSON", "text": shlex.join([*args, "--format", fmt]),
            "note": f"key {key}" if key else None}


def company_command(report: CompanyReport, fmt: str, key: str | None = None) -> dict:
    """The `awardwatch report company` command giving the same rows (csv: the awards; json: everything)."""
    args = ["awardwatch", "report", "company", report.name]
    if report.agency:
        args += ["--agency", report.agency.label]
    if report.since is not None:
        args += ["--since", str(report.since)]
    return _command(args, fmt, key)


def agency_command(report: AgencyReport, fmt: str, key: str | None = None) -> dict:
    """The `awardwatch report agency` command giving the same rows (csv: the ranking; json: everything)."""
    args = ["awardwatch", "report", "agency", report.agency.label]
    if report.fiscal_year is not None:
        args += ["--fiscal-year", str(report.fiscal_year)]
    if len(report.companies.rows) != 20:  # the default --top
        args += ["--top", str(max(len(report.companies.rows), 1))]
    return _command(args, fmt, key)


# ---------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------


def _scope(agency, since) -> str:
    parts = [f"awarded by {agency.label}" if agency else "all awarding agencies"]
    if since is not None:
        parts.append(f"fiscal years {since} on")
    return ", ".join(parts)


def _render(template: str, **context) -> str:
    return ENV.get_template(template).render(colours=COLOURS, **context)


def company_html(report: CompanyReport, rows: int = 200, provenance: dict | None = None) -> str:
    """The company report page: cards, obligations per fiscal year (direct, with resellers stacked),
    obligations by agency and by reseller, then the awards, brand mentions and yearly totals."""
    years = [(r[0], r[1]) for r in report.years.rows]
    resold = {r[0]: r[3] for r in report.years.rows}
    by_agency: dict[str, float] = {}
    for a in report.awards.records():
        by_agency[a["agency"] or "?"] = by_agency.get(a["agency"] or "?", 0.0) + _num(a["obligated"])
    resellers: dict[str, float] = {}
    for m in report.brand_mentions.records():
        key = m["reseller_parent"] or m["reseller"] or "?"
        resellers[key] = resellers.get(key, 0.0) + _num(m["obligated"])
    return _render(
        "company.html.j2",
        title=f"{report.name}: company report", subtitle=_scope(report.agency, report.since),
        provenance=_provenance(report, provenance), json_command=company_command(report, "json")["text"],
        cards=[("obligated directly", money(sum(_num(r[1]) for r in report.years.rows))),
               ("awards", f"{len(report.awards.rows):,}"),
               ("via resellers (brand mentions)", money(sum(_num(r[3]) for r in report.years.rows))),
               ("reseller awards", f"{len(report.brand_mentions.rows):,}")],
        matched=", ".join(r[0] for r in report.companies.rows) or "none",
        charts=[year_chart(years, "Obligations per fiscal year (blue: direct, orange: via resellers)", resold),
                ranking_chart(sorted(by_agency.items(), key=lambda kv: -kv[1])[:12], "Obligations by awarding agency"),
                ranking_chart(sorted(resellers.items(), key=lambda kv: -kv[1])[:12], "Resellers naming its brands")],
        awards=table_view(report.awards, rows, company_command(report, "csv"), AWARD_DETAIL),
        mentions=table_view(report.brand_mentions, rows, company_command(report, "json", "brand_mentions"),
                            MENTION_DETAIL),
        years=table_view(report.years, None, company_command(report, "json", "fiscal_years")),
    )


def agency_html(report: AgencyReport, provenance: dict | None = None) -> str:
    """The agency report page: cards, obligations per fiscal year, top companies as horizontal bars, the ranking."""
    fy = report.fiscal_year
    change = "n/a"
    if report.previous_total:
        change = f"{(_num(report.total) - _num(report.previous_total)) / _num(report.previous_total) * 100:+.1f}%"
    name = f"{report.agency.label} ({report.agency_name})" if report.agency_name else report.agency.label
    return _render(
        "agency.html.j2",
        title=f"{name}: agency report", subtitle=f"{report.agency.tier} code {report.agency.code}, fiscal year {fy}",
        provenance=_provenance(report, provenance), json_command=agency_command(report, "json")["text"], fiscal_year=fy,
        cards=[(f"obligated FY{fy}", money(report.total)),
               (f"FY{fy - 1}" if fy else "previous year", money(report.previous_total)),
               ("change", change), ("companies shown", f"{len(report.companies.rows):,}")],
        charts=[year_chart([(r[0], r[1]) for r in report.years.rows],
                           f"{report.agency.label}: obligations per fiscal year"),
                ranking_chart([(r[1], r[2]) for r in report.companies.rows], f"Top parent companies, FY{fy}",
                              width=1070, label_width=300)],
        companies=table_view(report.companies, None, agency_command(report, "csv")),
        years=table_view(report.years, None, agency_command(report, "json", "fiscal_years")),
    )
