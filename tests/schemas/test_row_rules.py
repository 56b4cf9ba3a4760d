"""Rows that cannot be loaded whole are quarantined, and keys and districts take one form whatever the layout
(issue 18 points 2, 3, 6, 11; issue 14 points 7, 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.schemas.layouts import legacy_2018_columns
from tests.factories import row, write_csv

LEGACY_2018 = [*legacy_2018_columns(), "fiscal_year"]  # the 2018 files end with fiscal_year (259 fields)


def load(path: Path, warehouse: Path):
    return ingest([path], warehouse=warehouse, max_rejected_share=1)


@pytest.mark.parametrize("keep", [150, 200, 258])
def test_short_row_of_the_2018_layout_is_quarantined(keep, tmp_path, warehouse, sql):
    """The 2018 layout ends with fiscal_year, not last_modified_date: a cut row used to load with NULLs."""
    plain = dict(transaction_description="PLAIN", fiscal_year="2018")
    f = write_csv(tmp_path / "a.csv", [row(**plain), row(piid="HSCETC15C00002", **plain)], columns=LEGACY_2018)
    lines = f.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:keep])
    f.write_text("\n".join(lines) + "\n")
    result = load(f, warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    (row_no, reasons), = sql("SELECT source_row, reasons FROM quarantine")
    assert (row_no, reasons) == (2, [f"row has {keep} field(s), fewer than the header's 259"])


def test_short_row_never_overwrites_a_stored_row(tmp_path, warehouse, sql):
    good = write_csv(tmp_path / "a.csv", [row(fiscal_year="2018", transaction_description="PLAIN")], columns=LEGACY_2018)
    load(good, warehouse)
    cut = tmp_path / "b.csv"
    header, line = good.read_text().splitlines()
    cut.write_text(header + "\n" + ",".join(line.split(",")[:180]).replace("PALANTIR USG INC.", "CUT") + "\n")
    result = load(cut, warehouse)
    assert (result.counts.updated, result.counts.quarantined) == (0, 1)
    assert sql("SELECT recipient_name FROM transactions") == [("PALANTIR USG INC.",)]


def test_multi_line_quoted_values_are_one_row(tmp_path, warehouse, sql):
    f = write_csv(tmp_path / "a.csv", [row(transaction_description='LINE ONE,\n"TWO", AND\nTHREE'), row(piid="HSCETC15C00002")])
    result = load(f, warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (2, 0)


def test_undated_row_never_replaces_a_dated_stored_row(tmp_path, warehouse, sql):
    """"An older version never replaces a newer one" must hold when the incoming date is missing
    (the 2018 layout, which ends with fiscal_year, loads such rows)."""
    load(write_csv(tmp_path / "a.csv", [row(recipient_name="DATED", fiscal_year="2018")], columns=LEGACY_2018), warehouse)
    undated = row(recipient_name="UNDATED", last_modified_date="", fiscal_year="2018")
    result = load(write_csv(tmp_path / "b.csv", [undated], columns=LEGACY_2018), warehouse)
    assert (result.counts.updated, result.counts.unchanged) == (0, 1)
    assert sql("SELECT recipient_name, last_modified_date IS NOT NULL FROM transactions") == [("DATED", True)]


def test_dated_row_replaces_an_undated_stored_row(tmp_path, warehouse, sql):
    undated = row(recipient_name="UNDATED", last_modified_date="", fiscal_year="2018")
    load(write_csv(tmp_path / "a.csv", [undated], columns=LEGACY_2018), warehouse)
    result = load(write_csv(tmp_path / "b.csv", [row(recipient_name="DATED", fiscal_year="2018")], columns=LEGACY_2018), warehouse)
    assert result.counts.updated == 1
    assert sql("SELECT recipient_name FROM transactions") == [("DATED",)]


@pytest.mark.parametrize("amount", ["١٢٣", "١٢٣.٤٥", "۱۲۳", "１２３", "12３.00"])
def test_money_takes_ascii_digits_only(amount, tmp_path, warehouse, sql):
    """Other scripts' digits matched \\d and then cast to NULL."""
    result = load(write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002", amount=amount)]), warehouse)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    (reasons,), = sql("SELECT reasons FROM quarantine")
    assert reasons == [f"federal_action_obligation: not an amount like 1234.56 (ASCII digits, no commas, at most 15 digits "
                       f"before the point and 2 after) (got '{amount}')"]


def test_amounts_that_could_overflow_a_sum_are_quarantined(tmp_path, warehouse, sql):
    """Two 36-digit amounts in one award overflowed DECIMAL(38,2) in the award roll-up (HUGEINT addition)."""
    huge = "9" * 36 + ".99"
    rows = [row(amount=huge), row(mod="P00001", amount=huge), row(mod="P00002", amount="999999999999999.99"),
            row(mod="P00003", amount="-999999999999999.99"), row(mod="P00004", current_total_value_of_award="1" + "0" * 15)]
    result = load(write_csv(tmp_path / "a.csv", rows), warehouse)
    assert (result.status, result.counts.inserted, result.counts.quarantined) == ("succeeded", 2, 3)
    reasons = sorted(r for (rs,) in sql("SELECT reasons FROM quarantine") for r in rs)
    assert [r.split(":")[0] for r in reasons] == ["current_total_value_of_award", "federal_action_obligation", "federal_action_obligation"]
    assert sql("SELECT total_obligated_amount::VARCHAR FROM awards") == [("0.00",)]


def test_dod_legacy_and_current_files_of_the_same_actions_give_one_row_each(tmp_path, warehouse, sql):
    """The key's agency is the PIID's (FPDS awardID/awardContractID/agencyID, broker
    dataactcore/scripts/pipeline/pull_fpds_data.py calculate_remaining_fields): 9700 for every DoD
    component, while awarding_sub_agency_code is the contracting office's (Navy 1700, DLA 97AS)."""
    navy = dict(awarding_agency_code="097", awarding_agency_name="Department of Defense", awarding_sub_agency_code="1700",
                awarding_sub_agency_name="Department of the Navy", funding_agency_code="097", funding_sub_agency_code="1700")
    order = dict(navy, piid="N6830618F0001", parent_award_id_piid="N6830617A0090", parent_award_agency_id="9700")
    dla = dict(navy, awarding_sub_agency_code="97AS", funding_sub_agency_code="97AS", piid="SPE2DX16D1500",
               award_or_idv_flag="IDV", award_type_code="", idv_type_code="B")
    legacy = [row(**order), row(**dict(order, mod="P00001")), row(**dla)]
    current = [
        row(**order, contract_transaction_unique_key="9700_9700_N6830618F0001_0_N6830617A0090_0",
            contract_award_unique_key="CONT_AWD_N6830618F0001_9700_N6830617A0090_9700"),
        row(**dict(order, mod="P00001"), contract_transaction_unique_key="9700_9700_N6830618F0001_P00001_N6830617A0090_0",
            contract_award_unique_key="CONT_AWD_N6830618F0001_9700_N6830617A0090_9700"),
        row(**dla, contract_transaction_unique_key="9700_-NONE-_SPE2DX16D1500_0_-NONE-_-NONE-",
            contract_award_unique_key="CONT_IDV_SPE2DX16D1500_9700"),
    ]
    load(write_csv(tmp_path / "old.csv", legacy, layout="legacy"), warehouse)
    load(write_csv(tmp_path / "new.csv", current), warehouse)
    assert sql("SELECT count(*), count(DISTINCT contract_transaction_unique_key) FROM transactions") == [(3, 3)]
    assert sql("SELECT contract_award_unique_key, number_of_transactions FROM awards ORDER BY 1") == [
        ("CONT_AWD_N6830618F0001_9700_N6830617A0090_9700", 2), ("CONT_IDV_SPE2DX16D1500_9700", 1)]


def test_civilian_keys_keep_the_awarding_subtier(tmp_path, warehouse, sql):
    load(write_csv(tmp_path / "old.csv", [row()], layout="legacy"), warehouse)
    assert sql("SELECT contract_transaction_unique_key FROM transactions") == [("7012_-NONE-_HSCETC15C00001_0_-NONE-_0",)]


def test_bare_and_state_cd_district_codes_are_one_form(tmp_path, warehouse, sql):
    """Today's download writes STATE-CD (usaspending-api download_annotation_functions.py
    congressional_district_display_name); layouts before 2023-07 the bare FPDS code."""
    values = dict(recipient_state_code="VA", primary_place_of_performance_state_code="MD")
    legacy = [row(**values, prime_award_transaction_recipient_cd_original="8",
                  prime_award_transaction_place_of_performance_cd_original="05"),
              row(piid="HSCETC15C00002", prime_award_transaction_recipient_cd_original="00")]
    load(write_csv(tmp_path / "old.csv", legacy, layout="legacy"), warehouse)
    current = [row(**values, piid="HSCETC15C00003", prime_award_transaction_recipient_cd_original="VA-08",
                   prime_award_transaction_place_of_performance_cd_original="MD-05")]
    load(write_csv(tmp_path / "new.csv", current), warehouse)
    assert sql("SELECT prime_award_transaction_recipient_cd_original, prime_award_transaction_place_of_performance_cd_original "
               "FROM transactions ORDER BY award_id_piid") == [("VA-08", "MD-05"), ("00", None), ("VA-08", "MD-05")]
