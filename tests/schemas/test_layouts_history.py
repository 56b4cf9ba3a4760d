"""Every historic layout of the contract download loads without losing a column (issue 14 point 5).

The headers come from ../shared/reference/download_layouts.csv (every distinct header of
usaspending-api usaspending_api/download/v2/download_column_historical_lookups.py since 2017, with
dates) and its renames from download_layout_renames.csv; the tests skip when that folder is absent.
The mapping under test lives in the project (schemas/layouts.py, schemas/layout_history.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.schemas.layouts import RETIRED, current_columns, detect, versions
from tests.paths import SHARED
from tests.factories import row

REFERENCE = SHARED / "reference"
LAYOUTS, RENAMES = REFERENCE / "download_layouts.csv", REFERENCE / "download_layout_renames.csv"
# renames the reference lists that are successors, not renames (schemas.layouts.RETIRED says why)
NOT_RENAMES = {"change_in_current_award_amount", "change_in_potential_award_amount"}


def _reference(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


HEADERS = {int(r["version"]): r["columns"].split("|") for r in _reference(LAYOUTS)}
RENAMED = {}
for r in _reference(RENAMES):
    RENAMED.setdefault(int(r["version"]), {})[r["old_name"]] = r["new_name"]
needs_reference = pytest.mark.skipif(not HEADERS, reason=f"{LAYOUTS} is absent (../shared not checked out)")


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([r.get(c, "") for c in header] for r in rows)
    return path


def _same_names(version: int) -> list[int]:
    """Versions whose header has the same names (v13/v14 and v20/v21 differ only in order)."""
    return [v for v, h in HEADERS.items() if set(h) == set(HEADERS[version])]


@needs_reference
def test_the_project_history_has_every_reference_header():
    assert {v: set(h) for v, h in HEADERS.items()} == {v: set(n) for v, n in versions().items()}
    assert HEADERS[max(HEADERS)] == list(current_columns())


@needs_reference
@pytest.mark.parametrize("version", sorted(HEADERS) or [0])
def test_every_version_is_detected_and_its_header_only_file_loads(version, tmp_path, warehouse, sql):
    header = HEADERS[version]
    layout = detect(header)
    assert layout.version == min(_same_names(version))
    assert layout.extra == () and layout.missing_required == ()
    # every column is either loaded (under its own or today's name) or a column with no successor
    loaded = {layout.renamed.get(c, c) for c in header} & set(current_columns())
    assert {c for c in header if layout.renamed.get(c, c) not in loaded} <= set(RETIRED)
    result = ingest([_write(tmp_path / f"v{version}.csv", header, [])], warehouse=warehouse)
    assert (result.status, result.counts.read, result.files[0].extra_columns) == ("succeeded", 0, [])
    assert sql("SELECT extra_columns FROM run_files") == [([],)]


@needs_reference
@pytest.mark.parametrize("version", sorted(v for v in RENAMED) or [0])
def test_renamed_columns_land_in_todays_column(version, tmp_path, warehouse, sql):
    """A row of the version before each rename, written under the old names: every value lands in today's column."""
    renames = {old: new for old, new in RENAMED[version].items() if old not in NOT_RENAMES}
    if not renames:
        pytest.skip("successors, not renames (see schemas.layouts.RETIRED)")
    before = max(v for v in HEADERS if v < version and set(renames) <= set(HEADERS[v]))  # v4's old name is v2's
    header = HEADERS[before]
    kinds = current_columns()
    values = row(recipient_state_code="VA", primary_place_of_performance_state_code="MD", recipient_parent_name="")  # v2 swaps it
    expected = {}
    for old, new in renames.items():
        if "congressional_district" in old:  # bare code then; STATE-CD today (see test_row_rules)
            values[old], expected[new] = "8", ("VA-08" if "recipient" in old else "MD-08")
        else:
            values[old] = expected[new] = "1234.56" if kinds[new] == "money" else ("t" if kinds[new] == "bool" else f"V{before}")
    result = ingest([_write(tmp_path / f"v{before}.csv", header, [values])], warehouse=warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 0)
    selected = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in expected)
    got = sql(f"SELECT {selected} FROM transactions")[0]
    want = tuple("true" if v == "t" else v for v in expected.values())
    assert got == want


@needs_reference
def test_covid_amounts_of_2020_to_2023_files_are_loaded(tmp_path, warehouse, sql):
    """v19-v22 (2020-07 .. 2023-03) name them obligated/outlayed_amount_funded_by_COVID-19_...; dropped before."""
    files = []
    for version in (19, 20, 21, 22):
        values = row(piid=f"HSCETC15C0{version}")
        values["obligated_amount_funded_by_COVID-19_supplementals_for_overall_award"] = "250.00"
        values["outlayed_amount_funded_by_COVID-19_supplementals_for_overall_award"] = "-12.50"
        files.append(_write(tmp_path / f"v{version}.csv", HEADERS[version], [values]))
    result = ingest(files, warehouse=warehouse)
    assert result.counts.inserted == 4
    assert sql('SELECT DISTINCT "obligated_amount_from_COVID-19_supplementals_for_overall_award"::VARCHAR, '
               '"outlayed_amount_from_COVID-19_supplementals_for_overall_award"::VARCHAR FROM transactions') == [("250.00", "-12.50")]


@needs_reference
def test_version_2_parent_name_and_duns_are_swapped_back(tmp_path, warehouse, sql):
    """v2 (2017-10-18 .. 10-26) wrote recipient_parent_duns from ultimate_parent_legal_enti and
    recipient_parent_name from ultimate_parent_unique_ide (download_column_historical_lookups.py at 4800afe4a)."""
    values = row(recipient_parent_name="123456789", recipient_parent_duns="PALANTIR TECHNOLOGIES INC.")
    ingest([_write(tmp_path / "v2.csv", HEADERS[2], [values])], warehouse=warehouse)
    assert sql("SELECT recipient_parent_name, recipient_parent_duns FROM transactions") == [("PALANTIR TECHNOLOGIES INC.", "123456789")]
