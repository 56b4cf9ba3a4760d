"""Column layouts of USAspending contract-transaction files.

The current layout (297 columns, unchanged since early 2024) is listed in
``columns.csv`` beside this module with each column's kind. Every header the
download has had since 2017 is recorded in ``layout_history.csv`` (one row per
version: the names it added and removed against the version before), taken from
the history of usaspending-api ``usaspending_api/download/v2/download_column_historical_lookups.py``
(before 2017-10-18, ``download_column_lookups.py``). ``detect`` names a file's
version by its set of names and maps its old names onto today's with the renames
made since that version (``RENAMES_SINCE``); columns a layout lacks become null,
and the unique keys are derived when absent. ``LEGACY_2018`` rebuilds the mid-2018
layout (version 8) by undoing, newest first, the changes made since.
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


# Renames of the download's columns, by the version that made them (usaspending-api
# download_column_historical_lookups.py history): old name -> the name it has had since.
# A file of version v takes every rename of the versions after v.
RENAMES_SINCE: dict[int, dict[str, str]] = {
    4: {"recipient_foreign_state_name": "recipient_state_name"},  # v2's name for legal_entity_state_descrip
    7: {  # DAIMS v1.2 renames of the FPDS fields (walsh_healey_act -> materials_supplies_article ...)
        "walsh_healey_act_code": "materials_supplies_articles_equipment_code",
        "walsh_healey_act": "materials_supplies_articles_equipment",
        "service_contract_act_code": "labor_standards_code",
        "service_contract_act": "labor_standards",
        "davis_bacon_act_code": "construction_wage_rate_requirements_code",
        "davis_bacon_act": "construction_wage_rate_requirements",
    },
    8: {  # typo spaces removed
        "small_business_competitiveness_demonstration _program": "small_business_competitiveness_demonstration_program",
        "historically_underutilized_business_zone _hubzone_firm": "historically_underutilized_business_zone_hubzone_firm",
    },
    15: {  # same FPDS field (commercial_item_test_progr), renamed
        "commercial_item_test_program_code": "simplified_procedures_for_certain_commercial_items_code",
        "commercial_item_test_program": "simplified_procedures_for_certain_commercial_items",
    },
    17: {"parent_award_id": "parent_award_id_piid"},
    18: {
        "gfe_gfp": "government_furnished_property",
        "gfe_gfp_code": "government_furnished_property_code",
        "alaskan_native_owned_corporation_or_firm": "alaskan_native_corporation_owned_firm",
        "native_hawaiian_owned_business": "native_hawaiian_organization_owned_firm",
        "tribally_owned_business": "tribally_owned_firm",
        "foreign_owned_and_located": "foreign_owned",
        "receives_grants": "receives_financial_assistance",
        "receives_contracts_and_grants": "receives_contracts_and_financial_assistance",
    },
    22: {"award_description": "transaction_description"},
    23: {  # the COVID-19 columns of 2020-07 .. 2023-03: funded_by -> from
        "outlayed_amount_funded_by_COVID-19_supplementals_for_overall_award": "outlayed_amount_from_COVID-19_supplementals_for_overall_award",
        "obligated_amount_funded_by_COVID-19_supplementals_for_overall_award": "obligated_amount_from_COVID-19_supplementals_for_overall_award",
    },
    27: {  # bare district codes until 2023-07; transforms.congressional_districts writes them as STATE-CD
        "recipient_congressional_district": "prime_award_transaction_recipient_cd_original",
        "primary_place_of_performance_congressional_district": "prime_award_transaction_place_of_performance_cd_original",
    },
}
# Version 2 (2017-10-18 .. 10-26) wrote recipient_parent_name from the parent DUNS and
# recipient_parent_duns from the parent name (each other's source field; fixed in version 3).
SWAPPED = {2: {"recipient_parent_name": "recipient_parent_duns", "recipient_parent_duns": "recipient_parent_name"}}

# old name -> current name, every version (for headers of no known version, and for tests)
RENAMES: dict[str, str] = {old: new for renames in RENAMES_SINCE.values() for old, new in renames.items()}

# Columns of old layouts with no successor: tolerated, not loaded. change_in_current/potential_award_amount
# (versions 3-5) were an award-level derived adjustment (drv_*_amount_adjustment, always NULL) that version 6
# replaced by base_and_exercised_options_value / base_and_all_options_value at the same places: another
# quantity, so not renamed onto them.
RETIRED = ("annual_revenue", "number_of_employees", "change_in_current_award_amount", "change_in_potential_award_amount",
           "recipient_address_line_3", "primary_place_of_performance_location_code")

# Columns some files add that the pipeline derives itself (the 2018 "follow the money" files end with fiscal_year).
DERIVED = ("fiscal_year",)

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
    version: int | None = None  # the download version whose names the header has (layout_history.csv), if any


def _names(text: str) -> set[str]:
    return set(text.split("|")) if text else set()


@cache
def versions() -> dict[int, frozenset[str]]:
    """Every version of the download's header as a set of names, oldest first, rebuilt backwards
    from the current layout with ``layout_history.csv`` (each version's added and removed names)."""
    with open(Path(__file__).with_name("layout_history.csv"), newline="") as f:
        history = list(csv.DictReader(f))
    names, found = set(current_columns()), {}
    for entry in reversed(history):
        found[int(entry["version"])] = frozenset(names)
        names = (names - _names(entry["added"])) | _names(entry["removed"])
    return dict(sorted(found.items()))


@cache
def version_dates() -> dict[int, tuple[str, str]]:
    """Version -> (first day, last day) it was produced (master merge dates upstream)."""
    with open(Path(__file__).with_name("layout_history.csv"), newline="") as f:
        return {int(e["version"]): (e["first_date"], e["last_date"]) for e in csv.DictReader(f)}


def renames_since(version: int) -> dict[str, str]:
    """Old name -> current name for a file of ``version``: every rename made after it (and its own swaps)."""
    mapping = dict(SWAPPED.get(version, {}))
    for made_in, renames in sorted(RENAMES_SINCE.items()):
        if made_in > version:
            mapping |= renames
    return mapping


def detect(header: list[str]) -> Layout:
    """Classify a header; never raises (the caller decides what is fatal)."""
    current = current_columns()
    cleaned = [h.strip().lstrip("\ufeff") for h in header]
    seen: set[str] = set()
    duplicated = tuple(dict.fromkeys(h for h in cleaned if h in seen or seen.add(h)))
    core = frozenset(h for h in cleaned if h not in (*DELTA, *LINEAGE, *DERIVED))
    version = next((v for v, names in versions().items() if names == core), None)
    if version is not None:
        mapping = renames_since(version)
        renamed = {h: mapping[h] for h in cleaned if h in mapping}
    else:  # a custom selection of columns: any old name is renamed unless its new name is there too
        renamed = {h: RENAMES[h] for h in cleaned if h in RENAMES and RENAMES[h] not in seen}
    as_current = {renamed.get(h, h) for h in cleaned}
    known = set(current) | set(renamed) | set(RETIRED) | set(DELTA) | set(LINEAGE) | set(DERIVED)
    extra = tuple(h for h in cleaned if h not in known)
    retired = tuple(h for h in cleaned if h in RETIRED)
    missing = tuple(c for c in current if c not in as_current)
    missing_required = tuple(c for c in REQUIRED if c not in as_current)
    if not missing and not renamed:
        name = "current"
    elif version is not None or renamed or "recipient_duns" in as_current and "recipient_uei" not in as_current:
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
        version=version,
    )


def _without(cols: list[str], *names: str) -> list[str]:
    return [c for c in cols if c not in names]


@cache
def legacy_2018_columns() -> tuple[str, ...]:
    """The mid-2018 download layout (version 8, 258 columns), rebuilt from the current one in order."""
    cols = list(current_columns())
    undo = {new: old for old, new in renames_since(8).items()}
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
