"""The batch split (transforms.batch) on small raw batches built by hand, as flows.sources.files.scan reads them."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from awardwatch.schemas.layouts import DELTA, LINEAGE, RENAMES, current_columns, detect, legacy_2018_columns
from awardwatch.schemas.names import AWARD_KEY, KEY, OVERFLOW, ROW
from awardwatch.schemas.validate import REASONS
from tests.factories import row
from awardwatch.transforms.batch import reason_kinds, split_batch, split_deletions
from awardwatch.transforms.transactions import MONEY, with_row_hash

CURRENT = list(current_columns())
LEGACY = [*legacy_2018_columns(), "fiscal_year"]  # the 2018 files end with fiscal_year
AMOUNT = "not an amount like 1234.56 (ASCII digits, no commas, at most 15 digits before the point and 2 after)"
KEY_1 = "7012_-NONE-_HSCETC15C00001_0_-NONE-_0"
KEY_2 = "7012_-NONE-_HSCETC15C00002_0_-NONE-_0"
AWARD_KEY_1 = "CONT_AWD_HSCETC15C00001_7012_-NONE-_-NONE-"
SHOWN = [ROW, REASONS, KEY, "lineage_file", "lineage_row"]


def batch(rows: list[dict], columns: list[str] = CURRENT, overflow: list[str | None] | None = None) -> pl.DataFrame:
    """A raw batch: ``source_row`` (UInt32, from 1), one text column per header name (an old name takes the
    row's value under its current name), ``__overflow__``."""
    data = {ROW: pl.Series(range(1, len(rows) + 1), dtype=pl.UInt32)}
    data |= {c: pl.Series([r.get(RENAMES.get(c, c)) for r in rows], dtype=pl.String) for c in columns}
    data[OVERFLOW] = pl.Series(overflow or [None] * len(rows), dtype=pl.String)
    return pl.DataFrame(data)


def quarantine(rows: list[int], reasons: list[list[str]], keys: list[str | None],
               lineage: tuple[list[str | None], list[int | None]] | None = None) -> pl.DataFrame:
    """The expected quarantine columns ``SHOWN``."""
    files, numbers = lineage or ([None] * len(rows), [None] * len(rows))
    return pl.DataFrame({ROW: rows, REASONS: reasons, KEY: keys, "lineage_file": files, "lineage_row": numbers},
                        schema={ROW: pl.Int64, REASONS: pl.List(pl.String), KEY: pl.String, "lineage_file": pl.String,
                                "lineage_row": pl.Int64})


def split(raw: pl.DataFrame, columns: list[str] = CURRENT, **kwargs) -> tuple[pl.DataFrame, pl.DataFrame]:
    return split_batch(raw, detect(columns), "a.csv", **kwargs)


def test_valid_rows_become_typed_canonical_rows():
    raw = batch([row(), row(piid="HSCETC15C00002", mod="p00001", amount="-250.5", action_date="2018-10-01")])
    good, bad = split(raw)
    assert bad.is_empty()
    expected = pl.DataFrame(
        {
            ROW: pl.Series([1, 2], dtype=pl.UInt32),
            KEY: [KEY_1, "7012_-NONE-_HSCETC15C00002_P00001_-NONE-_0"],
            AWARD_KEY: [AWARD_KEY_1, "CONT_AWD_HSCETC15C00002_7012_-NONE-_-NONE-"],
            "federal_action_obligation": pl.Series([Decimal("1000.00"), Decimal("-250.50")], dtype=MONEY),
            "current_total_value_of_award": pl.Series([Decimal("39000000.00")] * 2, dtype=MONEY),
            "action_date": [date(2018, 3, 5), date(2018, 10, 1)],
            "last_modified_date": pl.Series([datetime(2018, 3, 6, 10)] * 2, dtype=pl.Datetime("us")),
            "small_business_competitiveness_demonstration_program": [False, False],
            "fiscal_year": pl.Series([2018, 2019], dtype=pl.Int32),
            "lineage_file": pl.Series([None, None], dtype=pl.String),
            "lineage_row": pl.Series([None, None], dtype=pl.Int64),
        }
    )
    assert_frame_equal(good.select(expected.columns), expected)


def test_valid_rows_have_the_canonical_columns_then_row_lineage_and_hash():
    good, _ = split(batch([row()]))
    assert good.columns == [*CURRENT, ROW, "row_hash", "fiscal_year", "lineage_file", "lineage_row"]


def test_row_hash_is_the_hash_of_the_normalised_text_with_its_keys():
    messy = row(piid=" hscetc15c00001 ", recipient_name="  PALANTIR USG INC. ")
    good, _ = split(batch([row(), messy]))
    text = {c: [row().get(c)] for c in CURRENT} | {KEY: [KEY_1], AWARD_KEY: [AWARD_KEY_1]}
    expected = pl.LazyFrame(text, schema=dict.fromkeys(CURRENT, pl.String)).pipe(with_row_hash).collect()["row_hash"]
    assert_series_equal(good["row_hash"], pl.concat([expected, expected]))


def test_a_bad_date_and_a_bad_amount_are_both_reasons_of_one_quarantined_row():
    raw = batch([row(), row(piid="HSCETC15C00002", amount="1,000.00", action_date="2018-02-30")])
    good, bad = split(raw)
    assert good[ROW].to_list() == [1]
    reasons = [f"federal_action_obligation: {AMOUNT} (got '1,000.00')",
               "action_date: not a real calendar date (got '2018-02-30')"]
    assert_frame_equal(bad.select(SHOWN), quarantine([2], [reasons], [KEY_2]))


def test_a_quarantined_row_keeps_its_values_as_read():
    raw = batch([row(recipient_name="  padded ", action_date="2018-02-30")], overflow=["SURPLUS"])
    _, bad = split(raw)
    assert json.loads(bad["original_values"][0]) == raw.drop(ROW).row(0, named=True)
    assert_series_equal(bad["quarantine_id"], split(raw)[1]["quarantine_id"])  # stable


def test_a_row_with_too_many_fields_is_quarantined_with_its_extra_value():
    good, bad = split(batch([row(), row(piid="HSCETC15C00002")], overflow=[None, "SURPLUS"]))
    assert good[ROW].to_list() == [1]
    reason = "row has more fields than the header's 297: extra value 'SURPLUS'"
    assert_frame_equal(bad.select(SHOWN), quarantine([2], [[reason]], [KEY_2]))


def test_without_widths_a_missing_last_modified_date_is_taken_for_a_short_row():
    _, bad = split(batch([row(last_modified_date=None)]))
    reason = "row ends early or lacks its last field 'last_modified_date' (header has 297 fields)"
    assert_frame_equal(bad.select(SHOWN), quarantine([1], [[reason]], [KEY_1]))


def test_with_widths_a_missing_last_modified_date_is_only_a_missing_value():
    no_wrong_widths = pl.DataFrame(schema={ROW: pl.Int64, "fields": pl.UInt32})
    good, bad = split(batch([row(last_modified_date=None)]), widths=no_wrong_widths)
    assert (good[ROW].to_list(), good["last_modified_date"].to_list(), bad.is_empty()) == ([1], [None], True)


@pytest.mark.parametrize("columns", [CURRENT, LEGACY], ids=["current", "legacy_2018"])
def test_rows_with_a_wrong_field_count_are_quarantined_whatever_the_layout(columns):
    n, last = len(columns), columns[-1]
    short = row(piid="HSCETC15C00002", **{last: None})  # the reader pads a short row with nulls
    raw = batch([row(fiscal_year="2018"), short, row(piid="HSCETC15C00003", fiscal_year="2018")], columns)
    widths = pl.DataFrame({ROW: [2, 3], "fields": pl.Series([n - 1, n + 1], dtype=pl.UInt32)})  # 3: surplus empty field
    good, bad = split(raw, columns, widths=widths)
    assert good[ROW].to_list() == [1]
    reasons = [[f"row has {n - 1} field(s), fewer than the header's {n}"],
               [f"row has {n + 1} fields, more than the header's {n}"]]
    assert_frame_equal(bad.select(SHOWN), quarantine([2, 3], reasons, [KEY_2, "7012_-NONE-_HSCETC15C00003_0_-NONE-_0"]))


def test_lineage_columns_follow_valid_and_quarantined_rows():
    columns = [*CURRENT, *LINEAGE]
    problem = dict(source_problem="entry has no award ID", source_raw="<entry/>")
    raw = batch([row(lineage_file="https://fpds/p1", lineage_row="7"),
                 row(piid="HSCETC15C00002", lineage_file="https://fpds/p1", lineage_row="8", **problem)], columns)
    good, bad = split(raw, columns)
    expected = pl.DataFrame({ROW: pl.Series([1], dtype=pl.UInt32), KEY: [KEY_1], "lineage_file": ["https://fpds/p1"],
                             "lineage_row": [7]})
    assert_frame_equal(good.select(expected.columns), expected)
    lineage = (["https://fpds/p1"], [8])
    assert_frame_equal(bad.select(SHOWN), quarantine([2], [["entry has no award ID"]], [KEY_2], lineage))


DELTA_COLUMNS = [*DELTA, *CURRENT]


def deletion(flag: str = "D", last_modified: str = "2024-05-01") -> dict[str, str]:
    """A deletion record as upstream writes it: key columns only, the key's agency in agency_id."""
    return {"correction_delete_ind": flag, "agency_id": "7012", "award_id_piid": "HSCETC15C00009",
            "modification_number": "0", "transaction_number": "0", "last_modified_date": last_modified}


def deletions_frame(stamps: list[datetime | None]) -> pl.DataFrame:
    """The expected deletion records of ``deletion()`` rows numbered from 1."""
    n = len(stamps)
    return pl.DataFrame(
        {KEY: ["7012_-NONE-_HSCETC15C00009_0_-NONE-_0"] * n, ROW: range(1, n + 1), "last_modified_date": stamps,
         "lineage_file": [None] * n, "lineage_row": [None] * n},
        schema={KEY: pl.String, ROW: pl.Int64, "last_modified_date": pl.Datetime("us"), "lineage_file": pl.String,
                "lineage_row": pl.Int64},
    )


def test_a_delta_D_row_becomes_a_deletion_record_and_blank_and_C_rows_load():
    loads = [row(correction_delete_ind=""), row(piid="HSCETC15C00002", correction_delete_ind="C")]
    raw = batch([deletion(), *loads], DELTA_COLUMNS)
    rest, deletions = split_deletions(raw, detect(DELTA_COLUMNS))
    assert_frame_equal(deletions, deletions_frame([datetime(2024, 5, 1)]))  # date-only: midnight
    assert_frame_equal(rest, raw.filter(pl.col(ROW) > 1))
    good, bad = split(rest, DELTA_COLUMNS)
    assert (good.select(ROW, KEY).rows(), bad.is_empty()) == ([(2, KEY_1), (3, KEY_2)], True)


@pytest.mark.parametrize(("flag", "stamp", "expected"), [
    ("D", "2024-05-01", datetime(2024, 5, 1)),
    (" d ", "2024-05-01 10:11:12.345", datetime(2024, 5, 1, 10, 11, 12)),  # fractions dropped
    ("D", "May 1, 2024", None),
])
def test_deletion_dates_are_read_as_a_timestamp_or_a_date_at_midnight(flag, stamp, expected):
    _, deletions = split_deletions(batch([deletion(flag, stamp)], DELTA_COLUMNS), detect(DELTA_COLUMNS))
    assert_frame_equal(deletions, deletions_frame([expected]))


def test_a_delta_batch_without_D_rows_is_left_whole():
    raw = batch([row(correction_delete_ind="C"), row(correction_delete_ind=None)], DELTA_COLUMNS)
    rest, deletions = split_deletions(raw, detect(DELTA_COLUMNS))
    assert_frame_equal(rest, raw)
    assert deletions.is_empty()


def test_reason_kinds_counts_reasons_without_the_values_they_show():
    amount, day = f"federal_action_obligation: {AMOUNT}", "action_date: not a real calendar date"
    bad = pl.DataFrame({REASONS: [[f"{amount} (got '1,000')", f"{day} (got '2018-02-30')"], [f"{amount} (got 'x')"]]})
    assert reason_kinds(bad) == Counter({amount: 2, day: 1})
