"""The HTML report: one self-contained page, inline SVG charts, escaped values; rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from flows import reports
from flows.pipeline import ingest
from flows.report_html import POSITIVE, RESOLD, agency_html, company_html, money
from tests.factories import row, write_csv

CHROMIUM = Path("/usr/bin/chromium")
NASTY = '<script>alert("x")</script> & "QUOTES" LLC'


def company(piid: str, name: str, parent: str = "", **values) -> dict:
    return row(piid=piid, **({"recipient_name": name, "recipient_uei": "", "recipient_duns": "", "recipient_parent_name": parent} | values))


ROWS = [
    *(company(f"P{fy}", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", amount=f"{amount}.00", action_date=f"{fy - 1}-11-15")
      for fy, amount in ((2015, 1_300_000), (2016, 61_400_000), (2017, 39_000_000), (2018, 190_900_000), (2019, 89_400_000))),
    company("PNEG", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", mod="P00009", amount="-2500000.00", action_date="2019-05-01"),
    company("R1", "CARAHSOFT TECHNOLOGY CORP.", amount="70000000.00", action_date="2019-01-10",
            transaction_description="PALANTIR GOTHAM LICENSES"),
    company("G1", "THE GEO GROUP, INC.", amount="75500000.00", action_date="2018-06-01"),
    company("X1", NASTY, amount="1234.00", action_date="2018-06-01",
            transaction_description='PALANTIR <img src=x onerror=alert(1)> "O&M"'),
]


@pytest.fixture(scope="module")
def warehouse_con(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    path = tmp / "wh" / "awardwatch.duckdb"
    ingest([write_csv(tmp / "rows.csv", ROWS)], warehouse=path)  # loads resolve companies and build the marts
    con = reports.open_warehouse(path)
    yield con
    con.close()


def test_amounts_read_like_dollars():
    assert [money(v) for v in (39_000_000, 1_234_567_890, 12_300, 512, -2_500_000, 0, None)] == [
        "$39.0M", "$1.2B", "$12.3K", "$512", "-$2.5M", "$0", ""]


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
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;QUOTES&quot; LLC" in html
    assert "PALANTIR &lt;img src=x onerror=alert(1)&gt; &quot;O&amp;M&quot;" in html


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


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (CI installs Debian's chromium package)")
def test_headless_chromium_renders_the_charts(warehouse_con, tmp_path):
    html_path = tmp_path / "palantir.html"
    html_path.write_text(company_html(reports.company_report(warehouse_con, "Palantir")), encoding="utf-8")
    png = tmp_path / "palantir.png"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1200,1600",
               html_path.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    width, height, rows = read_png(png, max_rows=700)  # the charts are at the top of the page
    assert (width, height) == (1200, 1600)
    bpp = len(rows[0]) // width
    found = colours(rows, bpp)
    assert len(found) > 20, "the page looks blank"
    background = max(found, key=found.get)
    assert background == (255, 255, 255)
    assert found.get(rgb(POSITIVE), 0) > 5000, "no blue bars drawn"
    assert found.get(rgb(RESOLD), 0) > 500, "no orange (via resellers) bar drawn"
