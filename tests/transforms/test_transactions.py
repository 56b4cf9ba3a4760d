"""Pure transforms on small literal frames."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from awardwatch.schemas.layouts import current_columns
from awardwatch.transforms import transactions as T


def frame(**values) -> pl.LazyFrame:
    """Canonical text columns, all null but the given ones (lists of equal length)."""
    n = len(next(iter(values.values())))
    return pl.LazyFrame({c: pl.Series(c, values.get(c, [None] * n), dtype=pl.String) for c in current_columns()})


def test_normalise_trims_blanks_to_null_and_upper_cases_identifiers():
    lf = frame(recipient_name=["  PALANTIR USG INC. ", "   "], award_id_piid=["hscetc15c00001", None], recipient_duns=["012345678", "001"])
    out = T.normalise_text(lf).select("recipient_name", "award_id_piid", "recipient_duns").collect()
    assert_frame_equal(out, pl.DataFrame({"recipient_name": ["PALANTIR USG INC.", None], "award_id_piid": ["HSCETC15C00001", None],
                                          "recipient_duns": ["012345678", "001"]}))


def test_needs_trim_flags_only_columns_with_edge_white_space():
    flags = frame(recipient_name=[" X", "Y"], naics_code=["541512", "541519"]).select(T.needs_trim()).collect().row(0, named=True)
    assert [c for c, f in flags.items() if f] == ["recipient_name"]


def test_an_empty_string_is_flagged_and_becomes_null():
    lf = frame(recipient_name=["", "Y"], naics_code=["541512", "541519"])
    flags = lf.select(T.needs_trim()).collect().row(0, named=True)
    assert [c for c, f in flags.items() if f] == ["recipient_name"]
    assert T.normalise_text(lf, ["recipient_name"]).select("recipient_name").collect().to_series().to_list() == [None, "Y"]


def test_keys_for_an_order_under_an_idv_and_for_an_idv():
    lf = frame(award_id_piid=["70CMSD19F00000001", "HSHQDC13D00024"], modification_number=["P00002", "0"],
               transaction_number=["0", None], awarding_sub_agency_code=["7012", "7001"], parent_award_agency_id=["4732", None],
               parent_award_id_piid=["47QTCH18D0068", None], award_or_idv_flag=["AWARD", "IDV"])
    out = T.derive_keys(lf).select("contract_transaction_unique_key", "contract_award_unique_key").collect()
    assert out.rows() == [
        ("7012_4732_70CMSD19F00000001_P00002_47QTCH18D0068_0", "CONT_AWD_70CMSD19F00000001_7012_47QTCH18D0068_4732"),
        ("7001_-NONE-_HSHQDC13D00024_0_-NONE-_-NONE-", "CONT_IDV_HSHQDC13D00024_7001"),
    ]


def test_keys_present_in_the_file_are_kept():
    lf = frame(contract_transaction_unique_key=["X_Y"], contract_award_unique_key=["CONT_AWD_Z"], award_id_piid=["A"],
               modification_number=["0"], awarding_sub_agency_code=["7012"])
    assert T.derive_keys(lf).select("contract_transaction_unique_key", "contract_award_unique_key").collect().row(0) == ("X_Y", "CONT_AWD_Z")


def test_types_money_exact_dates_booleans_and_fiscal_year():
    lf = frame(federal_action_obligation=["-1234.56", "0.1"], action_date=["2018-09-30", "2018-10-01"],
               small_business_competitiveness_demonstration_program=["t", "FALSE"], last_modified_date=["2018-10-02 08:09:10.5", "2018-10-02"])
    out = T.typed(lf).pipe(T.with_fiscal_year).select("federal_action_obligation", "action_date", "fiscal_year",
                                                      "small_business_competitiveness_demonstration_program").collect()
    assert out.rows() == [(Decimal("-1234.56"), date(2018, 9, 30), 2018, True), (Decimal("0.10"), date(2018, 10, 1), 2019, False)]
    assert out.schema["federal_action_obligation"] == pl.Decimal(38, 2)


def test_row_hash_changes_with_content_only():
    a = frame(award_id_piid=["A"], recipient_name=["X"]).pipe(T.with_row_hash).collect()["row_hash"][0]
    b = frame(award_id_piid=["A"], recipient_name=["X"]).pipe(T.with_row_hash).collect()["row_hash"][0]
    c = frame(award_id_piid=["A"], recipient_name=["Y"]).pipe(T.with_row_hash).collect()["row_hash"][0]
    assert a == b != c


def test_canonical_types_are_checked_against_the_schema():
    import pandera.errors

    from awardwatch.schemas.transaction import check_canonical

    typed = T.canonical(frame(award_id_piid=[]))
    # distinct input schemas, as the check runs once per input schema in a process
    check_canonical(typed, pl.Schema({"test_inputs_ok": pl.String}))
    wrong = typed.with_columns(pl.col("federal_action_obligation").cast(pl.String))
    with pytest.raises(pandera.errors.SchemaError, match="federal_action_obligation"):
        check_canonical(wrong, pl.Schema({"test_inputs_wrong": pl.String}))
