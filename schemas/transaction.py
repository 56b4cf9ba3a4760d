"""pandera models of a contract transaction.

``text_schema`` checks the values of a file as text (after trimming): every
failure becomes a quarantine reason for that row. ``canonical_schema`` checks
the typed rows that go to the warehouse. Both validate collected polars
DataFrames: on a LazyFrame pandera would check names and types only.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import pandera.polars as pa
import polars as pl

from schemas.layouts import current_columns

EARLIEST_ACTION = date(1979, 10, 1)  # FPDS history starts in FY1980

PIID = r"^[A-Z0-9][A-Z0-9\-.]{0,49}$"
SUBTIER = r"^[0-9A-Z]{4}$"
TOPTIER = r"^(\d{3}|[0-9A-Z]{4})$"
PATTERNS: dict[str, tuple[str, str]] = {
    # column: (regex, what it must be, in words)
    "contract_transaction_unique_key": (r"^[0-9A-Z\-]+(_[0-9A-Z\-.]+){5}$", "6 key parts joined by _"),
    "contract_award_unique_key": (r"^CONT_(AWD|IDV)_[0-9A-Z\-._]+$", "CONT_AWD_... or CONT_IDV_..."),
    "award_id_piid": (PIID, "a PIID (letters, digits, '-', up to 50)"),
    "parent_award_id_piid": (PIID, "a PIID (letters, digits, '-', up to 50)"),
    "modification_number": (r"^[A-Z0-9\-.]{1,25}$", "a modification number"),
    "parent_award_modification_number": (r"^[A-Z0-9\-.]{1,25}$", "a modification number"),
    "transaction_number": (r"^\d{1,6}$", "a whole number"),
    "parent_award_agency_id": (SUBTIER, "a 4-character agency code"),
    "awarding_sub_agency_code": (SUBTIER, "a 4-character agency code"),
    "funding_sub_agency_code": (SUBTIER, "a 4-character agency code"),
    "awarding_agency_code": (TOPTIER, "a 3-digit (CGAC) or 4-character (FREC) agency code"),
    "funding_agency_code": (TOPTIER, "a 3-digit (CGAC) or 4-character (FREC) agency code"),
    "recipient_uei": (r"^[A-Z0-9]{12}$", "a UEI of 12 letters or digits"),
    "recipient_parent_uei": (r"^[A-Z0-9]{12}$", "a UEI of 12 letters or digits"),
    "recipient_duns": (r"^\d{9}$", "a DUNS of 9 digits"),
    "recipient_parent_duns": (r"^\d{9}$", "a DUNS of 9 digits"),
    "product_or_service_code": (r"^[A-Z0-9]{4}$", "a 4-character PSC"),
    "naics_code": (r"^\d{2,6}$", "a NAICS code of 2 to 6 digits"),
    "award_or_idv_flag": (r"^(AWARD|IDV)$", "AWARD or IDV"),
    "award_type_code": (r"^[A-D]$", "one of A, B, C, D"),
    "idv_type_code": (r"^[A-E]$", "one of A, B, C, D, E"),
    "action_type_code": (r"^[A-Z]$", "one letter (reason for modification)"),
    "action_date_fiscal_year": (r"^\d{4}$", "a 4-digit year"),
}
KIND_PATTERNS: dict[str, tuple[str, str]] = {
    "money": (r"^-?\d{1,36}(\.\d{1,2})?$", "an amount like 1234.56 (no commas, at most 2 decimals)"),
    "date": (r"^\d{4}-\d{2}-\d{2}( 00:00:00(\.0+)?)?$", "an ISO date YYYY-MM-DD"),
    "timestamp": (
        r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
        "an ISO timestamp YYYY-MM-DD HH:MM:SS",
    ),
}
BOOLEAN_TEXT = ("t", "f", "true", "false", "T", "F", "TRUE", "FALSE", "True", "False")
REQUIRED = ("award_id_piid", "modification_number", "awarding_sub_agency_code", "action_date")


def _real_date(data: pa.PolarsData) -> pl.LazyFrame:
    """A date of the right shape that is not on the calendar (2018-02-30); other shapes fail the pattern check."""
    value = pl.col(data.key)
    parsed = value.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    well_shaped = value.str.contains(KIND_PATTERNS["date"][0])
    return data.lazyframe.select(value.is_null() | ~well_shaped | parsed.is_not_null())


def _plausible_action_date(data: pa.PolarsData) -> pl.LazyFrame:
    value = pl.col(data.key)
    parsed = value.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    latest = date.today() + timedelta(days=366)
    return data.lazyframe.select(value.is_null() | parsed.is_null() | parsed.is_between(EARLIEST_ACTION, latest))


def _checks(name: str, kind: str) -> list[pa.Check]:
    checks = []
    if name in PATTERNS or kind in KIND_PATTERNS:
        regex, words = PATTERNS.get(name) or KIND_PATTERNS[kind]
        checks.append(pa.Check.str_matches(regex, error=f"not {words}"))
    if kind == "bool":
        checks.append(pa.Check.isin(BOOLEAN_TEXT, error="not t, f, true or false"))
    if kind == "date":
        checks.append(pa.Check(_real_date, error="not a real calendar date"))
    if name == "action_date":
        checks.append(pa.Check(_plausible_action_date, error=f"not between {EARLIEST_ACTION} and next year"))
    return checks


@cache
def text_schema() -> pa.DataFrameSchema:
    """Values of a file as text: formats of identifiers, amounts, dates, flags and codes."""
    columns = {
        name: pa.Column(pl.String, _checks(name, kind), nullable=name not in REQUIRED)
        for name, kind in current_columns().items()
    }
    return pa.DataFrameSchema(columns, name="contract transaction (text)", strict=False)


@cache
def canonical_schema() -> pa.DataFrameSchema:
    """Typed transactions as loaded: types, required keys, fiscal year."""
    dtypes = {"money": pl.Decimal(38, 2), "date": pl.Date, "timestamp": pl.Datetime("us"), "bool": pl.Boolean}
    columns = {
        name: pa.Column(dtypes.get(kind, pl.Int32 if kind == "int" else pl.String), nullable=True)
        for name, kind in current_columns().items()
    }
    for key in ("contract_transaction_unique_key", "contract_award_unique_key", "action_date"):
        columns[key] = pa.Column(columns[key].dtype, nullable=False)
    columns["fiscal_year"] = pa.Column(pl.Int32, pa.Check.in_range(1980, 2100), nullable=False)
    columns["row_hash"] = pa.Column(pl.Int64, nullable=False)
    return pa.DataFrameSchema(columns, name="contract transaction", strict=False)
