"""The company report laid out for reading, checked in headless Chromium at 1400 and 800 px.

A screenshot of each width is kept (under tmp_path, copied to /tmp/report-shots/), and a small
script added to a copy of the page measures the laid-out tables and writes its findings into the
DOM, read back with ``--dump-dom``: no cell is narrower than the longest word of its header, no
cell of an award's main row wraps, every cut cell has its full text in ``title``, and the page
itself does not scroll sideways.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import struct
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.cli.html import company_html
from tests.factories import row, write_csv
from awardwatch.warehouse import reports

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
SHOTS = Path("/tmp/report-shots")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome on PATH "
                                                            "(CI installs Debian's chromium package)")


def chromium(tmp: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a local page, with a throwaway profile, no network chatter."""
    profile = tmp / "chromium-profile"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


LONG_PARENT = "PALANTIR TECHNOLOGIES INTERNATIONAL GOVERNMENT SOLUTIONS AND HOLDINGS INCORPORATED OF DELAWARE"
LONG_RECIPIENT = "PALANTIR USG INC. DOING BUSINESS AS PALANTIR FEDERAL ANALYTICS AND DATA INTEGRATION SERVICES"
LONG_RESELLER = "CARAHSOFT TECHNOLOGY CORPORATION FEDERAL SYSTEMS INTEGRATION AND SOFTWARE LICENSING DIVISION"
LONG_AGENCY = "OFFICE OF THE CHIEF PROCUREMENT OFFICER FOR INFORMATION TECHNOLOGY ACQUISITION AND SUSTAINMENT"
DESCRIPTION = ("PALANTIR GOTHAM ENTERPRISE LICENSES, OPERATIONS AND MAINTENANCE OF THE INVESTIGATIVE CASE MANAGEMENT "
               "SYSTEM (ICM), INCLUDING TIER 2 AND TIER 3 HELP DESK SUPPORT, DATA INTEGRATION WITH LEGACY ENFORCEMENT "
               "SYSTEMS, SECURITY AUTHORIZATION PACKAGES, CONTINUOUS MONITORING, TRAINING FOR FIELD OFFICES AND "
               "HEADQUARTERS PERSONNEL, AND TRANSITION-OUT ASSISTANCE; SEE ATTACHMENT "
               "HTTPS://EXAMPLE.INVALID/ATTACHMENTS/HSCETC-15-C-00001/STATEMENT_OF_WORK_REVISION_0007_FINAL.PDF")


def rows() -> list[dict]:
    people = {"recipient_name": LONG_RECIPIENT, "recipient_parent_name": LONG_PARENT, "recipient_uei": "",
              "recipient_duns": "", "transaction_description": DESCRIPTION}
    amounts = (1_300_000, 61_400_000, 39_000_000, 190_900_000, 89_400_000) * 4
    direct = [row(piid=f"HSCETC{fy % 100:02d}C{fy:05d}", amount=f"{amount}.00", action_date=f"{fy - 1}-11-15", **people)
              for fy, amount in zip(range(2008, 2026), amounts)]
    other = row(piid="70CMSD21C00000042", amount="12500000.00", action_date="2021-02-01",
                awarding_sub_agency_code="7099", awarding_sub_agency_name=LONG_AGENCY, **people)
    resold = row(piid="GS35F0119Y70CMSD19F00000123", amount="70000000.00", action_date="2019-01-10",
                 recipient_name=LONG_RESELLER, recipient_uei="", recipient_duns="", recipient_parent_name="",
                 transaction_description="PALANTIR GOTHAM LICENSES FOR THE HOMELAND SECURITY INVESTIGATIONS "
                                         "DIRECTORATE AND ENFORCEMENT AND REMOVAL OPERATIONS, ALL FIELD OFFICES")
    return [*direct, other, resold]


PROVENANCE = {"snapshot_id": "20250612T031500Z-7f3a", "run_id": "nightly-2025-06-12-0315",
              "last_modified_date": datetime(2025, 6, 11, 22, 4, 5), "source": "USAspending.gov award data archive"}


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("layout")
    path = tmp / "wh" / "awardwatch.duckdb"
    ingest([write_csv(tmp / "rows.csv", rows())], warehouse=path)
    con = reports.open_warehouse(path)
    try:
        report = reports.company_report(con, "Palantir")
    finally:
        con.close()
    assert len(report.awards.rows) == 19 and report.brand_mentions.rows
    return company_html(report, provenance=PROVENANCE)


