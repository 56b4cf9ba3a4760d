"""Company and agency reports as ONE self-contained HTML page.

No external JavaScript, CSS or fonts: styles are inline in the page, charts are inline SVG drawn
here (obligations per fiscal year as vertical bars, top companies/agencies/resellers as
horizontal bars), amounts are shown like ``$39.0M``. Every value from the data is HTML-escaped.
Bars carry ``class="bar fy"`` and ``data-fy`` (vertical) or ``class="bar hbar"`` (horizontal),
so tests and scripts can find them.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from html import escape

from flows.reports import AgencyReport, CompanyReport, Table

POSITIVE = "#2b6cb0"
RESOLD = "#dd6b20"
NEGATIVE = "#c53030"
GRID = "#e2e8f0"
INK = "#1a202c"
MUTED = "#4a5568"

STYLE = f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: {INK};
       margin: 24px auto; max-width: 1120px; padding: 0 16px; background: #fff; }}
h1 {{ font-size: 26px; margin: 0 0 4px; }}
h2 {{ font-size: 19px; margin: 28px 0 8px; border-bottom: 2px solid {GRID}; padding-bottom: 4px; }}
p.sub {{ color: {MUTED}; margin: 0 0 16px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0; }}
.card {{ border: 1px solid {GRID}; border-radius: 8px; padding: 10px 14px; min-width: 150px; }}
.card .v {{ font-size: 22px; font-weight: 600; }}
.card .k {{ color: {MUTED}; font-size: 13px; }}
.charts {{ display: flex; gap: 16px; flex-wrap: wrap; }}
figure {{ margin: 0; border: 1px solid {GRID}; border-radius: 8px; padding: 8px; }}
figcaption {{ font-weight: 600; margin: 2px 4px 6px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; margin: 6px 0 12px; }}
th, td {{ border-bottom: 1px solid {GRID}; padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }}
.scroll {{ overflow-x: auto; }}
th {{ background: #f7fafc; }}
td.n {{ text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }}
td.neg {{ color: {NEGATIVE}; }}
.note {{ color: {MUTED}; font-size: 13px; }}
svg text {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }}
"""


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


def _num(value: object) -> float:
    return float(value) if value is not None else 0.0


# ---------------------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------------------


