"""Split a batch of rows into the valid ones and the quarantined ones, with reasons.

Two kinds of reasons: the row's structure (more or fewer fields than the header,
NUL bytes, bytes that are not UTF-8), found with vectorised polars expressions,
and the values, checked by the pandera text schema with ``lazy=True`` so one
pass reports every failed check of every row.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.transaction import text_schema

REASONS = "reasons"
_POS = "__pos__"
_BAD_BYTES = "[\x00\ufffd]"
_SHOWN = 60  # characters of a failing value kept in a reason


def structure_reasons(df: pl.DataFrame, *, overflow: str, header_width: int, last_column: str | None) -> pl.Series:
    """Per row, the list of structural problems (empty list when none)."""
    text_cols = [c for c, t in df.schema.items() if t == pl.String and c != overflow]
    bad_bytes = pl.any_horizontal(pl.col(c).str.contains(_BAD_BYTES) for c in text_cols).fill_null(False)
    checks = [
        pl.when(pl.col(overflow).is_not_null()).then(
            pl.lit(f"row has more fields than the header's {header_width}: extra value '")
            + pl.col(overflow).str.slice(0, _SHOWN)
            + pl.lit("'")
        ),
        pl.when(bad_bytes).then(pl.lit("__bytes__")),
    ]
    if last_column is not None:
        checks.append(
            pl.when(pl.col(last_column).is_null()).then(
                pl.lit(f"row ends early or lacks its last field '{last_column}' (header has {header_width} fields)")
            )
        )
    reasons = df.select(pl.concat_list(checks).list.drop_nulls().alias(REASONS)).to_series()
    flagged = reasons.list.contains("__bytes__")
    if not flagged.any():
        return reasons
    detail = _bad_byte_columns(df.with_row_index(_POS).filter(flagged), text_cols)
    both = pl.DataFrame([reasons]).with_row_index(_POS).join(detail, on=_POS, how="left", maintain_order="left")
    cleaned = pl.col(REASONS).list.set_difference(["__bytes__"])
    return both.select(pl.concat_list(cleaned, pl.col("detail").fill_null([])).list.sort().alias(REASONS)).to_series()


def _bad_byte_columns(df: pl.DataFrame, text_cols: list[str]) -> pl.DataFrame:
    """For the few rows with NUL or non-UTF-8 bytes, name the columns that hold them (``detail``)."""
    per_column = [
        pl.when(pl.col(c).str.contains("\x00")).then(pl.lit(f"{c}: contains a NUL byte")) for c in text_cols
    ] + [
        pl.when(pl.col(c).str.contains("\ufffd")).then(pl.lit(f"{c}: bytes that are not UTF-8 (shown as \ufffd)"))
        for c in text_cols
    ]
    return df.select(_POS, pl.concat_list(per_column).list.drop_nulls().alias("detail"))


def value_reasons(df: pl.DataFrame, schema: pa.DataFrameSchema | None = None) -> pl.Series:
    """Per row, every failed check of the pandera text schema, as ``column: problem (got 'value')``."""
    schema = schema or text_schema()
    empty = pl.Series(REASONS, [[] for _ in range(df.height)], dtype=pl.List(pl.String))
    try:
        schema.validate(df, lazy=True)
        return empty
    except pa.errors.SchemaErrors as exc:
        cases = pl.DataFrame(exc.failure_cases)
    if cases["index"].null_count():
        raise RuntimeError(f"schema-level validation failure, not a row problem:\n{cases.filter(pl.col('index').is_null())}")
    value = pl.col("failure_case").cast(pl.String)
    message = (
        pl.when(pl.col("check") == "not_nullable")
        .then(pl.col("column") + pl.lit(": missing (required)"))
        .otherwise(pl.col("column") + pl.lit(": ") + pl.col("check") + pl.lit(" (got '") + value.str.slice(0, _SHOWN) + pl.lit("')"))
    )
    per_row = (
        cases.select(pl.col("index").alias(_POS), message.alias(REASONS))
        .unique(maintain_order=True)
        .group_by(_POS, maintain_order=True)
        .agg(REASONS)
    )
    joined = pl.DataFrame({_POS: pl.int_range(df.height, dtype=pl.Int32, eager=True)}).join(per_row, on=_POS, how="left")
    return joined[REASONS].fill_null([]).alias(REASONS)
