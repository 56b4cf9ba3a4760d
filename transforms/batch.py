"""The batch split, pure: one batch of text rows -> (canonical valid rows, quarantine rows with reasons),
and a Delta file's deletion records. No I/O; ``flows.core.ingest`` streams files through these."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import polars as pl

from awardwatch.schemas.layouts import LINEAGE, Layout, current_columns
from awardwatch.schemas.names import KEY, OVERFLOW, ROW
from awardwatch.schemas.transaction import check_canonical
from awardwatch.schemas.validate import REASONS, structure_reasons, value_reasons
from awardwatch.transforms.transactions import canonical, derive_keys, needs_trim, normalise_text, to_current_layout


def split_batch(raw: pl.DataFrame, layout: Layout, source_file: str, timing: Callable[[str], AbstractContextManager] | None = None,
                check_bytes: bool = True, widths: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One batch of text rows -> (canonical valid rows, quarantine rows with reasons).
    ``check_bytes=False``: the file is known to hold no NUL and no U+FFFD. ``widths``: the file's
    rows with a wrong number of fields (``schemas.validate.field_counts``), quarantined whatever the layout."""
    timing = timing or (lambda stage: nullcontext())
    lineage = LINEAGE if layout.has_lineage else ()
    with timing("transform"):
        current = raw.lazy().pipe(to_current_layout, layout, keep=(ROW, OVERFLOW, *lineage)).collect()
        flags = current.select(needs_trim()).row(0, named=True)
        text = current.lazy().pipe(normalise_text, [c for c, flagged in flags.items() if flagged]).collect()
    with timing("validate"):
        last = "last_modified_date" if layout.columns[-1] == "last_modified_date" else None
        structure = structure_reasons(text, overflow=OVERFLOW, header_width=len(layout.columns), last_column=last,
                                      problem="source_problem" if lineage else None, check_bytes=check_bytes,
                                      fields=widths)
        values = value_reasons(text.select(list(current_columns())))
        reasons = pl.DataFrame([structure.alias("s"), values.alias("v")]).select(pl.concat_list("s", "v")).to_series()
        bad = reasons.list.len() > 0
    with timing("transform"):
        typed = text.filter(~bad).lazy().drop(OVERFLOW, "source_problem", "source_raw", strict=False).pipe(canonical).pipe(_with_lineage)
        good = check_canonical(typed, text.schema).collect()
    with timing("validate"):
        quarantined = _quarantine_rows(raw.filter(bad), text.filter(bad), reasons.filter(bad), source_file)
    return good, quarantined


def _with_lineage(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Every staged row has ``lineage_file`` / ``lineage_row`` (null unless the source set them)."""
    names = lf.collect_schema().names()
    return lf.with_columns(
        (pl.col("lineage_file") if "lineage_file" in names else pl.lit(None, pl.String)).alias("lineage_file"),
        (pl.col("lineage_row").cast(pl.Int64, strict=False) if "lineage_row" in names else pl.lit(None, pl.Int64)).alias("lineage_row"),
    )


def split_deletions(raw: pl.DataFrame, layout: Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Delta files: rows flagged ``D`` -> (other rows, deletion records: key, source_row, last_modified_date).
    A blank ``correction_delete_ind`` is a new or modified row, ``C`` a correction, ``D`` a deletion.
    Deletion rows carry only key columns; the key's agency is their ``agency_id``. Their
    ``last_modified_date`` is date-only upstream (populate_monthly_delta_files.py ``organize_deletion_columns``
    writes the deletion journal file's date), a timestamp in older files: both are read, a date as midnight."""
    flag = pl.col("correction_delete_ind").str.strip_chars().str.to_uppercase() == "D"
    is_delete = raw.select(flag.fill_null(False)).to_series()
    if not is_delete.any():
        return raw, pl.DataFrame()
    lineage = LINEAGE[:2] if layout.has_lineage else ()
    records = (
        raw.filter(is_delete)
        .lazy()
        .pipe(to_current_layout, layout, keep=(ROW, "agency_id", *lineage))
        .pipe(normalise_text)
        .with_columns(pl.coalesce("awarding_sub_agency_code", pl.col("agency_id").str.strip_chars().str.to_uppercase()).alias("awarding_sub_agency_code"))
        .pipe(derive_keys)
        .pipe(_with_lineage)
        .select(KEY, pl.col(ROW).cast(pl.Int64), _deletion_date(pl.col("last_modified_date")),
                "lineage_file", "lineage_row")
        .collect()
    )
    return raw.filter(~is_delete), records


def _deletion_date(text: pl.Expr) -> pl.Expr:
    """``YYYY-MM-DD HH:MM:SS`` (fractions dropped) or ``YYYY-MM-DD`` (as midnight) -> Datetime; else null."""
    text = text.str.strip_chars()
    return pl.coalesce(
        text.str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False),
        pl.when(text.str.len_chars() == 10).then(text.str.to_datetime("%Y-%m-%d", strict=False)),
    ).alias("last_modified_date")


def _quarantine_rows(raw: pl.DataFrame, text: pl.DataFrame, reasons: pl.Series, source_file: str) -> pl.DataFrame:
    """Rejected rows as read (column -> text, JSON), with reasons and their key where it can be formed."""
    if not raw.height:
        return pl.DataFrame()
    values = raw.select(pl.struct(pl.all().exclude(ROW)).struct.json_encode()).to_series()
    key = text.lazy().pipe(derive_keys).select(KEY).collect().to_series()
    lineage = text.lazy().pipe(_with_lineage).select("lineage_file", "lineage_row").collect()
    ident = pl.concat_str([pl.lit(source_file), raw[ROW].cast(pl.String), values], separator="\x1f")
    return pl.DataFrame(
        {
            "quarantine_id": pl.select(ident.hash(seed=0).cast(pl.String)).to_series(),
            ROW: raw[ROW].cast(pl.Int64),
            REASONS: reasons,
            "original_values": values,
            KEY: key,
            "lineage_file": lineage["lineage_file"],
            "lineage_row": lineage["lineage_row"],
        }
    )


def reason_kinds(bad: pl.DataFrame) -> Counter[str]:
    kinds = bad.select(pl.col(REASONS).explode().str.replace(r" \(got .*$", "")).to_series().value_counts()
    return Counter(dict(zip(kinds[REASONS].to_list(), kinds["count"].to_list())))
