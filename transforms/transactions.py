"""Pure polars steps from a file's text columns to canonical transactions.

Each function takes and returns a LazyFrame; none does I/O or collects. The
order in the pipeline is: ``to_current_layout`` -> ``normalise_text`` ->
(validation on text) -> ``derive_keys`` -> ``with_row_hash`` -> ``typed``
-> ``with_fiscal_year``.
"""

from __future__ import annotations

import polars as pl

from awardwatch.schemas.layouts import Layout, current_columns
from awardwatch.schemas.transaction import FALSE_TEXT, TRUE_TEXT

NONE = "-NONE-"
MONEY = pl.Decimal(38, 2)

# Identifiers and codes kept as upper-case text (leading zeros are never touched).
UPPER = (
    "contract_transaction_unique_key",
    "contract_award_unique_key",
    "award_id_piid",
    "modification_number",
    "parent_award_id_piid",
    "parent_award_modification_number",
    "parent_award_agency_id",
    "awarding_agency_code",
    "awarding_sub_agency_code",
    "awarding_office_code",
    "funding_agency_code",
    "funding_sub_agency_code",
    "funding_office_code",
    "recipient_uei",
    "recipient_parent_uei",
    "cage_code",
    "product_or_service_code",
    "award_or_idv_flag",
    "award_type_code",
    "idv_type_code",
    "action_type_code",
)

_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")

# Congressional district columns and the state code each is shown with. Today's download writes
# STATE-CD (VA-08) when the state code is there, else the bare code (usaspending-api
# download/helpers/download_annotation_functions.py ``congressional_district_display_name``); layouts
# before 2023-07 (download_column_historical_lookups.py) wrote the bare FPDS code (08) in
# recipient_/primary_place_of_performance_congressional_district.
DISTRICTS = {
    "prime_award_transaction_recipient_cd_original": "recipient_state_code",
    "prime_award_transaction_recipient_cd_current": "recipient_state_code",
    "prime_award_transaction_place_of_performance_cd_original": "primary_place_of_performance_state_code",
    "prime_award_transaction_place_of_performance_cd_current": "primary_place_of_performance_state_code",
}

# The key's agency is the FPDS agencyID of the award's own ID (awardID/awardContractID/agencyID; broker
# dataactcore/scripts/pipeline/pull_fpds_data.py ``calculate_remaining_fields``), which files of layouts
# before 2019-06 do not carry. It is the contracting office's subtier (awarding_sub_agency_code) except at
# Defense: every DoD component's PIID has agencyID 9700 (the broker's tests/unit/data/fpdsXML.txt: agencyID
# 9700 under contractingOfficeAgencyID 1700 Navy; usaspending-api awards/award_id.md: DLA (97AS) award
# CONT_AWD_H907_9700_SPE2DX16D1500_9700). DoD is toptier 097; its subtiers are 17xx, 21xx, 57xx and 97xx
# (dataactvalidator/config/agency_codes.csv), used when the toptier code is absent.
DOD_TOPTIER, DOD_KEY_AGENCY = "097", "9700"
DOD_SUBTIER = r"^(17|21|57|97)[0-9A-Z]{2}$"


def kinds() -> dict[str, str]:
    return current_columns()


def to_current_layout(lf: pl.LazyFrame, layout: Layout, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """Renames old column names, adds the columns the layout lacks as null text,
    drops unknown and retired ones, and orders columns as the current layout (then ``keep``)."""
    lf = lf.rename(layout.renamed)
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in layout.missing]
    return lf.with_columns(missing).select([*current_columns(), *keep])


def normalise_text(lf: pl.LazyFrame, trim: list[str] | None = None) -> pl.LazyFrame:
    """Trims text values, turns blanks into null and upper-cases identifiers. ``trim`` limits the
    trimming to the columns that need it (see ``needs_trim``); by default every column is trimmed."""
    cols = list(current_columns()) if trim is None else trim
    lf = lf.with_columns(pl.col(c).str.strip_chars() for c in cols)
    lf = lf.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in cols)
    return lf.with_columns(pl.col(c).str.to_uppercase() for c in UPPER).pipe(congressional_districts)


def congressional_districts(lf: pl.LazyFrame) -> pl.LazyFrame:
    """One form per district column, today's (see ``DISTRICTS``): a bare code of 1 or 2 digits becomes
    ``STATE-CD`` with the row's state code, 2 digits (as the FPDS reader writes it); without a state code
    it stays bare, as upstream writes it then. Other values are left as they are."""
    out = []
    for column, state in DISTRICTS.items():
        code = pl.col(column)
        digits = code.str.zfill(2)
        shown = pl.when(pl.col(state).is_not_null()).then(pl.concat_str([pl.col(state), pl.lit("-"), digits])).otherwise(digits)
        out.append(pl.when(code.str.contains(r"^[0-9]{1,2}$")).then(shown).otherwise(code).alias(column))
    return lf.with_columns(out)


