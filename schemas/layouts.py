"""Column layouts of USAspending contract-transaction files.

The current layout (297 columns, unchanged since early 2024) is listed in
``columns.csv`` beside this module with each column's kind. Older downloads use
earlier layouts; ``LEGACY_2018`` rebuilds the mid-2018 layout by undoing, newest
first, the changes USAspending made since (award-sources.md, section 2.2).

Every layout maps onto the current names through ``RENAMES``; columns a layout
lacks become null, and the unique keys are derived when absent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

KINDS = ("text", "bool", "money", "date", "timestamp", "int")


@cache
def current_columns() -> dict[str, str]:
    """Current layout: column name -> kind (text, bool, money, date, timestamp, int)."""
    with open(Path(__file__).with_name("columns.csv"), newline="") as f:
        return {row["name"]: row["kind"] for row in csv.DictReader(f)}


# old name -> current name (USAspending renamed these in 2019-2023)
RENAMES: dict[str, str] = {
    "parent_award_id": "parent_award_id_piid",
    "award_description": "transaction_description",
    "gfe_gfp": "government_furnished_property",
    "gfe_gfp_code": "government_furnished_property_code",
    "alaskan_native_owned_corporation_or_firm": "alaskan_native_corporation_owned_firm",
    "native_hawaiian_owned_business": "native_hawaiian_organization_owned_firm",
    "tribally_owned_business": "tribally_owned_firm",
    "foreign_owned_and_located": "foreign_owned",
    "receives_grants": "receives_financial_assistance",
    "receives_contracts_and_grants": "receives_contracts_and_financial_assistance",
    "recipient_congressional_district": "prime_award_transaction_recipient_cd_original",
    "primary_place_of_performance_congressional_district": "prime_award_transaction_place_of_performance_cd_original",
}

# Columns of old layouts that the current layout dropped: tolerated, not loaded.
RETIRED = ("annual_revenue", "number_of_employees", "commercial_item_test_program", "commercial_item_test_program_code")

# Award Data Archive delta files put these before the usual columns (correction_delete_ind:
# blank new, C correction, D deletion; agency_id: the FPDS agency id part of the key).
DELTA = ("correction_delete_ind", "agency_id")

# Files a source writes itself (FPDS pages converted to rows) may carry per-row lineage
# (the page URL and the entry's position, overriding file and row) and a problem the
# source found (the row is quarantined with it; the raw text is kept in source_raw).
LINEAGE = ("lineage_file", "lineage_row", "source_problem", "source_raw")

# A file must carry these (under a current or old name) to be read at all.
REQUIRED = (
    "award_id_piid",
    "modification_number",
    "transaction_number",
    "parent_award_agency_id",
    "awarding_sub_agency_code",
    "action_date",
    "federal_action_obligation",
)


@dataclass(frozen=True)
class Layout:
    """What a file's header says about it."""

    name: str  # "current", "legacy" or "custom"
    columns: tuple[str, ...]  # header as written, in order
    renamed: dict[str, str]  # header name -> current name, for old names
    missing: tuple[str, ...]  # current columns the file lacks (become null)
    extra: tuple[str, ...]  # header columns not in any known layout (ignored, recorded)
    retired: tuple[str, ...]  # columns of old layouts the current one dropped (ignored)
    missing_required: tuple[str, ...]
    duplicated: tuple[str, ...]
    has_keys: bool  # carries contract_transaction_unique_key
    is_delta: bool = False  # an Award Data Archive delta file (rows may be deletions)
    has_lineage: bool = False  # rows carry lineage_file / lineage_row / source_problem


