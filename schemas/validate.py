"""Split a batch of rows into the valid ones and the quarantined ones, with reasons.

Two kinds of reasons: the row's structure (more or fewer fields than the header,
NUL bytes, bytes that are not UTF-8), found with vectorised polars expressions,
and the values, checked by the rules of ``schemas.transaction`` (pandera names
every failed check of every failing row).
"""

from __future__ import annotations

from pathlib import Path

import pandera.polars as pa
import polars as pl

from awardwatch.schemas.names import ROW
from awardwatch.schemas.transaction import failing_columns, passes_all, text_schema

REASONS = "reasons"
_POS = "__pos__"
_SHOWN = 60  # characters of a failing value kept in a reason


FIELDS = "fields"
_PARTS = 4  # a line with more than 3 NUL bytes is cut at the 4th (its row is quarantined for the NUL anyway)


def field_counts(path: Path, width: int, *, nul_free: bool = False) -> tuple[pl.DataFrame, int]:
    """The data rows of a CSV whose number of fields is not ``width`` (columns ``source_row``, ``fields``),
    and the number of data rows. One streaming pass over the file's lines, vectorised: a line continues
    the row before it when the quotes before it are unbalanced (a quoted value spans lines), and the
    commas of a row are those outside quoted values. (The CSV reader pads a short row with nulls and keeps
    only the first surplus field, so neither a short row nor a surplus empty field shows in what it reads.)
    ``nul_free``: the file holds no NUL byte (``files.has_suspect_bytes``), so a line is read whole, as one value."""
    parts = [f"part{i}" for i in range(1 if nul_free else _PARTS)]  # the line, split at NUL bytes (a byte CSV text never needs)
    # an empty part between two NULs reads as null: it is "" when a later part is there
    kept = [pl.when(pl.any_horizontal(pl.col(q).is_not_null() for q in parts[i:])).then(pl.col(p).fill_null(""))
            for i, p in enumerate(parts)]
    whole = pl.col(parts[0]) if nul_free else pl.concat_str(kept, separator="\x00", ignore_nulls=True)
    lines = pl.scan_csv(path, has_header=False, separator="\x00", quote_char=None, schema=dict.fromkeys(parts, pl.String),
                        truncate_ragged_lines=True, encoding="utf8-lossy", missing_columns="insert")
    line, quotes, inside = pl.col("line"), pl.col("quotes"), pl.col("inside")
    numbered = (
        lines.select(whole.fill_null("").alias("line"))
        .with_columns(line.str.count_matches('"', literal=True).alias("quotes"))
        .with_columns(((quotes.cum_sum() - quotes) % 2 == 1).alias("inside"))  # the line starts within a quoted value
        .with_columns((~inside).cum_sum().alias(ROW))
    )
    # the commas outside quoted values; only lines with a quote need the quoted parts taken out
    plain = numbered.filter((quotes == 0) & ~inside).select(ROW, line.str.count_matches(",", literal=True).alias("commas"))
    text = pl.when(inside).then(pl.lit('"') + line).otherwise(line)
    unquoted = pl.when(quotes > 0).then(text.str.replace_all(r'"[^"]*("|$)', "")).otherwise(line)
    quoted = numbered.filter((quotes > 0) | inside).select(ROW, unquoted.str.count_matches(",", literal=True).alias("commas"))
    per_row = (
        pl.concat([plain, quoted])
        .group_by(ROW).agg((pl.col("commas").sum() + 1).alias(FIELDS))
        .select((pl.col(ROW).cast(pl.Int64) - 1).alias(ROW), FIELDS)  # the header is row 0
        .collect(engine="streaming")
    )
    rows = int(per_row[ROW].max() or 0)
    return per_row.filter((pl.col(ROW) > 0) & (pl.col(FIELDS) != width)).sort(ROW), rows


def structure_reasons(df: pl.DataFrame, *, overflow: str, header_width: int, last_column: str | None,
                      problem: str | None = None, check_bytes: bool = True,
                      fields: pl.DataFrame | None = None) -> pl.Series:
    """Per row, the list of structural problems (empty list when none). ``problem`` names a
    column in which the source itself reported a problem with the row. ``check_bytes=False``
    skips looking for NUL and U+FFFD in every value (the caller knows the file has neither).
    ``fields``: the file's rows with a wrong number of fields (``field_counts``); without it,
    a null ``last_column`` stands for a short row."""
    text_cols = [c for c, t in df.schema.items() if t == pl.String and c not in (overflow, problem, "source_raw")]
    if fields is not None and fields.height:
        counted = df.select(pl.col(ROW).cast(pl.Int64)).join(fields, on=ROW, how="left", maintain_order="left")[FIELDS]
        df = df.with_columns(counted.alias(FIELDS))
    checks = [
        pl.when(pl.col(overflow).is_not_null()).then(
            pl.lit(f"row has more fields than the header's {header_width}: extra value '")
            + pl.col(overflow).str.slice(0, _SHOWN)
            + pl.lit("'")
        ),
    ]
    if check_bytes:
        bad_bytes = pl.any_horizontal(
            pl.col(c).str.contains("\x00", literal=True) | pl.col(c).str.contains("\ufffd", literal=True) for c in text_cols
        ).fill_null(False)
        checks.append(pl.when(bad_bytes).then(pl.lit("__bytes__")))
    if problem is not None:
        checks.append(pl.col(problem))
    if FIELDS in df.columns:
        n = pl.col(FIELDS)
        checks.append(
            pl.when(n < header_width).then(pl.format("row has {} field(s), fewer than the header's {}", n, pl.lit(header_width)))
            .when((n > header_width) & pl.col(overflow).is_null())
            .then(pl.format("row has {} fields, more than the header's {}", n, pl.lit(header_width)))
        )
    if last_column is not None and fields is None:
        checks.append(
            pl.when(pl.col(last_column).is_null()).then(
                pl.lit(f"row ends early or lacks its last field '{last_column}' (header has {header_width} fields)")
            )
        )
    reasons = df.select(pl.concat_list(checks).list.drop_nulls().alias(REASONS)).to_series()
    flagged = reasons.list.contains("__bytes__")
    if not check_bytes or not flagged.any():
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


def value_reasons(df: pl.DataFrame) -> pl.Series:
    """Per row, every failed value rule, as ``column: problem (got 'value')``.

    One vectorised pass finds the failing rows; pandera (``lazy=True``) then runs on
    those rows and the columns that fail, and names each failed check."""
    empty = pl.repeat(pl.lit([], dtype=pl.List(pl.String)), df.height, eager=True).alias(REASONS)
    failing = df.select(~passes_all()).to_series()
    if not failing.any():
        return empty
    suspects = df.with_row_index(_POS).filter(failing)
    try:
        text_schema(tuple(failing_columns(suspects))).validate(suspects.drop(_POS), lazy=True)
        raise RuntimeError("the vectorised rules and the pandera schema disagree on a row")
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
    positions = suspects.select(pl.col(_POS).alias("row"), pl.int_range(pl.len(), dtype=pl.Int32).alias("index"))
    per_row = (
        cases.select(pl.col("index").cast(pl.Int32), message.alias(REASONS))
        .unique(maintain_order=True)
        .join(positions, on="index")
        .group_by("row", maintain_order=True)
        .agg(REASONS)
    )
    joined = pl.DataFrame({"row": pl.int_range(df.height, dtype=pl.UInt32, eager=True)}).join(
        per_row.with_columns(pl.col("row").cast(pl.UInt32)), on="row", how="left", maintain_order="left"
    )
    return joined[REASONS].fill_null(pl.lit([], dtype=pl.List(pl.String))).alias(REASONS)
