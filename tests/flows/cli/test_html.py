"""The HTML report: one self-contained page, inline SVG charts, escaped values; rendered by headless Chromium."""

from __future__ import annotations

import csv
import io
import re
import struct
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from awardwatch.flows.cli.html import POSITIVE, RESOLD, agency_html, company_html, money, money_full, money_tick, ticks
from awardwatch.flows.core.ingest import ingest
from tests.factories import row, run_cli, write_csv
from tests.flows.cli.test_html_layout import CHROMIUM, chromium
from awardwatch.warehouse import reports

NASTY = '<script>alert("x")</script> & "QUOTES" LLC'


def company(piid: str, name: str, parent: str = "", **values) -> dict:
    return row(piid=piid, **({"recipient_name": name, "recipient_uei": "", "recipient_duns": "", "recipient_parent_name": parent} | values))


ROWS = [
    *(company(f"P{fy}", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", amount=f"{amount}.00", action_date=f"{fy - 1}-11-15")
      for fy, amount in ((2015, 1_300_000), (2016, 61_400_000), (2017, 39_000_000), (2018, 190_900_000), (2019, 89_400_000))),
    company("PNEG", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", mod="P00009", amount="-2500000.00", action_date="2019-05-01"),
    company("R1", "CARAHSOFT TECHNOLOGY CORP.", amount="70000000.00", action_date="2019-01-10",
            transaction_description="PALANTIR GOTHAM LICENSES"),
    company("R1", "CARAHSOFT TECHNOLOGY CORP.", mod="P00001", amount="0.00", action_date="2019-03-01",  # names no brand
            transaction_description="INCREMENTAL FUNDING", last_modified_date="2019-03-02 09:30:00",
            prime_award_base_transaction_description="PALANTIR GOTHAM LICENSES"),
    company("G1", "THE GEO GROUP, INC.", amount="75500000.00", action_date="2018-06-01"),
    company("X1", NASTY, amount="1234.00", action_date="2018-06-01",
            transaction_description='PALANTIR <img src=x onerror=alert(1)> "O&M"'),
]


@pytest.fixture(scope="module")
def warehouse_path(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    path = tmp / "wh" / "awardwatch.duckdb"
    ingest([write_csv(tmp / "rows.csv", ROWS)], warehouse=path)  # loads resolve companies and build the marts
    return path


@pytest.fixture(scope="module")
def warehouse_con(warehouse_path):
    con = reports.open_warehouse(warehouse_path)
    yield con
    con.close()


def test_amounts_read_like_dollars():
    assert [money(v) for v in (39_000_000, 1_234_567_890, 12_300, 512, -2_500_000, 0, None)] == [
        "$39.0M", "$1.2B", "$12.3K", "$512", "-$2.5M", "$0", ""]


@pytest.mark.parametrize("low, high, expected", [
    (0, 190_900_000, [0, 50e6, 100e6, 150e6, 200e6]),
    (0, 159_500_000, [0, 50e6, 100e6, 150e6, 200e6]),
    (-2_500_000, 89_400_000, [-20e6, 0, 20e6, 40e6, 60e6, 80e6, 100e6]),
    (0, 1_234, [0, 250, 500, 750, 1000, 1250]),
    (0, 0, [0, 1]),
])
def test_chart_ticks_are_round(low, high, expected):
    assert ticks(low, high) == pytest.approx(expected)


def test_tick_labels_have_no_needless_decimals():
    assert [money_tick(v) for v in (0, 100e6, 2.5e6, 250e3, 1.25e9, -20e6, 750)] == [
        "$0", "$100M", "$2.5M", "$250K", "$1.25B", "-$20M", "$750"]


def assert_self_contained(html: str) -> None:
    """No external or active content: values are escaped, so every ``<`` starts a tag of the page itself."""
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"<(script|link|iframe|img|object|embed|image|use)\b", html, re.I)
    assert not re.search(r"<[^>]*\s(src|href|xlink:href|on\w+)\s*=", html, re.I)
    style = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert "@import" not in style and "url(" not in style and "@font-face" not in style
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_company_page_is_self_contained_with_one_bar_per_fiscal_year(warehouse_con):
    report = reports.company_report(warehouse_con, "Palantir")
    html = company_html(report)
    assert_self_contained(html)
    assert html.count("<svg") == 3  # years, agencies, resellers
    years = [r[0] for r in report.years.rows]
    assert years == [2015, 2016, 2017, 2018, 2019]
    assert re.findall(r'class="bar fy" data-fy="(\d+)"', html) == [str(y) for y in years]
    assert re.findall(r'class="bar fy-resold" data-fy="(\d+)"', html) == ["2018", "2019"]  # the resellers' years
    assert ">$190.9M<" in html and ">FY2018<" in html and ">Carahsoft<" in html
    assert html.count('class="bar hbar"') == 3  # agencies: ICE; resellers: Carahsoft and the nasty one


def test_every_value_is_escaped(warehouse_con):
    html = company_html(reports.company_report(warehouse_con, "Palantir"))  # the nasty row names PALANTIR: a brand mention
    nasty = reports.company_report(warehouse_con, "QUOTES")
    html += company_html(nasty)
    assert "<script>" not in html and "<img" not in html
    assert '"QUOTES"' not in html and '"O&M"' not in html  # no raw quote to break out of an attribute
    # jinja2's autoescape writes quotes as &#34; (and ' as &#39;)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;QUOTES&#34; LLC" in html
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;QUOTES&#34; LLC"
    assert f'title="{escaped}"' in html  # the hover text too
    assert "PALANTIR &lt;img src=x onerror=alert(1)&gt; &#34;O&amp;M&#34;" in html
    provenance = {"snapshot_id": NASTY, "source": "<b>x</b>"}
    agency = reports.agency_report(warehouse_con, "ICE")
    html = company_html(nasty, provenance=provenance) + agency_html(agency, provenance=provenance)
    assert "<script>" not in html and "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count(escaped) >= 3  # cells, hover titles, the snapshot


def test_agency_page_has_years_and_top_companies(warehouse_con):
    report = reports.agency_report(warehouse_con, "ICE", fiscal_year=2018)
    html = agency_html(report)
    assert_self_contained(html)
    assert html.count("<svg") == 2
    assert re.findall(r'class="bar fy" data-fy="(\d+)"', html) == [str(r[0]) for r in report.years.rows]
    assert html.count('class="bar hbar"') == len(report.companies.rows) == 3
    assert ">$190.9M<" in html and ">GEO Group<" in html and "+" in html


# ---------------------------------------------------------------------------------------------------------
# Rendered by Chromium: a screenshot of the page, read back without extra dependencies
# ---------------------------------------------------------------------------------------------------------


def read_png(path: Path, max_rows: int | None = None) -> tuple[int, int, list[bytes]]:
    """(width, height, decoded RGB(A) rows) of an 8-bit truecolour PNG, without any library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(min(height, max_rows or height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def colours(rows: list[bytes], bpp: int) -> dict[tuple[int, int, int], int]:
    found: dict[tuple[int, int, int], int] = {}
    for r in rows:
        for i in range(0, len(r), bpp):
            key = (r[i], r[i + 1], r[i + 2])
            found[key] = found.get(key, 0) + 1
    return found


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome on PATH")
def test_headless_chromium_renders_the_charts(warehouse_con, tmp_path):
    html_path = tmp_path / "palantir.html"
    html_path.write_text(company_html(reports.company_report(warehouse_con, "Palantir")), encoding="utf-8")
    png = tmp_path / "palantir.png"
    done = chromium(tmp_path, html_path, f"--screenshot={png}", "--window-size=1200,1600")
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    width, height, rows = read_png(png, max_rows=700)  # the charts are at the top of the page
    assert (width, height) == (1200, 1600)
    bpp = len(rows[0]) // width
    found = colours(rows, bpp)
    assert len(found) > 20, "the page looks blank"
    background = max(found, key=found.get)
    assert background == (255, 255, 255)
    assert found.get(rgb(POSITIVE), 0) > 5000, "no blue bars drawn"
    assert found.get(rgb(RESOLD), 0) > 500, "no orange (via resellers) bar drawn"


# ---------------------------------------------------------------------------------------------------------
# Read and cited by a reporter: round ticks, plain years, % signs, the command for the same rows, provenance
# ---------------------------------------------------------------------------------------------------------


def test_company_page_reads_like_a_report(warehouse_con):
    html = company_html(reports.company_report(warehouse_con, "Palantir"))
    assert re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', html) == ["$0", "$50M", "$100M", "$150M", "$200M"]
    assert '<td class="n">2015</td>' in html and "2,015" not in html  # fiscal years without thousands separators
    assert re.search(r"table \{[^}]*table-layout: fixed", html) and "<colgroup>" in html
    assert "overflow-wrap: anywhere" not in re.search(r"th, td \{[^}]*\}", html).group(0)
    assert '<td title="PALANTIR USG INC.">PALANTIR USG INC.</td>' in html  # cut cells show the whole text on hover
    description = "FALCON OPERATIONS AND MAINTENANCE, &#34;O&amp;M&#34;"
    assert f'<span class="dk">description</span><span class="dv">{description}</span>' in html  # beneath the award
    assert "Same rows as CSV: <code>awardwatch report company Palantir --format csv</code>" in html
    assert "<code>awardwatch report company Palantir --format json</code> (key brand_mentions)" in html


def test_brand_mentions_show_the_text_and_action_that_matched(warehouse_con):
    html = company_html(reports.company_report(warehouse_con, "Palantir"))
    mentions = html[html.index("<h2>Bought through resellers"):html.index("<h2>Per fiscal year")]
    r1 = next(b for b in re.findall(r'<tbody class="award">.*?</tbody>', mentions, re.S) if ">R1<" in b)
    assert '<span class="dk">matched description</span><span class="dv">PALANTIR GOTHAM LICENSES</span>' in r1
    for label, text in (("matched text", "PALANTIR GOTHAM"), ("matched in", "transaction_description"),
                        ("matched modification", "0"), ("reseller parent", "Carahsoft")):
        assert f'<span class="dm"><span class="dk">{label}</span>{text}</span>' in r1
    assert re.search(r'<span class="dk">matched transaction key</span>[^<]*_R1_0_', r1)
    assert "INCREMENTAL FUNDING" not in html  # the latest action's description is not the evidence


def test_csv_gives_the_rows_of_the_awards_table(warehouse_con, warehouse_path):
    report = reports.company_report(warehouse_con, "Palantir")
    html = company_html(report)
    awards = html[html.index("<h2>Awards</h2>"):html.index("<h2>Bought through resellers")]
    code, out, err = run_cli("report", "company", "Palantir", "--warehouse", str(warehouse_path), "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == report.awards.columns
    shown = re.findall(r'<span class="dk">award key</span>([^<]+)</span>', awards)
    assert shown == [r["award_key"] for r in rows] and len(rows) == len(report.awards.rows) == 6
    obligated = re.findall(r'<tr class="main">(?:<td[^>]*>[^<]*</td>){6}<td class="n[^"]*">([^<]+)</td>', awards)
    assert obligated == [money_full(Decimal(r["obligated"])) for r in rows]


def test_commands_name_the_same_scope(warehouse_con):
    html = company_html(reports.company_report(warehouse_con, "GEO Group", agency="ICE", since=2018))
    assert "<code>awardwatch report company &#39;GEO Group&#39; --agency ICE --since 2018 --format csv</code>" in html
    html = agency_html(reports.agency_report(warehouse_con, "ICE", fiscal_year=2018))
    assert "<code>awardwatch report agency ICE --fiscal-year 2018 --top 3 --format csv</code>" in html


def test_agency_page_shows_percentages(warehouse_con):
    html = agency_html(reports.agency_report(warehouse_con, "ICE", fiscal_year=2018))
    assert '<td class="n">71.7%</td>' in html and '<td class="n">28.3%</td>' in html  # share of the agency
    assert ">share %</th>" in html and ">change %</th>" in html
    assert ">+583.1%<" in html  # the change card


def provenance_block(html: str) -> list[tuple[str, str]]:
    block = re.search(r'<div class="asof" data-provenance>(.*?)</div>', html, re.S).group(1)
    return re.findall(r"<b>([^<]+)</b>([^<]*)</span>", block)


def test_provenance_comes_with_the_report(warehouse_con, warehouse_path):
    run_id = warehouse_con.execute("SELECT run_id FROM runs WHERE status = 'succeeded'").fetchone()[0]
    company = reports.company_report(warehouse_con, "Palantir")
    agency = reports.agency_report(warehouse_con, "ICE")
    expected = [("run", run_id), ("latest last_modified_date", "2019-03-02 09:30:00"), ("source", "file")]
    assert provenance_block(company_html(company)) == provenance_block(agency_html(agency)) == expected  # not published
    geo = reports.company_report(warehouse_con, "GEO Group")  # its rows only: the factory's last_modified_date
    assert provenance_block(company_html(geo))[1] == ("latest last_modified_date", "2018-03-06 10:00:00")
    manifest = {"snapshot_id": "20250612T031500Z-ab12", "created_at": "2025-06-12T03:15:00", "run_ids": [run_id]}
    on_snapshot = reports.company_report(warehouse_con, "Palantir", manifest=manifest)
    assert provenance_block(company_html(on_snapshot)) == [
        ("snapshot", "20250612T031500Z-ab12"), ("snapshot created", "2025-06-12T03:15:00"), ("runs", run_id),
        *expected[1:]]
    assert "not recorded with this report" in company_html(company, provenance={})  # none: said so
    code, out, err = run_cli("report", "company", "Palantir", "--warehouse", str(warehouse_path))
    assert code == 0, err
    assert f"data as of: run {run_id}; latest last_modified_date 2019-03-02 09:30:00; source file" in out


def test_provenance_is_shown_when_given(warehouse_con):
    from datetime import datetime

    provenance = {"source": "USAspending.gov", "last_modified_date": datetime(2025, 6, 11, 22, 4, 5),
                  "run_id": "r-42", "snapshot_id": "20250612T031500Z", "run_ids": ["r-41", "r-42"], "rows": 1_234}
    for html in (company_html(reports.company_report(warehouse_con, "Palantir"), provenance=provenance),
                 agency_html(reports.agency_report(warehouse_con, "ICE"), provenance=provenance)):
        assert provenance_block(html) == [
            ("snapshot", "20250612T031500Z"), ("run", "r-42"), ("runs", "r-41, r-42"),
            ("latest last_modified_date", "2025-06-11 22:04:05"), ("source", "USAspending.gov"), ("rows", "1234")]
        assert "not recorded" not in html