def detect(header: list[str]) -> Layout:
    """Classify a header; never raises (the caller decides what is fatal)."""
    current = current_columns()
    cleaned = [h.strip().lstrip("\ufeff") for h in header]
    seen: set[str] = set()
    duplicated = tuple(dict.fromkeys(h for h in cleaned if h in seen or seen.add(h)))
    renamed = {h: RENAMES[h] for h in cleaned if h in RENAMES and RENAMES[h] not in seen}
    as_current = {renamed.get(h, h) for h in cleaned}
    known = set(current) | set(renamed) | set(RETIRED) | set(DELTA) | set(LINEAGE)
    extra = tuple(h for h in cleaned if h not in known)
    retired = tuple(h for h in cleaned if h in RETIRED)
    missing = tuple(c for c in current if c not in as_current)
    missing_required = tuple(c for c in REQUIRED if c not in as_current)
    if not missing and not renamed:
        name = "current"
    elif renamed or "recipient_duns" in as_current and "recipient_uei" not in as_current:
        name = "legacy"
    else:
        name = "custom"
    return Layout(
        name=name,
        columns=tuple(cleaned),
        renamed=renamed,
        missing=missing,
        extra=extra,
        retired=retired,
        missing_required=missing_required,
        duplicated=duplicated,
        has_keys="contract_transaction_unique_key" in as_current,
        is_delta="correction_delete_ind" in as_current,
        has_lineage="lineage_file" in as_current,
    )


def _without(cols: list[str], *names: str) -> list[str]:
    return [c for c in cols if c not in names]


@cache
def legacy_2018_columns() -> tuple[str, ...]:
    """The mid-2018 download layout, rebuilt from the current one (about 258 columns)."""
    cols = list(current_columns())
    undo = {new: old for old, new in RENAMES.items()}
    # 2023-06 -> 2024-01 and 2023-01 -> 2023-06: derived-location and IIJA columns
    cols = _without(
        cols,
        "initial_report_date",
        "prime_award_transaction_recipient_cd_current",
        "prime_award_transaction_place_of_performance_cd_current",
        "outlayed_amount_from_IIJA_supplemental_for_overall_award",
        "obligated_amount_from_IIJA_supplemental_for_overall_award",
        "total_outlayed_amount_for_overall_award",
        "recipient_name_raw",
        "recipient_parent_name_raw",
        "prime_award_transaction_recipient_county_fips_code",
        "prime_award_transaction_recipient_state_fips_code",
        "prime_award_transaction_place_of_performance_county_fips_code",
        "prime_award_transaction_place_of_performance_state_fips_code",
    )
    # 2022-06 -> 2023-01: one description column
    cols = _without(cols, "prime_award_base_transaction_description")
    # 2021-06 -> 2022-01: UEI columns
    cols = _without(cols, "recipient_uei", "recipient_parent_uei")
    # 2020-01 -> 2020-10: COVID and File C columns
    cols = _without(
        cols,
        "disaster_emergency_fund_codes_for_overall_award",
        "outlayed_amount_from_COVID-19_supplementals_for_overall_award",
        "obligated_amount_from_COVID-19_supplementals_for_overall_award",
        "object_classes_funding_this_award",
        "program_activities_funding_this_award",
        "recipient_county_name",
    )
    # 2019-06 -> 2020-01: keys, fiscal year, permalink, officers
    cols = _without(
        cols,
        "contract_transaction_unique_key",
        "contract_award_unique_key",
        "action_date_fiscal_year",
        "solicitation_date",
        "usaspending_permalink",
        "treasury_accounts_funding_this_award",
        "federal_accounts_funding_this_award",
        "simplified_procedures_for_certain_commercial_items",
        "simplified_procedures_for_certain_commercial_items_code",
        *[f"highly_compensated_officer_{i}_{part}" for i in range(1, 6) for part in ("name", "amount")],
    )
    # 2018-07 -> 2019-06
    cols = _without(cols, "total_dollars_obligated", "inherently_governmental_functions", "inherently_governmental_functions_description")
    cols = [undo.get(c, c) for c in cols]
    at = cols.index("small_business_competitiveness_demonstration_program") + 1
    cols[at:at] = ["commercial_item_test_program_code", "commercial_item_test_program"]
    at = cols.index("recipient_fax_number") + 1
    cols[at:at] = ["annual_revenue", "number_of_employees"]
    return tuple(cols)