def year_bars(years: list[tuple[int, object]], title: str, resold: dict[int, object] | None = None,
              width: int = 1070, height: int = 320) -> str:
    """Vertical bars, one per fiscal year (``class="bar fy"``), negative years below the zero line;
    with ``resold``, a second colour stacked on each year (``class="bar fy-resold"``)."""
    if not years:
        return _empty_chart(title, width)
    left, right, top, bottom = 76, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [_num(v) + _num((resold or {}).get(fy)) for fy, v in years]
    high = max([0.0, *totals, *(_num(v) for _, v in years)])
    low = min([0.0, *(_num(v) for _, v in years)])
    span = (high - low) or 1.0
    y = lambda v: top + (high - v) / span * plot_h  # noqa: E731
    slot = plot_w / len(years)
    bar_w = max(6.0, min(64.0, slot * 0.64))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart years" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title, quote=True)}">']
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = low + span * frac
        gy = y(v)
        parts.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end" font-size="11" fill="{MUTED}">{escape(money(v))}</text>')
    zero = y(0.0)
    for i, (fy, value) in enumerate(years):
        v = _num(value)
        x = left + slot * i + (slot - bar_w) / 2
        y0, y1 = (y(v), zero) if v >= 0 else (zero, y(v))
        colour = POSITIVE if v >= 0 else NEGATIVE
        label = f"FY{fy}: {money_full(value)}"
        parts.append(f'<rect class="bar fy" data-fy="{escape(str(fy), quote=True)}" x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                     f'height="{max(y1 - y0, 1.0):.1f}" fill="{colour}"><title>{escape(label)}</title></rect>')
        stacked_top = y0 if v >= 0 else zero
        extra = _num((resold or {}).get(fy))
        if extra > 0:
            h = extra / span * plot_h
            stacked_top -= h
            parts.append(f'<rect class="bar fy-resold" data-fy="{escape(str(fy), quote=True)}" x="{x:.1f}" y="{stacked_top:.1f}" '
                         f'width="{bar_w:.1f}" height="{max(h, 1.0):.1f}" fill="{RESOLD}">'
                         f'<title>{escape(f"FY{fy} via resellers: {money_full(extra)}")}</title></rect>')
        shown = v + max(extra, 0.0)
        ty = (stacked_top - 6) if shown >= 0 else (y1 + 14)
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{ty:.1f}" text-anchor="middle" font-size="12" font-weight="600" '
                     f'fill="{INK}">{escape(money(shown))}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 18}" text-anchor="middle" font-size="12" '
                     f'fill="{INK}">{escape(f"FY{fy}")}</text>')
    parts.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{width - right}" y2="{zero:.1f}" stroke="{INK}" stroke-width="1"/>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def horizontal_bars(items: list[tuple[str, object]], title: str, width: int = 520, label_width: int = 200) -> str:
    """Horizontal bars, one per item (``class="bar hbar"``), longest first as given, amounts after each bar."""
    if not items:
        return _empty_chart(title, width)
    row, top = 26, 8
    height = top * 2 + row * len(items)
    value_w = 80
    plot_w = width - label_width - value_w - 16
    high = max([_num(v) for _, v in items] + [0.0]) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart ranking" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title, quote=True)}">']
    for i, (label, value) in enumerate(items):
        v = _num(value)
        yy = top + i * row
        room = max(12, label_width // 7)
        shown = label if len(label) <= room else label[: room - 1] + "…"
        w = max(v, 0.0) / high * plot_w
        parts.append(f'<text x="{label_width - 8}" y="{yy + 17}" text-anchor="end" font-size="12" fill="{INK}">'
                     f'<title>{escape(label)}</title>{escape(shown)}</text>')
        parts.append(f'<rect class="bar hbar" x="{label_width}" y="{yy + 4}" width="{max(w, 1.0):.1f}" height="{row - 8}" '
                     f'fill="{POSITIVE if v >= 0 else NEGATIVE}"><title>{escape(f"{label}: {money_full(value)}")}</title></rect>')
        parts.append(f'<text x="{label_width + max(w, 1.0) + 6:.1f}" y="{yy + 17}" font-size="12" font-weight="600" '
                     f'fill="{INK}">{escape(money(value))}</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def _figure(title: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(title)}</figcaption>{svg}</figure>"


def _empty_chart(title: str, width: int) -> str:
    return _figure(title, f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40">'
                          f'<text x="8" y="24" font-size="13" fill="{MUTED}">no data</text></svg>')


# ---------------------------------------------------------------------------------------------------------
# Tables and page
# ---------------------------------------------------------------------------------------------------------

MONEY_COLUMNS = {"obligated", "current_value", "potential_value", "direct_obligated", "via_resellers_obligated",
                 "total_obligated", "technology_obligated", "previous_obligated", "change"}


def html_table(table: Table, limit: int | None = None) -> str:
    rows = table.rows[:limit] if limit else table.rows
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in table.columns)
    body = []
    for r in rows:
        cells = []
        for c, v in zip(table.columns, r):
            if c in MONEY_COLUMNS:
                neg = " neg" if v is not None and _num(v) < 0 else ""
                cells.append(f'<td class="n{neg}">{escape(money_full(v))}</td>')
            elif isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
                cells.append(f'<td class="n">{escape(f"{v:,}" if isinstance(v, int) else str(v))}</td>')
            elif isinstance(v, (date, datetime)):
                cells.append(f'<td class="n">{escape(v.isoformat())}</td>')
            else:
                cells.append(f"<td>{escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">{len(table.rows) - len(rows):,} more rows not shown; use --format csv or json for all.</p>'
            if limit and len(table.rows) > limit else "")
    if not rows:
        return '<p class="note">none</p>'
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>' for k, v in items) + "</div>"


def page(title: str, subtitle: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>"
        f"{body}<p class=\"note\">awardwatch, from USAspending.gov contract data. Parent companies are resolved "
        "through parent UEI/DUNS, a reviewed alias table and normalised names; brand mentions come from "
        "descriptions of other companies' transactions.</p></body></html>\n"
    )


def _scope(agency, since) -> str:
    parts = [f"awarded by {agency.label}" if agency else "all awarding agencies"]
    if since is not None:
        parts.append(f"fiscal years {since} on")
    return ", ".join(parts)


def company_html(report: CompanyReport, rows: int = 200) -> str:
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
    direct = sum(_num(r[1]) for r in report.years.rows)
    via = sum(_num(r[3]) for r in report.years.rows)
    matched = ", ".join(r[0] for r in report.companies.rows) or "none"
    body = [
        _cards([("obligated directly", money(direct)), ("awards", f"{len(report.awards.rows):,}"),
                ("via resellers (brand mentions)", money(via)), ("reseller awards", f"{len(report.brand_mentions.rows):,}")]),
        f'<p class="note">Matched parent companies: {escape(matched)}.</p>',
        '<div class="charts">',
        year_bars(years, "Obligations per fiscal year (blue: direct, orange: via resellers)", resold),
        horizontal_bars(sorted(by_agency.items(), key=lambda kv: -kv[1])[:12], "Obligations by awarding agency"),
        horizontal_bars(sorted(resellers.items(), key=lambda kv: -kv[1])[:12], "Resellers naming its brands"),
        "</div>",
        "<h2>Awards</h2>", html_table(report.awards, rows),
        "<h2>Bought through resellers (brand mentions)</h2>", html_table(report.brand_mentions, rows),
        "<h2>Per fiscal year</h2>", html_table(report.years),
    ]
    return page(f"{report.name}: company report", _scope(report.agency, report.since), "".join(body))


def agency_html(report: AgencyReport) -> str:
    """The agency report page: cards, obligations per fiscal year, top companies as horizontal bars, the ranking."""
    years = [(r[0], r[1]) for r in report.years.rows]
    top = [(r[1], r[2]) for r in report.companies.rows]
    change = ""
    if report.previous_total:
        pct = (_num(report.total) - _num(report.previous_total)) / _num(report.previous_total) * 100
        change = f"{pct:+.1f}%"
    body = [
        _cards([(f"obligated FY{report.fiscal_year}", money(report.total)),
                (f"FY{report.fiscal_year - 1}" if report.fiscal_year else "previous year", money(report.previous_total)),
                ("change", change or "n/a"), ("companies shown", f"{len(report.companies.rows):,}")]),
        '<div class="charts">',
        year_bars(years, f"{report.agency.label}: obligations per fiscal year"),
        horizontal_bars(top, f"Top parent companies, FY{report.fiscal_year}", width=1070, label_width=300),
        "</div>",
        f"<h2>Top parent companies, FY{report.fiscal_year}</h2>", html_table(report.companies),
        "<h2>Per fiscal year</h2>", html_table(report.years),
    ]
    name = f"{report.agency.label} ({report.agency_name})" if report.agency_name else report.agency.label
    return page(f"{name}: agency report", f"{report.agency.tier} code {report.agency.code}, fiscal year {report.fiscal_year}",
                "".join(body))
