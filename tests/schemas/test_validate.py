"""Structure and value reasons (schemas.validate) on small literal frames, and field counts of small CSVs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from awardwatch.schemas.layouts import current_columns
from awardwatch.schemas.names import OVERFLOW, ROW
from awardwatch.schemas.validate import FIELDS, REASONS, field_counts, structure_reasons, value_reasons
from tests.factories import row

NOT_UTF8 = "bytes that are not UTF-8 (shown as \ufffd)"


def reasons(*per_row: list[str]) -> pl.Series:
    return pl.Series(REASONS, list(per_row), dtype=pl.List(pl.String))


def rows(a: list[str | None], b: list[str | None], overflow: list[str | None] | None = None) -> pl.DataFrame:
    """A two-column batch as read: ``source_row`` from 1, ``a``, ``b``, ``__overflow__``."""
    return pl.DataFrame({ROW: pl.Series(range(1, len(a) + 1), dtype=pl.UInt32), "a": a, "b": b,
                         OVERFLOW: overflow or [None] * len(a)}, schema_overrides={OVERFLOW: pl.String})


def structure(df: pl.DataFrame, **kwargs) -> pl.Series:
    return structure_reasons(df, overflow=OVERFLOW, header_width=2, **({"last_column": "b"} | kwargs))


def widths(counts: dict[int, int]) -> pl.DataFrame:
    """What ``field_counts`` gives: the rows with a wrong number of fields."""
    return pl.DataFrame({ROW: list(counts), FIELDS: list(counts.values())}, schema={ROW: pl.Int64, FIELDS: pl.UInt32})


def test_well_formed_rows_have_no_structure_reasons():
    assert_series_equal(structure(rows(["x", "y"], ["1", "2"])), reasons([], []))


def test_an_extra_field_is_named_with_its_value_cut_to_60_characters():
    got = structure(rows(["x", "y"], ["1", "2"], [None, "E" * 70]))
    assert_series_equal(got, reasons([], [f"row has more fields than the header's 2: extra value '{'E' * 60}'"]))


def test_without_field_counts_a_null_last_column_is_a_short_row():
    got = structure(rows(["x", "y"], ["1", None]))
    assert_series_equal(got, reasons([], ["row ends early or lacks its last field 'b' (header has 2 fields)"]))


def test_nul_and_non_utf8_bytes_are_named_per_column_in_sorted_order():
    got = structure(rows(["x", "bad\ufffd"], ["1", "n\x00ul"]))
    assert_series_equal(got, reasons([], [f"a: {NOT_UTF8}", "b: contains a NUL byte"]))


def test_check_bytes_false_does_not_look_for_bad_bytes():
    assert_series_equal(structure(rows(["bad\ufffd"], ["n\x00ul"]), check_bytes=False), reasons([]))


def test_a_problem_the_source_reported_is_a_reason_and_its_column_is_not_searched():
    df = rows(["x", "y"], ["1", "2"]).with_columns(problem=pl.Series([None, "entry\x00 has no award ID"]))
    assert_series_equal(structure(df, problem="problem"), reasons([], ["entry\x00 has no award ID"]))


def test_field_counts_name_short_and_long_rows_and_replace_the_last_column_check():
    df = rows(["x", "y", "z", "w"], [None, None, "3", "4"], [None, None, None, "SURPLUS"])
    got = structure(df, fields=widths({2: 1, 3: 3, 4: 3}))
    assert_series_equal(got, reasons(
        [],  # null last column, right width: a missing value, not a short row
        ["row has 1 field(s), fewer than the header's 2"],
        ["row has 3 fields, more than the header's 2"],  # a surplus empty field: the reader shows no overflow
        ["row has more fields than the header's 2: extra value 'SURPLUS'"],  # named once
    ))


def test_empty_field_counts_still_turn_the_last_column_check_off():
    assert_series_equal(structure(rows(["x"], [None]), fields=widths({})), reasons([]))


def text(*values: dict[str, str | None]) -> pl.DataFrame:
    """Canonical text columns, one row per dict."""
    return pl.DataFrame({c: pl.Series([v.get(c) for v in values], dtype=pl.String) for c in current_columns()})


def test_valid_rows_have_no_value_reasons():
    assert_series_equal(value_reasons(text(row(), row(piid="HSCETC15C00002"))), reasons([], []))


def test_every_failed_rule_of_a_row_is_named_in_column_order():
    bad = row(award_id_piid=None, action_date="1970-01-01", naics_code="5415X",
              small_business_competitiveness_demonstration_program="yes")
    assert_series_equal(value_reasons(text(row(), bad, row())), reasons(
        [],
        ["award_id_piid: missing (required)",
         "action_date: not between 1979-10-01 and next year (got '1970-01-01')",
         "naics_code: not a NAICS code of 2 to 6 digits (got '5415X')",
         "small_business_competitiveness_demonstration_program: not t, f, true or false (got 'yes')"],
        [],
    ))


@pytest.mark.parametrize(("value", "reason"), [
    ("2018-02-30", "action_date: not a real calendar date (got '2018-02-30')"),
    ("03/05/2018", "action_date: not an ISO date YYYY-MM-DD (got '03/05/2018')"),
])
def test_a_date_off_the_calendar_and_a_date_of_another_shape_fail_different_rules(value, reason):
    assert_series_equal(value_reasons(text(row(action_date=value))), reasons([reason]))


def test_a_failing_value_is_shown_cut_to_60_characters():
    amount = "1" * 70
    got = value_reasons(text(row(amount=amount)))
    words = "an amount like 1234.56 (ASCII digits, no commas, at most 15 digits before the point and 2 after)"
    assert_series_equal(got, reasons([f"federal_action_obligation: not {words} (got '{'1' * 60}')"]))


def test_no_rows_no_value_reasons():
    assert_series_equal(value_reasons(text()), reasons())


def counts(tmp_path: Path, content: str, width: int = 3) -> tuple[pl.DataFrame, int]:
    path = tmp_path / "a.csv"
    path.write_bytes(content.encode())
    return field_counts(path, width)


def test_field_counts_follow_quoted_newlines_and_name_short_and_long_rows(tmp_path):
    got, n = counts(tmp_path, 'a,b,c\n1,"two\nlines, with a comma",3\n4,5\n6,7,8,9\n10,11,12\n')
    assert_frame_equal(got, widths({2: 2, 3: 4}))
    assert n == 4


def test_doubled_quotes_and_commas_inside_quotes_are_not_separators(tmp_path):
    got, n = counts(tmp_path, 'a,b,c\n1,"say ""x, y""\n"",z",3\n"",,\n')
    assert (got.height, n) == (0, 2)


def test_crlf_lines_and_a_blank_line_count_as_the_reader_reads_them(tmp_path):
    got, n = counts(tmp_path, 'a,b,c\r\n1,"x\r\n\r\ny",3\r\n\r\n4,5,6,\r\n')  # the blank line is a row of 1 field
    assert_frame_equal(got, widths({2: 1, 3: 4}))
    assert n == 3


def test_a_header_alone_has_no_rows(tmp_path):
    got, n = counts(tmp_path, "a,b,c\n")
    assert_frame_equal(got, widths({}))
    assert n == 0


def test_adjacent_nul_bytes_in_a_quoted_value_do_not_shift_the_rows(tmp_path):
    got, n = counts(tmp_path, 'a,b,c\n1,"x\x00\x00y",3\n4,5,6\n7,8,9\n')
    assert (got.height, n) == (0, 3)
