"""Bad input: a clear one-line error naming the file (and row, column), or quarantine; nothing lost silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.schemas.errors import InputError
from tests.factories import row, write_csv, write_zip


def load(path: Path, warehouse: Path, **kw):
    return ingest([path], warehouse=warehouse, max_rejected_share=1, **kw)


def refused(path: Path, warehouse: Path, pattern: str) -> str:
    with pytest.raises(InputError) as info:
        load(path, warehouse)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert pytest.importorskip("re").search(pattern, message), message
    return message


def test_empty_file(tmp_path, warehouse, sql):
    f = tmp_path / "empty.csv"
    f.write_bytes(b"")
    refused(f, warehouse, "file is empty")
    assert sql("SELECT status, message FROM runs")[0][0] == "failed"


def test_header_only_file_loads_nothing_and_succeeds(tmp_path, warehouse):
    result = load(write_csv(tmp_path / "h.csv", []), warehouse)
    assert (result.status, result.counts.read) == ("succeeded", 0)


def test_truncated_zip(tmp_path, warehouse, sql):
    member = write_csv(tmp_path / "a.csv", [row(piid=f"HSCETC15C{i:05d}", transaction_description="X" * 500) for i in range(50)])
    z = write_zip(tmp_path / "download.zip", {"a.csv": member})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    refused(cut, warehouse, r"not a readable ZIP file \(truncated or corrupt\)")
    assert sql("SELECT count(*) FROM transactions") == [(0,)]


def test_a_file_that_is_not_a_zip(tmp_path, warehouse):
    f = tmp_path / "page.zip"
    f.write_text("<html><body>Service Unavailable</body></html>")
    refused(f, warehouse, "not a readable ZIP file")


@pytest.mark.parametrize("surplus,reason", [
    ("surplus", "row has more fields than the header's 297: extra value 'surplus'"),
    # the reader keeps only the first surplus field, and an empty one reads as null: the field count catches it
    ("", "row has 298 fields, more than the header's 297"),
])
def test_row_with_too_many_fields_is_quarantined(tmp_path, warehouse, sql, surplus, reason):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002")])
    lines = f.read_text().splitlines()
    lines[2] += "," + surplus
    f.write_text("\n".join(lines) + "\n")
    result = load(f, warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    assert sql("SELECT source_row, reasons FROM quarantine") == [(2, [reason])]


def test_row_with_too_few_fields_is_quarantined(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002")])
    lines = f.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 3)[0]
    f.write_text("\n".join(lines) + "\n")
    result = load(f, warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    (row_no, reasons), = sql("SELECT source_row, reasons FROM quarantine")
    assert row_no == 2
    assert reasons == ["row has 294 field(s), fewer than the header's 297"]


def test_non_utf8_bytes_in_a_name_are_quarantined_with_the_column(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002", recipient_name="CAFE_MARKER")])
    f.write_bytes(f.read_bytes().replace(b"CAFE_MARKER", b"CAF\xc9 DU MONDE"))
    result = load(f, warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    (reasons, name), = sql("SELECT reasons, original_values->>'$.recipient_name' FROM quarantine")
    assert reasons == ["recipient_name: bytes that are not UTF-8 (shown as \ufffd)"]
    assert name == "CAF\ufffd DU MONDE"


def test_nul_byte_in_a_value_is_quarantined(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002", transaction_description="NUL_HERE")])
    f.write_bytes(f.read_bytes().replace(b"NUL_HERE", b"A\x00B"))
    result = load(f, warehouse)
    assert result.counts.quarantined == 1
    assert sql("SELECT reasons FROM quarantine") == [(["transaction_description: contains a NUL byte"],)]


@pytest.mark.parametrize("offset", range(6))
def test_suspect_bytes_are_found_across_read_chunks(tmp_path, offset):
    from awardwatch.flows.sources.files import has_suspect_bytes

    f = tmp_path / "a.csv"
    f.write_bytes(b"x" * (6 + offset) + "\ufffd".encode() + b"y" * 9)  # the 3-byte marker at every place around a chunk edge
    assert has_suspect_bytes(f, chunk=8)
    f.write_bytes(b"x" * (6 + offset) + b"\x00")
    assert has_suspect_bytes(f, chunk=8)
    f.write_bytes(b"x" * 30)
    assert not has_suspect_bytes(f, chunk=8)


def test_missing_required_column_refuses_the_file(tmp_path, warehouse, sql):
    from awardwatch.schemas.layouts import current_columns

    columns = [c for c in current_columns() if c != "action_date"]
    f = write_csv(tmp_path / "a.csv", [row()], columns=columns)
    refused(f, warehouse, r"missing required column\(s\) action_date")
    assert sql("SELECT count(*) FROM transactions") == [(0,)]


def test_header_repeating_a_column_refuses_the_file(tmp_path, warehouse):
    from awardwatch.schemas.layouts import current_columns

    f = write_csv(tmp_path / "a.csv", [row()], columns=[*current_columns(), "naics_code"])
    refused(f, warehouse, r"header repeats column\(s\) naics_code")


def test_extra_columns_are_tolerated_and_recorded(tmp_path, warehouse, sql):
    from awardwatch.schemas.layouts import current_columns

    f = write_csv(tmp_path / "a.csv", [row()], columns=[*current_columns(), "brand_new_column"])
    result = load(f, warehouse)
    assert result.counts.inserted == 1
    assert sql("SELECT extra_columns FROM run_files") == [(["brand_new_column"],)]


def test_day_first_date_is_quarantined(tmp_path, warehouse, sql):
    result = load(write_csv(tmp_path / "a.csv", [row(action_date="03/05/2018")]), warehouse)
    assert result.counts.quarantined == 1
    assert sql("SELECT reasons FROM quarantine") == [(["action_date: not an ISO date YYYY-MM-DD (got '03/05/2018')"],)]


def test_unbalanced_quote_at_end_refuses_the_file(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row()])
    f.write_text(f.read_text() + '"unterminated,quote\n')
    refused(f, warehouse, r"cannot parse as CSV")
    assert sql("SELECT count(*) FROM transactions") == [(0,)]


def test_missing_file(tmp_path, warehouse):
    refused(tmp_path / "nope.csv", warehouse, "no such file")


def test_zip_slip_entry_is_refused(tmp_path, warehouse):
    member = write_csv(tmp_path / "a.csv", [row()])
    z = write_zip(tmp_path / "evil.zip", {"../../evil.csv": member})
    refused(z, warehouse, r"unsafe path")


def test_quarantine_is_idempotent_across_reruns(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="BAD", action_date="x")])
    first = load(f, warehouse)
    second = load(f, warehouse)
    assert second.counts.quarantined == 1
    assert sql("SELECT count(*), min(first_run_id), max(last_run_id) FROM quarantine") == [(1, first.run_id, second.run_id)]
    (values,), = sql("SELECT original_values FROM quarantine")
    assert json.loads(values)["award_id_piid"] == "BAD"