def key_agency() -> pl.Expr:
    """The agency part of the unique keys, for rows that lack them (see ``DOD_TOPTIER``)."""
    subtier = pl.col("awarding_sub_agency_code")
    dod = (pl.col("awarding_agency_code") == DOD_TOPTIER).fill_null(subtier.str.contains(DOD_SUBTIER))
    return pl.when(dod).then(pl.lit(DOD_KEY_AGENCY)).otherwise(subtier)


def needs_trim() -> list[pl.Expr]:
    """One boolean per canonical column: is any value blank or edged with white space?
    (Trimming copies every value; most columns of a real file need none.) A value trims shorter exactly
    when it starts or ends with white space (``strip_chars`` and the regex ``\\s`` both mean Unicode
    White_Space); comparing lengths costs a quarter less than the regex ``^\\s|\\s$|^$``."""
    def flagged(c: str) -> pl.Expr:
        length = pl.col(c).str.len_bytes()
        return ((length == 0) | (pl.col(c).str.strip_chars().str.len_bytes() != length)).any().alias(c)

    return [flagged(c) for c in current_columns()]


def _is_idv() -> pl.Expr:
    flag = pl.col("award_or_idv_flag")
    return (flag == "IDV").fill_null(pl.col("award_type_code").is_null() & pl.col("idv_type_code").is_not_null())


def derive_keys(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Fills ``contract_transaction_unique_key`` and ``contract_award_unique_key`` where a
    file lacks them, as the broker forms them (pull_fpds_data.py ``calculate_remaining_fields``).
    The FPDS agency id (owner of the PIID) is not in such files: ``key_agency`` derives it."""
    agency, piid, mod = key_agency(), pl.col("award_id_piid"), pl.col("modification_number")
    parent_agency = pl.col("parent_award_agency_id").fill_null(NONE)
    parent_piid = pl.col("parent_award_id_piid").fill_null(NONE)
    txn_no = pl.col("transaction_number").fill_null(NONE)
    none = pl.lit(NONE)
    idv = _is_idv()
    txn_key = (
        pl.when(idv)
        .then(pl.concat_str([agency, none, piid, mod, none, none], separator="_"))
        .otherwise(pl.concat_str([agency, parent_agency, piid, mod, parent_piid, txn_no], separator="_"))
    )
    award_key = (
        pl.when(idv)
        .then(pl.concat_str([pl.lit("CONT_IDV"), piid, agency], separator="_"))
        .otherwise(pl.concat_str([pl.lit("CONT_AWD"), piid, agency, parent_piid, parent_agency], separator="_"))
    )
    return lf.with_columns(
        pl.coalesce(pl.col("contract_transaction_unique_key"), txn_key.str.to_uppercase()).alias(
            "contract_transaction_unique_key"
        ),
        pl.coalesce(pl.col("contract_award_unique_key"), award_key.str.to_uppercase()).alias("contract_award_unique_key"),
    )


def _timestamp(col: str) -> pl.Expr:
    text = pl.col(col).str.replace("T", " ").str.replace(r"(Z|[+-]\d{2}(:?\d{2})?)$", "")
    return pl.coalesce(*(text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _TIMESTAMP_FORMATS))


def _bool(col: str) -> pl.Expr:
    return pl.when(pl.col(col).is_in(TRUE_TEXT)).then(True).when(pl.col(col).is_in(FALSE_TEXT)).then(False)


def typed(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Casts validated text to the warehouse types: money Decimal(38,2), dates,
    timestamps, booleans, integers; everything else stays text."""
    cast = {
        "money": lambda c: pl.col(c).cast(MONEY, strict=False),
        "date": lambda c: pl.col(c).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
        "timestamp": _timestamp,
        "bool": _bool,
        "int": lambda c: pl.col(c).cast(pl.Int32, strict=False),
    }
    return lf.with_columns(cast[kind](c).alias(c) for c, kind in kinds().items() if kind in cast)


def with_fiscal_year(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds ``fiscal_year`` (October to September, named by its ending year) from
    ``action_date`` and fills ``action_date_fiscal_year`` where the file lacks it."""
    date = pl.col("action_date")
    fy = (date.dt.year() + (date.dt.month() >= 10).cast(pl.Int32)).cast(pl.Int32)
    return lf.with_columns(fy.alias("fiscal_year"), pl.coalesce("action_date_fiscal_year", fy).alias("action_date_fiscal_year"))


def with_row_hash(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds ``row_hash``, a 64-bit hash of every canonical column (as normalised text: the
    types are a function of it), so that loads can tell an unchanged row from a corrected
    one without comparing 300 columns."""
    return lf.with_columns(pl.struct(list(current_columns())).hash(seed=0).reinterpret(signed=True).alias("row_hash"))


def canonical(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Validated, normalised text -> typed canonical transactions (keys, types, fiscal year, hash)."""
    return lf.pipe(derive_keys).pipe(with_row_hash).pipe(typed).pipe(with_fiscal_year)