def test_long_text_is_cut_with_the_full_text_on_hover_and_beneath(page):
    assert re.search(r"table \{[^}]*table-layout: fixed", page)
    assert f'title="{LONG_RECIPIENT}"' in page and f'title="{LONG_AGENCY}"' in page
    assert page.count(f'<span class="dv">{DESCRIPTION}</span>') == 19  # the description, whole, beneath each award
    assert "awardwatch report company Palantir --format csv" in page
    assert ">20250612T031500Z-7f3a<" in page and ">2025-06-11 22:04:05<" in page and ">nightly-2025-06-12-0315<" in page


MEASURE = r"""
(() => {
  const probe = document.createElement('span');
  probe.style.cssText = 'position:absolute; visibility:hidden; white-space:nowrap; left:-9999px; top:0';
  document.body.appendChild(probe);
  const textWidth = (text, el) => {
    const s = getComputedStyle(el);
    probe.style.font = s.font; probe.style.letterSpacing = s.letterSpacing; probe.textContent = text;
    return probe.getBoundingClientRect().width;
  };
  const inner = el => {
    const s = getComputedStyle(el);
    return el.getBoundingClientRect().width - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
  };
  const lines = el => {
    const range = document.createRange(); range.selectNodeContents(el);
    return new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
  };
  const result = {width: innerWidth, pageWidth: document.documentElement.scrollWidth, tables: 0, cells: 0,
                  cut: 0, narrow: [], wrapped: [], untitled: [],
                  details: [...document.querySelectorAll('tr.detail div')].map(d => d.getBoundingClientRect().right)};
  document.querySelectorAll('table').forEach((table, t) => {
    result.tables++;
    const heads = [...table.querySelectorAll('thead th')];
    const need = heads.map(th => Math.max(...th.textContent.trim().split(/\s+/).map(w => textWidth(w, th))));
    const seen = (td, col, needed) => ({table: t, column: heads[col].textContent.trim(),
                                        text: td.textContent.slice(0, 40), width: inner(td), need: needed});
    heads.forEach((th, i) => { if (inner(th) + 0.5 < need[i]) result.narrow.push(seen(th, i, need[i])); });
    table.querySelectorAll('tbody tr').forEach(tr => {
      let col = 0;
      [...tr.cells].forEach(td => {
        const span = td.colSpan, needed = Math.max(...need.slice(col, col + span));
        result.cells++;
        if (inner(td) + 0.5 < needed) result.narrow.push(seen(td, col, needed));
        if (span === 1 && lines(td) > 1) result.wrapped.push(seen(td, col, needed));
        if (span === 1 && td.scrollWidth > td.clientWidth + 1) {
          result.cut++;
          if (td.title !== td.textContent) result.untitled.push(seen(td, col, needed));
        }
        col += span;
      });
    });
  });
  const out = document.createElement('pre'); out.id = 'layout-result'; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
})();
"""


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@needs_chromium
@pytest.mark.parametrize("width", [1400, 800])
def test_report_reads_at_width(page, tmp_path, width):
    plain = tmp_path / f"company-{width}.html"
    plain.write_text(page, encoding="utf-8")
    shot = tmp_path / f"company-{width}.png"
    done = chromium(tmp_path, plain, f"--screenshot={shot}", f"--window-size={width},2600")
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    assert png_size(shot) == (width, 2600)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / shot.name)

    measured = tmp_path / f"company-{width}-measured.html"
    measured.write_text(page.replace("</body>", f"<script>{MEASURE}</script></body>"), encoding="utf-8")
    done = chromium(tmp_path, measured, "--dump-dom", f"--window-size={width},2600")
    found = re.search(r'<pre id="layout-result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no measurements in the dumped DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(htmllib.unescape(found.group(1)))
    (tmp_path / f"company-{width}-layout.json").write_text(json.dumps(result, indent=1))
    assert result["width"] == width
    assert result["tables"] == 3 and result["cells"] > 19 * 9
    assert result["narrow"] == [], "cells narrower than the longest word of their header"
    assert result["wrapped"] == [], "cells of a main row wrapped"
    assert result["cut"] > 0 and result["untitled"] == [], "cut cells without their full text in title"
    assert result["pageWidth"] <= width, "the page scrolls sideways (only a wide table's own box may)"
    assert len(result["details"]) == 20 and max(result["details"]) <= width, "descriptions run past the window"
