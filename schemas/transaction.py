"""pandera models of a contract transaction.

The value rules of a file's text (identifier formats, amounts, dates, flags,
codes, required values) are defined once, as ``Rule`` objects. They run twice
over a batch: ``passes_all`` as one vectorised polars pass that finds the rows
failing anything, then ``text_schema`` (pandera, polars backend, ``lazy=True``)
on the collected failing rows and the columns that fail, to name every failed check of each; those names
are the quarantine reasons. ``canonical_schema`` is the typed shape of rows as
loaded, checked on the transform's LazyFrame: names and types only, by design
(the values were checked as text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, lru_cache

import pandera.polars as pa
import polars as pl

from awardwatch.schemas.layouts import current_columns

EARLIEST_ACTION = date(1979, 10, 1)  # FPDS history starts in FY1980
# Amounts have at most 15 digits before the point (under $1,000 trillion; the largest federal amounts
# are 12-13 digits): a sum of up to 10^21 of them fits DECIMAL(38,2), so award and mart roll-ups
# cannot overflow. Patterns use [0-9], never \d, which also matches other scripts' digits (١٢٣, １２３).
MONEY_DIGITS = 15

PIID = r"^[A-Z0-9][A-Z0-9\-.]{0,49}$"
SUBTIER = r"^[0-9A-Z]{4}$"
TOPTIER = r"^([0-9]{3}|[0-9A-Z]{4})$"
PATTERNS: dict[str, tuple[str, str]] = {
    # column: (regex, what it must be, in words)
    "contract_transaction_unique_key": (r"^[0-9A-Z\-]+(_[0-9A-Z\-.]+){5}$", "6 key parts joined by _"),
    "contract_award_unique_key": (r"^CONT_(AWD|IDV)_[0-9A-Z\-._]+$", "CONT_AWD_... or CONT_IDV_..."),
    "award_id_piid": (PIID, "a PIID (letters, digits, '-', up to 50)"),
    "parent_award_id_piid": (PIID, "a PIID (letters, digits, '-', up to 50)"),
    "modification_number": (r"^[A-Z0-9\-.]{1,25}$", "a modification number"),
    "parent_award_modification_number": (r"^[A-Z0-9\-.]{1,25}$", "a modification number"),
    "transaction_number": (r"^[0-9]{1,6}$", "a whole number"),
    "parent_award_agency_id": (SUBTIER, "a 4-character agency code"),
    "awarding_sub_agency_code": (SUBTIER, "a 4-character agency code"),
    "funding_sub_agency_code": (SUBTIER, "a 4-character agency code"),
    "awarding_agency_code": (TOPTIER, "a 3-digit (CGAC) or 4-character (FREC) agency code"),
    "funding_agency_code": (TOPTIER, "a 3-digit (CGAC) or 4-character (FREC) agency code"),
    "recipient_uei": (r"^[A-Z0-9]{12}$", "a UEI of 12 letters or digits"),
    "recipient_parent_uei": (r"^[A-Z0-9]{12}$", "a UEI of 12 letters or digits"),
    "recipient_duns": (r"^[0-9]{9}$", "a DUNS of 9 digits"),
    "recipient_parent_duns": (r"^[0-9]{9}$", "a DUNS of 9 digits"),
    "product_or_service_code": (r"^[A-Z0-9]{4}$", "a 4-character PSC"),
    "naics_code": (r"^[0-9]{2,6}$", "a NAICS code of 2 to 6 digits"),
    "award_or_idv_flag": (r"^(AWARD|IDV)$", "AWARD or IDV"),
    "award_type_code": (r"^[A-D]$", "one of A, B, C, D"),
    "idv_type_code": (r"^[A-E]$", "one of A, B, C, D, E"),
    "action_type_code": (r"^[A-Z]$", "one letter (reason for modification)"),
    "action_date_fiscal_year": (r"^[0-9]{4}$", "a 4-digit year"),
}
KIND_PATTERNS: dict[str, tuple[str, str]] = {
    "money": (rf"^-?0*[0-9]{{1,{MONEY_DIGITS}}}(\.[0-9]{{1,2}})?$",
              f"an amount like 1234.56 (ASCII digits, no commas, at most {MONEY_DIGITS} digits before the point and 2 after)"),
    "date": (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( 00:00:00(\.0+)?)?$", "an ISO date YYYY-MM-DD"),
    "timestamp": (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$",
        "an ISO timestamp YYYY-MM-DD HH:MM:SS",
    ),
}
TRUE_TEXT = ("t", "T", "true", "TRUE", "True")
FALSE_TEXT = ("f", "F", "false", "FALSE", "False")
BOOLEAN_TEXT = TRUE_TEXT + FALSE_TEXT
REQUIRED = ("award_id_piid", "modification_number", "awarding_sub_agency_code", "action_date")


@dataclass(frozen=True)
class Rule:
    """One check of one column, defined once: ``passes`` maps the column to a boolean
    expression (null means "no value", which passes; required columns have their own rule)."""

    column: str
    error: str
    passes: Callable[[pl.Expr], pl.Expr]

    def expr(self) -> pl.Expr:
        return self.passes(pl.col(self.column)).fill_null(True)

    def check(self) -> pa.Check:
        return pa.Check(lambda data: data.lazyframe.select(self.passes(pl.col(data.key)).fill_null(True)), error=self.error)


def _date_text(value: pl.Expr) -> pl.Expr:
    return value.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def _rules_of(name: str, kind: str) -> list[Rule]:
    rules = []
    if name in PATTERNS or kind in KIND_PATTERNS:
        regex, words = PATTERNS.get(name) or KIND_PATTERNS[kind]
        rules.append(Rule(name, f"not {words}", lambda v, rx=regex: v.str.contains(rx)))
    if kind == "bool":
        rules.append(Rule(name, "not t, f, true or false", lambda v: v.is_in(BOOLEAN_TEXT)))
    if kind == "date":
        # a date of the right shape that is not on the calendar (2018-02-30); other shapes fail the pattern rule
        shape = KIND_PATTERNS["date"][0]
        rules.append(Rule(name, "not a real calendar date", lambda v: ~v.str.contains(shape) | _date_text(v).is_not_null()))
    if name == "action_date":
        latest = date.today() + timedelta(days=366)
        rules.append(Rule(name, f"not between {EARLIEST_ACTION} and next year",
                          lambda v: _date_text(v).is_null() | _date_text(v).is_between(EARLIEST_ACTION, latest)))
    return rules


@cache
def rules_by_column() -> dict[str, tuple[Rule, ...]]:
    """The value rules of each column that has any, in text form."""
    return {name: tuple(found) for name, kind in current_columns().items() if (found := _rules_of(name, kind))}


@cache
def rules() -> tuple[Rule, ...]:
    """Every value rule of a contract transaction in text form."""
    return tuple(rule for found in rules_by_column().values() for rule in found)


def passes_all() -> pl.Expr:
    """True for a row that passes every rule and has every required value: one vectorised pass."""
    return pl.all_horizontal([*(r.expr() for r in rules()), *(pl.col(c).is_not_null() for c in REQUIRED)])


def failing_columns(df: pl.DataFrame) -> list[str]:
    """The columns of ``df`` with at least one failed rule or missing required value."""
    by_column = rules_by_column()
    failed = {c: [*(~r.expr() for r in by_column.get(c, ())), *([pl.col(c).is_null()] if c in REQUIRED else [])]
              for c in current_columns()}
    flags = df.select(pl.any_horizontal(exprs).any().alias(c) for c, exprs in failed.items() if exprs).row(0, named=True)
    return [c for c in current_columns() if flags.get(c)]


@lru_cache(maxsize=256)
def text_schema(columns: tuple[str, ...] | None = None) -> pa.DataFrameSchema:
    """The rules as a pandera schema: validating with ``lazy=True`` names every failed check of every row.
    ``columns`` limits it to those columns (pandera's cost grows with the columns it checks)."""
    by_column = rules_by_column()
    checked = {
        name: pa.Column(pl.String, [r.check() for r in by_column.get(name, ())], nullable=name not in REQUIRED)
        for name in (columns or current_columns())
    }
    return pa.DataFrameSchema(checked, name="contract transaction (text)", strict=False)


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


_CHECKED: set[tuple] = set()


def check_canonical(lf: pl.LazyFrame, inputs: pl.Schema) -> pl.LazyFrame:
    """``canonical_schema`` applied to a transform's LazyFrame made from columns ``inputs``.
    pandera checks a LazyFrame's schema (names, types), not its values, and equal inputs give
    equal types, so each distinct ``inputs`` is checked once per process, on an empty frame of
    the plan's schema (resolving the plan once, not once per column)."""
    key = tuple(inputs.items())
    if key not in _CHECKED:
        canonical_schema().validate(pl.LazyFrame(schema=lf.collect_schema()))
        _CHECKED.add(key)
    return lf
