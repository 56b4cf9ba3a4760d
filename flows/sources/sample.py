"""Deterministic, realistic USAspending contract-transaction CSVs for the demo, tests and benchmarks.

Rows look like a ``Contracts_PrimeTransactions_*.csv`` bulk download (award-sources.md sections 2, 2.1, 4, 5):
DHS/DOJ/GSA agencies, real vendor names with stable fictional UEI/DUNS identifiers, awards of 1-15 actions
(base + modifications), IDVs with child orders, ~5% de-obligations, keys built exactly like USAspending's,
long quoted descriptions (commas, double quotes, a few newlines). Same seed and arguments => same bytes.

Generation is vectorised (polars + pyarrow; random bytes from ``random.Random``, no numpy) and streamed:
draws per chunk of ``chunk_rows`` rows, text built and written WRITE_ROWS rows at a time, so memory stays
flat for any number of rows. Output depends only on the arguments (chunk_rows included). Identifiers
(UEI, DUNS, CAGE, PIIDs), addresses and amounts are synthetic; do not read them as facts about the
companies named. The reference tables (agencies, places, products, vendors, code lists) are data files in
``sample_data/``, loaded once at import by ``flows.sources.sample_data``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import IO, ContextManager

import polars as pl
import pyarrow as pa

from awardwatch.flows.sources.base import NIGHTLY, Feed, Landed, Scope, Window
from awardwatch.flows.sources.sample_data import (
    ACTION_CODES, ACTION_TYPES, AGENCY_IDV_TYPES, AGENCY_SITES, AWARD_KINDS, BASE_FLAGS, BPA_CALL, CODED, CODED_BY,
    CONSTANT_CODED, DEFAULT_AGENCY_SHARES, DEFINITIVE, DELIVERY_ORDER, FUNDING, IDV, IDV_DESCRIPTION_PREFIX, IDV_TYPES,
    INHERENTLY_GOVERNMENTAL, LINE_CLASSES, LINE_NAMES, LOCATION_KEYS, LOCATIONS, LONG_TAILS, MOD_TEXTS, NAICS,
    OBJECT_CLASSES, OFFICES, PARENT_AGENCY_NAMES, PRODUCT_LINES, PROFILE_FLAGS, PROFILE_SET_ASIDE, PROGRAM_ACRONYMS,
    PSC, PURCHASE_ORDER, RECIPIENTS, SET_ASIDES, SINGLE_OR_MULTIPLE, SMALL_BUSINESS_AGENCIES, SMALL_BUSINESSES,
    SMALL_PROFILES, STATES, SUBTIER_CODES, SUBTIERS, TOPTIERS, TYPES_OF_IDC, Recipient,
)
from awardwatch.schemas.layouts import RENAMES, current_columns, legacy_2018_columns

# ---------------------------------------------------------------------------------------------------------
# Generator settings (the reference tables are in sample_data/)
# ---------------------------------------------------------------------------------------------------------

LAYOUTS = ("current", "legacy")
FEED_BASE = "Contracts_PrimeTransactions_2019-10-15_H08M30S00"  # bulk-download style name for write_feed
ZIP_TIMESTAMP = (2019, 10, 15, 8, 30, 0)  # fixed so zips are byte-identical
NONE = "-NONE-"
DUNS_RETIRED = date(2022, 4, 4)  # DUNS left empty on actions from this day on
NEW_PIID_FROM = date(2017, 10, 1)  # FY2018: DHS/DOJ/GSA moved to the 70.../15.../47Q... PIID scheme

MALFORMED_KINDS = ("day_first_date", "non_numeric_amount", "bad_id_length", "empty_piid", "extra_field")
EXTRA_FIELD_VALUE = "EXTRA"
WRITE_ROWS = 10_000  # rows turned into text and written at a time
MULTILINE_COLUMNS = ("transaction_description", "prime_award_base_transaction_description", "award_description")

LONG_TAIL_PER_MILLE = 100  # award descriptions with a LONG_TAILS text appended
MOD_TEXT_SHARES = (45, 45, 10)  # per-action text weights: first, second, third (multi-line texts are rare)
TRANSACTIONS_PER_AWARD = (22, 14, 11, 9, 8, 7, 6, 5, 4, 3, 3, 2, 2, 2, 2)  # weights for 1..15 actions
BPA_IDV = [t[0] for t in AGENCY_IDV_TYPES].index("E")  # agencies' BPAs (IDV type E): their orders are BPA calls
IN_FILE_PARENT_PER_MILLE = 450  # orders whose parent IDV is in the same file (others: GSA schedules etc.)
NEGATIVE_MOD_PER_MILLE = 90  # de-obligations among non-IDV modifications (~5% of all rows)
ZERO_MOD_PER_MILLE = 250
EXERCISED_MULTIPLIERS = ((1, 80), (2, 15), (3, 5))  # base action: exercised value = obligation x this
OPTION_MULTIPLIERS = ((1, 40), (2, 20), (3, 15), (4, 10), (5, 15))  # base action: all options = exercised x this
PARENT_MODS = ((0, 60), (1, 15), (2, 10), (3, 10), (12, 5))  # parent IDV modification referenced by orders

# dollar ranges of base actions and their shares by award kind
AMOUNT_BUCKETS = ((500, 10_000), (10_000, 100_000), (100_000, 1_000_000), (1_000_000, 10_000_000),
                  (10_000_000, 60_000_000))
AMOUNT_SHARES = {
    IDV: (0, 0, 10, 50, 40),  # IDV ceilings (base and all options); IDVs obligate (almost) nothing
    DELIVERY_ORDER: (10, 30, 35, 20, 5),
    BPA_CALL: (20, 40, 30, 10, 0),
    DEFINITIVE: (5, 20, 35, 30, 10),
    PURCHASE_ORDER: (50, 45, 5, 0, 0),
}
UEI_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"  # SAM UEIs avoid I and O


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


def malformed_plan(rows: int, malformed: int) -> list[tuple[int, str]]:
    """Data rows (1-based, header excluded) to corrupt and how, spread evenly, kinds cycling MALFORMED_KINDS."""
    count = max(0, min(malformed, rows))
    return [((2 * i + 1) * rows // (2 * count) + 1, MALFORMED_KINDS[i % len(MALFORMED_KINDS)]) for i in range(count)]


def write_transactions(path: Path, rows: int, *, seed: int = 2018, layout: str = "current",
                       malformed: int = 0, chunk_rows: int = 50_000,
                       start: date = date(2014, 10, 1), end: date = date(2019, 9, 30)) -> Path:
    """Write one CSV of `rows` data rows (plus header). Returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_parts(lambda _: open(path, "wb"), 1, rows, seed=seed, layout=layout, malformed=malformed,
                 chunk_rows=chunk_rows, start=start, end=end)
    return path


def write_feed(out_dir: Path, rows: int = 3000, *, seed: int = 2018, layout: str = "current",
               malformed: int = 5, zip_parts: int = 0) -> list[Path]:
    """Write a demo feed into out_dir: one CSV, or (zip_parts > 1) one ZIP holding that many CSV parts
    named like a bulk download (<base>_1.csv, <base>_2.csv, ...) each with its own header. Returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if zip_parts <= 1:
        return [write_transactions(out_dir / f"{FEED_BASE}_1.csv", rows, seed=seed, layout=layout, malformed=malformed)]
    zip_path = out_dir / f"{FEED_BASE}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        _write_parts(lambda part: archive.open(_zip_entry(f"{FEED_BASE}_{part + 1}.csv"), "w", force_zip64=True),
                     zip_parts, rows, seed=seed, layout=layout, malformed=malformed)
    return [zip_path]


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _write_parts(open_part: Callable[[int], ContextManager[IO[bytes]]], parts: int, rows: int, *, seed: int,
                 layout: str, malformed: int, chunk_rows: int = 50_000, start: date = date(2014, 10, 1),
                 end: date = date(2019, 9, 30)) -> None:
    """Stream `rows` rows into `parts` files opened one after another (rows split evenly, each with a header)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if rows < 0 or chunk_rows < 1 or start > end:
        raise ValueError("need rows >= 0, chunk_rows >= 1 and start <= end")
    plan = malformed_plan(rows, malformed)
    extra_fields = [r - 1 for r, kind in plan if kind == "extra_field"]  # 0-based
    frames = _frames(rows, seed, layout, plan, chunk_rows, start, end)
    pending = next(frames, None)  # (first row, frame) not yet written
    for part in range(parts):
        end_row = rows * (part + 1) // parts
        with open_part(part) as out:
            header = True
            while pending is not None and pending[0] < end_row:
                first, frame = pending
                take = min(end_row - first, frame.height)
                extra = [r - first for r in extra_fields if first <= r < first + take]
                _write_piece(out, frame.head(take), header=header, extra_rows=extra)
                header = False
                pending = (first + take, frame.slice(take)) if take < frame.height else next(frames, None)
            if header:
                _write_piece(out, _empty_frame(layout), header=True, extra_rows=[])


def _write_piece(out: IO[bytes], frame: pl.DataFrame, *, header: bool, extra_rows: list[int]) -> None:
    """Write rows as CSV; rows in extra_rows (0-based in frame) get one extra field appended."""
    if not extra_rows:
        frame.write_csv(out, include_header=header)
        return
    lines = frame.write_csv(include_header=header).split("\n")
    newlines = pl.sum_horizontal(
        pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in MULTILINE_COLUMNS if c in frame.columns
    )
    before = frame.select(newlines.cum_sum() - newlines).to_series()  # embedded newlines in earlier rows
    for row in extra_rows:
        lines[int(header) + row + before[row]] += "," + EXTRA_FIELD_VALUE
    out.write("\n".join(lines).encode("utf-8"))


def _empty_frame(layout: str) -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.String for c in _layout_columns(layout)})


def _frames(rows: int, seed: int, layout: str, plan: list[tuple[int, str]], chunk_rows: int,
            start: date, end: date) -> Iterator[tuple[int, pl.DataFrame]]:
    """Yield (first row index, frame in the output layout) slice by slice; malformed rows already applied.

    Random draws happen per chunk of chunk_rows rows (so output depends on seed and chunk_rows only)."""
    first_award = 0
    for chunk, first in enumerate(range(0, rows, chunk_rows)):
        n = min(chunk_rows, rows - first)
        actions, awards = _chunk(_Rng(seed, chunk), n, first_award, _day(start), _day(end))
        first_award += awards
        for offset in range(0, n, WRITE_ROWS):  # text columns for a slice at a time keep memory low
            piece = actions.slice(offset, WRITE_ROWS)
            low = first + offset
            local = [(r - 1 - low, kind, i) for i, (r, kind) in enumerate(plan) if low <= r - 1 < low + piece.height]
            wide = _columns(piece)
            extra = [r for r, kind, _ in local if kind == "extra_field"]
            if extra:  # rows that get an extra field must fit on one line
                wide = wide.with_columns(
                    pl.when(pl.int_range(pl.len()).is_in(extra))
                    .then(pl.col(c).str.replace_all("\n", " ", literal=True)).otherwise(pl.col(c)).alias(c)
                    for c in MULTILINE_COLUMNS if c in wide.columns
                )
            yield low, _corrupt(_to_layout(wide, layout), local)


# ---------------------------------------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Weights:
    """Weighted options, optionally conditional on a parent value 0..P-1 (flattened for search_sorted)."""

    keys: pl.Series  # parent * 2**32 + running weight, sorted
    totals: pl.Series  # total weight per parent
    values: pl.Series  # option value per flat position


def _weights(options_by_parent: Sequence[Sequence[tuple[int, int]]]) -> _Weights:
    """options_by_parent[p] = [(value, weight), ...]; weights are integers."""
    keys, values, totals = [], [], []
    for parent, options in enumerate(options_by_parent):
        running = 0
        for value, weight in options:
            if weight > 0:
                running += weight
                keys.append(parent * 2**32 + running)
                values.append(value)
        totals.append(max(running, 1))
    return _Weights(pl.Series(keys, dtype=pl.Int64), pl.Series(totals, dtype=pl.Int64),
                    pl.Series(values, dtype=pl.Int64))


class _Rng:
    """Deterministic vectorised draws: Mersenne Twister bytes viewed as uint32 through pyarrow."""

    def __init__(self, seed: int, stream: int) -> None:
        self._random = random.Random(f"awardwatch-sample:{seed}:{stream}")

    def u32(self, n: int) -> pl.Series:
        buffer = pa.py_buffer(self._random.randbytes(4 * n))
        return pl.from_arrow(pa.Array.from_buffers(pa.uint32(), n, [None, buffer]))

    def below(self, n: int, bound: int | pl.Series) -> pl.Series:
        """Integers in [0, bound) (bound < 2**32, scalar or per row)."""
        bound = bound.cast(pl.UInt64) if isinstance(bound, pl.Series) else bound
        return ((self.u32(n).cast(pl.UInt64) * bound) // 2**32).cast(pl.Int64)

    def chance(self, n: int, per_mille: int) -> pl.Series:
        return self.below(n, 1000) < per_mille

    def pick(self, weights: _Weights, parent: pl.Series | int) -> pl.Series:
        """One option value per row of `parent` (or `parent` rows of parent 0 when an int)."""
        parent = pl.Series([0] * parent, dtype=pl.Int64) if isinstance(parent, int) else parent.cast(pl.Int64)
        draw = self.below(len(parent), weights.totals.gather(parent))
        return weights.values.gather(weights.keys.search_sorted(parent * 2**32 + draw, side="right"))


def _day(d: date) -> int:
    return d.toordinal() - date(1970, 1, 1).toordinal()


# ---------------------------------------------------------------------------------------------------------
# Lookup tables (built once)
# ---------------------------------------------------------------------------------------------------------


def _ident(text: str, length: int, alphabet: str) -> str:
    number = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        chars.append(alphabet[digit])
    return "".join(chars)


def _uei(name: str) -> str:
    return _ident("uei:" + name, 12, UEI_ALPHABET)


def _duns(name: str) -> str:
    """9 digits; about a quarter start with 0 (kept: DUNS are text)."""
    duns = _ident("duns:" + name, 9, "0123456789")
    return "0" + duns[1:] if int(duns[-1]) % 4 == 0 else str(int(duns[0]) % 9 + 1) + duns[1:]


@cache
def _recipients() -> tuple[Recipient, ...]:
    small = tuple(
        Recipient(name, location, f"{100 + 37 * i} {('MAIN', 'COMMERCE', 'LIBERTY', 'PARK')[i % 4]} ST STE {200 + i}",
                  {line: 1 for line in lines}, 1, profile=SMALL_PROFILES[i % len(SMALL_PROFILES)],
                  agencies=SMALL_BUSINESS_AGENCIES)
        for i, (name, location, lines) in enumerate(SMALL_BUSINESSES)
    )
    return RECIPIENTS + small


def _location_columns(prefix: str, key: str) -> dict[str, str]:
    city, county, county_fips, state, zip9, district = LOCATIONS[key]
    state_name, state_fips = STATES[state]
    names = {
        "recipient": ("recipient_country_code", "recipient_country_name", "recipient_city_name",
                      "prime_award_transaction_recipient_county_fips_code", "recipient_county_name",
                      "prime_award_transaction_recipient_state_fips_code", "recipient_state_code",
                      "recipient_state_name", "recipient_zip_4_code", "prime_award_transaction_recipient_cd_original",
                      "prime_award_transaction_recipient_cd_current"),
        "pop": ("primary_place_of_performance_country_code", "primary_place_of_performance_country_name",
                "primary_place_of_performance_city_name",
                "prime_award_transaction_place_of_performance_county_fips_code",
                "primary_place_of_performance_county_name",
                "prime_award_transaction_place_of_performance_state_fips_code",
                "primary_place_of_performance_state_code", "primary_place_of_performance_state_name",
                "primary_place_of_performance_zip_4", "prime_award_transaction_place_of_performance_cd_original",
                "prime_award_transaction_place_of_performance_cd_current"),
    }[prefix]
    values = ("USA", "UNITED STATES", city, state_fips + county_fips, county, state_fips, state, state_name, zip9,
              f"{state}-{district}", f"{state}-{district}")
    return dict(zip(names, values))


@cache
def _bool_columns() -> tuple[str, ...]:
    return tuple(c for c, kind in current_columns().items() if kind == "bool")


@cache
def _recipient_frame() -> pl.DataFrame:
    """One row per recipient: every recipient-level output column plus helpers (prefixed _)."""
    records = []
    for i, r in enumerate(_recipients()):
        parent = r.parent or r.name
        small = r.profile in SMALL_PROFILES
        flags = set(BASE_FLAGS) | set(PROFILE_FLAGS[r.profile])
        if r.name.endswith("LLC"):
            flags.add("limited_liability_corporation")
        if r.name.endswith(("L.P.", "LLP")):
            flags.add("partnership_or_limited_liability_partnership")
        record = {
            "recipient_uei": _uei(r.name),
            "recipient_duns": _duns(r.name),
            "recipient_parent_uei": _uei(parent),
            "recipient_parent_duns": _duns(parent),
            "recipient_parent_name": parent,
            "cage_code": _ident("cage:" + r.name, 5, UEI_ALPHABET),
            "recipient_address_line_1": r.street,
            "recipient_phone_number": _ident("phone:" + r.name, 10, "0123456789").replace("0", "7", 1),
            "recipient_fax_number": _ident("fax:" + r.name, 10, "0123456789").replace("0", "7", 1) if small else None,
            "contracting_officers_determination_of_business_size": (
                "SMALL BUSINESS" if small else "OTHER THAN SMALL BUSINESS"),
            "contracting_officers_determination_of_business_size_code": "S" if small else "O",
            "organizational_type": "PARTNERSHIP" if r.name.endswith(("L.P.", "LLP")) else "CORPORATE NOT TAX EXEMPT",
            "annual_revenue": str(2_000_000 + 731_000 * i) if small else None,
            "number_of_employees": str(12 + 7 * i) if small else None,
            "_name": r.name,
            "_alias": r.alias[0] if r.alias else r.name,
            "_alias_per_mille": r.alias[1] if r.alias else 0,
            "_old_name": r.old_name[0] if r.old_name else r.name,
            "_renamed_day": _day(r.old_name[1]) if r.old_name else 0,
            "_set_aside": PROFILE_SET_ASIDE.get(r.profile, "NONE"),
            "_size": 0 if small else 1,
            "_location": LOCATION_KEYS.index(r.location),
            **_location_columns("recipient", r.location),
            **{c: "t" if c in flags else "f" for c in _bool_columns()},
        }
        records.append(record)
    return pl.DataFrame(records, infer_schema_length=None)


@cache
def _location_frame() -> pl.DataFrame:
    return pl.DataFrame([_location_columns("pop", key) for key in LOCATION_KEYS])


@cache
def _office_list() -> tuple[tuple[str, str, str, str], ...]:
    """Flat (subtier, office code, office name, old PIID prefix)."""
    return tuple((sub, *office) for sub in SUBTIER_CODES for office in OFFICES[sub])


@cache
def _vehicle_list() -> tuple[tuple[str, str, str, str], ...]:
    """Flat external parent IDVs: recipients' own vehicles plus one GSA schedule per recipient."""
    vehicles = {v for r in _recipients() for v in r.vehicles}
    vehicles |= {_gsa_schedule(r.name) for r in _recipients()}
    return tuple(sorted(vehicles))


def _gsa_schedule(name: str) -> tuple[str, str, str, str]:
    """The recipient's own (pre-2017 style) GSA schedule, e.g. GS35F0119Y."""
    code = _ident("schedule:" + name, 6, "0123456789")
    prefix = ("GS35F", "GS07F", "GS10F")[int(code[0]) % 3]
    return (prefix + code[1:5] + UEI_ALPHABET[int(code[5]) + 10], "4732", "C", "M")


@dataclass(frozen=True)
class _Tables:
    kinds: _Weights
    sizes: _Weights  # by kind
    recipients: _Weights
    agencies: _Weights  # by recipient
    lines: _Weights  # by recipient
    offices: _Weights  # by subtier index
    funding: _Weights  # by subtier index
    sites: _Weights  # by subtier index -> location index
    vehicles: _Weights  # by recipient -> vehicle index
    idv_types: _Weights
    buckets: _Weights  # by kind
    phrases: _Weights  # by product line -> phrase index
    tails: _Weights
    actions: _Weights  # by sign class (0 zero, 1 negative, 2 positive) -> action index
    mod_texts: _Weights  # by action index -> mod text index
    igf: _Weights
    coded: dict[str, tuple[str, _Weights, list[str], list[str]]]  # column -> (parent helper, weights, codes, labels)


def _coded_weights(by_parent: dict, parents: int) -> tuple[_Weights, list[str], list[str]]:
    codes, labels, options = [], [], []
    for parent in range(parents):
        row = []
        for code, label, share in by_parent.get(parent, by_parent.get(None, ())):
            codes.append(code)
            labels.append(label)
            row.append((len(codes) - 1, share))
        options.append(row)
    return _weights(options), codes, labels


@cache
def _tables() -> _Tables:
    recipients = _recipients()
    offices = _office_list()
    vehicles = _vehicle_list()
    phrases = [p for line in PRODUCT_LINES.values() for p in line[3]]
    mod_texts = [t for texts in MOD_TEXTS.values() for t in texts]
    coded = {column: (by, *_coded_weights(by_value, len(CODED_BY[by]))) for column, (by, by_value) in CODED.items()}
    return _Tables(
        kinds=_weights([[(k, spec[4]) for k, spec in enumerate(AWARD_KINDS)]]),
        sizes=_weights([[(n + 1, w) for n, w in enumerate(TRANSACTIONS_PER_AWARD[: spec[5]])] for spec in AWARD_KINDS]),
        recipients=_weights([[(i, r.share) for i, r in enumerate(recipients)]]),
        agencies=_weights([[(SUBTIER_CODES.index(s), w) for s, w in (r.agencies or DEFAULT_AGENCY_SHARES).items()]
                           for r in recipients]),
        lines=_weights([[(LINE_NAMES.index(line), w) for line, w in r.lines.items()] for r in recipients]),
        offices=_weights([[(i, 1) for i, o in enumerate(offices) if o[0] == sub] for sub in SUBTIER_CODES]),
        funding=_weights([[(SUBTIER_CODES.index(f), w) for f, w in FUNDING.get(sub, {sub: 1}).items()]
                          for sub in SUBTIER_CODES]),
        sites=_weights([[(LOCATION_KEYS.index(k), 1) for k in AGENCY_SITES[sub]] for sub in SUBTIER_CODES]),
        vehicles=_weights([[(vehicles.index(v), 3) for v in r.vehicles] + [(vehicles.index(_gsa_schedule(r.name)), 2)]
                           for r in recipients]),
        idv_types=_weights([[(i, share) for i, (_, _, share) in enumerate(AGENCY_IDV_TYPES)]]),
        buckets=_weights([[(b, w) for b, w in enumerate(AMOUNT_SHARES[k])] for k in range(len(AWARD_KINDS))]),
        phrases=_weights([[(phrases.index(p), 1) for p in line[3]] for line in PRODUCT_LINES.values()]),
        tails=_weights([[(i, 1) for i in range(len(LONG_TAILS))]]),
        actions=_weights([[(a, spec[1][cls]) for a, spec in enumerate(ACTION_TYPES.values())] for cls in range(3)]),
        mod_texts=_weights([[(mod_texts.index(t), MOD_TEXT_SHARES[j]) for j, t in enumerate(texts)]
                            for texts in MOD_TEXTS.values()]),
        igf=_weights([[(i, share) for i, (_, _, share) in enumerate(INHERENTLY_GOVERNMENTAL)]]),
        coded=coded,
    )


def _lookup(values: Sequence, index: pl.Series | pl.Expr, dtype: pl.DataType = pl.String) -> pl.Expr:
    """Expression mapping integer indexes to values[index]."""
    expr = index if isinstance(index, pl.Expr) else pl.lit(index)
    return pl.lit(pl.Series(values, dtype=dtype)).gather(expr)


# ---------------------------------------------------------------------------------------------------------
# Generation: awards, then transactions, then columns
# ---------------------------------------------------------------------------------------------------------


def _chunk(rng: _Rng, n: int, first_award: int, start_day: int, end_day: int) -> tuple[pl.DataFrame, int]:
    """n actions (numeric helper columns plus PIIDs), and the number of awards they cover."""
    awards = _awards(rng, n, first_award)
    tx = _transactions(rng, awards, start_day, end_day)
    tx = tx.with_columns(piid=_piid(), agency_id=_lookup(SUBTIER_CODES, pl.col("sub")))
    parent_piid = tx.filter(pl.col("k") == 0)["piid"].gather(tx["parent_row"])  # award rows -> their first action
    return tx.with_columns(parent_in_file_piid=parent_piid), awards.height


def _award_sizes(rng: _Rng, n: int) -> tuple[pl.Series, pl.Series]:
    """Award kinds and transaction counts summing exactly to n."""
    t = _tables()
    kind = rng.pick(t.kinds, n)
    size = rng.pick(t.sizes, kind)
    total = size.cum_sum()
    m = int(total.search_sorted(n, side="left")) + 1
    size = size.head(m).scatter(m - 1, size[m - 1] - (total[m - 1] - n))
    return kind.head(m), size


def _awards(rng: _Rng, n: int, first_award: int) -> pl.DataFrame:
    """One row per award: kind, size, recipient, agency, product line, parent IDV and per-award draws."""
    t = _tables()
    kind, size = _award_sizes(rng, n)
    m = len(kind)
    recipient = rng.pick(t.recipients, m)
    a = pl.DataFrame({
        "award": pl.int_range(first_award, first_award + m, eager=True),
        "kind": kind,
        "size": size,
        "rec": recipient,
        "sub": rng.pick(t.agencies, recipient),
        "line": rng.pick(t.lines, recipient),
        "idv_type": rng.pick(t.idv_types, m),
        "vehicle": rng.pick(t.vehicles, recipient),
        "in_file_parent": rng.chance(m, IN_FILE_PARENT_PER_MILLE),
    })
    idv_rows = a.select(pl.arg_where(pl.col("kind") == IDV)).to_series()
    parent_row = idv_rows.gather(rng.below(m, len(idv_rows))) if len(idv_rows) else pl.lit(0)
    a = a.with_columns(parent_row=parent_row, in_file_parent=pl.col("in_file_parent") & pl.lit(len(idv_rows) > 0)
                       & pl.col("kind").is_in([DELIVERY_ORDER, BPA_CALL]))
    inherit = pl.col("in_file_parent")
    parent_type = pl.col("idv_type").gather(pl.col("parent_row"))
    vehicle_type = _lookup([v[2] for v in _vehicle_list()], pl.col("vehicle"))
    a = a.with_columns(
        *[pl.when(inherit).then(pl.col(c).gather(pl.col("parent_row"))).otherwise(pl.col(c)).alias(c)
          for c in ("rec", "sub", "line")],
        kind=pl.when(pl.col("kind").is_in([DELIVERY_ORDER, BPA_CALL]))
        .then(pl.when(pl.when(inherit).then(parent_type == BPA_IDV).otherwise(vehicle_type == "E"))
              .then(pl.lit(BPA_CALL)).otherwise(pl.lit(DELIVERY_ORDER)))
        .otherwise(pl.col("kind")),
    )
    sub = a["sub"]
    funding = rng.pick(t.funding, sub)
    a = a.with_columns(
        off=rng.pick(t.offices, sub),
        fsub=funding,
        foff_other=rng.pick(t.offices, funding),
        site=rng.pick(t.sites, sub),
        at_site=rng.chance(m, 600),
        bucket=rng.pick(t.buckets, a["kind"]),
        amount_draw=rng.below(m, 2**31),
        day_draw=rng.below(m, 2**31),
        round_amount=rng.chance(m, 400),
        exercised_mult=rng.pick(_weights([EXERCISED_MULTIPLIERS]), m),
        options_mult=rng.pick(_weights([OPTION_MULTIPLIERS]), m),
        phrase=rng.pick(t.phrases, a["line"]),
        tail=pl.when(rng.chance(m, LONG_TAIL_PER_MILLE)).then(rng.pick(t.tails, m)).otherwise(pl.lit(None)),
        igf=rng.pick(t.igf, m),
        igf_prefix=rng.chance(m, 500),
        alias=rng.below(m, 1000),
        no_parent=rng.chance(m, 350),
        set_aside_none=rng.chance(m, 300),
        solicitation=rng.chance(m, 400),
        solicitation_lead=rng.below(m, 110) + 10,
        solicitation_serial=rng.below(m, 100_000),
        duration=rng.below(m, 1095) + 30,
        option_years=rng.below(m, 5),
        offers=rng.below(m, 7) + 2,
        file_c=rng.chance(m, 700),
        outlay_pct=rng.below(m, 51) + 50,
        object_class_alt=rng.chance(m, 200),
        parent_mod=rng.pick(_weights([PARENT_MODS]), m),
    )
    a = a.with_columns(_coded_draws(rng, a))
    return a.with_columns(parent_idv_type=pl.col("idv_type").gather(pl.col("parent_row")),
                          parent_draw=pl.col("amount_draw").gather(pl.col("parent_row")))


def _coded_draws(rng: _Rng, a: pl.DataFrame) -> list[pl.Series]:
    """Index into each coded column's (codes, labels) per award."""
    t = _tables()
    line_class = pl.Series([PRODUCT_LINES[name][2] for name in LINE_NAMES]).gather(a["line"])
    size = _recipient_frame()["_size"].gather(a["rec"])
    parents = {"kind": a["kind"], "line_class": line_class, "size": size, "none": a.height}
    return [rng.pick(weights, parents[parent]).alias("coded_" + column)
            for column, (parent, weights, _, _) in t.coded.items()]


def _transactions(rng: _Rng, awards: pl.DataFrame, start_day: int, end_day: int) -> pl.DataFrame:
    """Explode awards into actions: modification numbers, dates, amounts, action types."""
    t = _tables()
    sizes = awards["size"]
    row = pl.int_range(awards.height, eager=True).repeat_by(sizes).explode()
    tx = awards.select(pl.all().gather(row)).with_columns(row=row, k=pl.int_ranges(0, sizes, eager=True).explode())
    n = tx.height
    is_idv = pl.col("kind") == IDV
    tx = tx.with_columns(
        gap=pl.when(pl.col("k") == 0).then(0).otherwise(rng.below(n, 200) + 7),
        new_mod=(pl.col("k") == 0) | is_idv | ~rng.chance(n, 30),
        sign=pl.when(pl.col("k") == 0).then(2)
        .when(rng.chance(n, ZERO_MOD_PER_MILLE) | is_idv).then(0)
        .when(rng.chance(n, NEGATIVE_MOD_PER_MILLE)).then(1).otherwise(2),
        pct=rng.below(n, 1000),
        report_lag=rng.below(n, 5 * 86400) + 6 * 3600,
        modified_lag=rng.below(n, 120 * 86400) + 3600
        + pl.when(rng.chance(n, 50)).then(rng.below(n, 3 * 365) * 86400).otherwise(0),
        same_text=rng.chance(n, 550),
        idv_money=rng.chance(n, 50),
    )
    tx = tx.with_columns(
        cum_gap=pl.col("gap").cum_sum().over("row"),
        mod_seq=pl.col("new_mod").cast(pl.Int64).cum_sum().over("row") - 1,
        action=pl.when(pl.col("k") == 0).then(pl.lit(None)).otherwise(rng.pick(t.actions, tx["sign"])),
    )
    tx = tx.with_columns(
        tx_number=pl.int_range(pl.len()).over(["row", "mod_seq"]),
        mod_text=rng.pick(t.mod_texts, tx["action"].fill_null(0)),
    )
    return _with_dates(_with_amounts(tx), start_day, end_day)


def _with_dates(tx: pl.DataFrame, start_day: int, end_day: int) -> pl.DataFrame:
    """Base action day per award inside [start, end] (orders after their in-file parent), mods spread after it."""
    span_raw = tx.group_by("row", maintain_order=True).agg(pl.col("cum_gap").max()).get_column("cum_gap")
    awards = tx.filter(pl.col("k") == 0).select("in_file_parent", "parent_row", "day_draw").with_columns(
        span_raw=span_raw)

    def base_day(lower: pl.Expr) -> pl.Expr:
        room = pl.lit(end_day) - lower
        used = pl.min_horizontal(pl.col("span_raw"), room)
        return lower + (pl.col("day_draw") % (room - used + 1))

    awards = awards.with_columns(d0=base_day(pl.lit(start_day)))
    awards = awards.with_columns(
        d0=pl.when(pl.col("in_file_parent")).then(base_day(pl.col("d0").gather(pl.col("parent_row"))))
        .otherwise(pl.col("d0")),
    ).with_columns(span=pl.min_horizontal(pl.col("span_raw"), pl.lit(end_day) - pl.col("d0")))
    tx = tx.with_columns(
        d0=awards["d0"].gather(tx["row"]), span=awards["span"].gather(tx["row"]),
        span_raw=awards["span_raw"].gather(tx["row"]),
    )
    offset = pl.when(pl.col("span_raw") > 0).then(pl.col("cum_gap") * pl.col("span") // pl.col("span_raw")).otherwise(0)
    return tx.with_columns(action_day=pl.col("d0") + offset)


def _with_amounts(tx: pl.DataFrame) -> pl.DataFrame:
    """Obligations and option values in cents, per action and as running award totals."""
    lows = pl.Series([lo for lo, _ in AMOUNT_BUCKETS], dtype=pl.Int64)
    widths = pl.Series([hi - lo for lo, hi in AMOUNT_BUCKETS], dtype=pl.Int64)
    bucket = pl.col("bucket")
    dollars = pl.lit(lows).gather(bucket) + pl.col("amount_draw") % pl.lit(widths).gather(bucket)
    cents = pl.when(pl.col("round_amount")).then(dollars // 100 * 10_000).otherwise(
        dollars * 100 + pl.col("amount_draw") % 100)
    is_idv, base = pl.col("kind") == IDV, pl.col("k") == 0
    pct = pl.when(pl.col("sign") == 1).then(-(pl.col("pct") % 60 + 1)).when(pl.col("sign") == 2).then(
        pl.col("pct") % 120 + 5).otherwise(0)
    action = pl.col("action").fill_null(0)
    affects_exercised = _lookup([spec[2] for spec in ACTION_TYPES.values()], action, pl.Boolean)
    affects_all = _lookup([spec[3] for spec in ACTION_TYPES.values()], action, pl.Boolean)
    tx = tx.with_columns(
        obligation=pl.when(is_idv).then(pl.when(base & pl.col("idv_money")).then(cents // 1000).otherwise(0))
        .when(base).then(cents).otherwise(cents * pct // 100),
    )
    obligation = pl.col("obligation")
    idv_ceiling = pl.when(base).then(cents).when(pl.col("idv_money")).then(cents * (pl.col("pct") % 40 + 10) // 100)
    tx = tx.with_columns(
        exercised=pl.when(is_idv).then(0).when(base).then(obligation * pl.col("exercised_mult"))
        .when(affects_exercised).then(obligation).otherwise(0),
        all_options=pl.when(is_idv).then(idv_ceiling.otherwise(0))
        .when(base).then(obligation * pl.col("exercised_mult") * pl.col("options_mult"))
        .when(affects_all).then(obligation).otherwise(0),
    )
    return tx.with_columns(
        total_obligated=pl.col("obligation").cum_sum().over("row"),
        total_exercised=pl.col("exercised").cum_sum().over("row"),
        total_all=pl.col("all_options").cum_sum().over("row"),
        award_obligated=pl.col("obligation").sum().over("row"),
    )


# ---------------------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------------------

LEGACY_ONLY = ("annual_revenue", "number_of_employees", "commercial_item_test_program_code",
               "commercial_item_test_program")


def _money(cents: pl.Expr) -> pl.Expr:
    """Cents -> plain decimal string such as "-2500.00"."""
    size = cents.abs()
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str([sign, (size // 100).cast(pl.String), pl.lit("."), (size % 100).cast(pl.String).str.zfill(2)])


def _date_text(days: pl.Expr) -> pl.Expr:
    return days.cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d")


def _timestamp_text(seconds: pl.Expr) -> pl.Expr:
    return (seconds * 1000).cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%d %H:%M:%S")


def _fiscal_year(days: pl.Expr) -> pl.Expr:
    day = days.cast(pl.Int32).cast(pl.Date)
    return day.dt.year() + (day.dt.month() >= 10).cast(pl.Int32)


def _mod_number(seq: pl.Expr, style: pl.Expr) -> pl.Expr:
    """0 -> "0"; then P00001 / A00001 / plain numbers, by agency style."""
    padded = seq.cast(pl.String).str.zfill(5)
    return (pl.when(seq == 0).then(pl.lit("0"))
            .when(style == "N").then(seq.cast(pl.String))
            .otherwise(pl.concat_str([style, padded])))


def _piid() -> pl.Expr:
    """Award PIIDs: pre-FY2018 HSCECR15F00012 style, later 70CMSD19C00000123 style; unique by award number."""
    offices = _office_list()
    award = pl.col("award")
    serial = award // 100_000 * 100_000 + award % 100_000 * 7919 % 100_000
    year = (_fiscal_year(pl.col("d0")) % 100).cast(pl.String).str.zfill(2)
    kind_letter = _lookup([k[3] for k in AWARD_KINDS], pl.col("kind"))
    idv_letter = _lookup([t[1] for t in AGENCY_IDV_TYPES], pl.col("idv_type"))
    letter = pl.when(pl.col("kind") == IDV).then(idv_letter).otherwise(kind_letter)
    new = pl.col("d0") >= _day(NEW_PIID_FROM)
    old_letter = pl.when(pl.col("kind").is_in([DELIVERY_ORDER, BPA_CALL]) & ~pl.col("in_file_parent")).then(
        pl.lit("J")).otherwise(letter)
    return (pl.when(new)
            .then(pl.concat_str([_lookup([o[1] for o in offices], pl.col("off")), year, letter,
                                 serial.cast(pl.String).str.zfill(8)]))
            .otherwise(pl.concat_str([_lookup([o[3] for o in offices], pl.col("off")), year, old_letter,
                                      serial.cast(pl.String).str.zfill(5)])))


def _columns(tx: pl.DataFrame) -> pl.DataFrame:
    """All output columns (strings) for the actions in tx, in current order plus LEGACY_ONLY."""
    recipients = _recipient_frame()
    pop = pl.when(tx["at_site"]).then(tx["site"]).otherwise(recipients["_location"].gather(tx["rec"]))
    frame = pl.concat([
        tx,
        recipients.select(pl.all().gather(tx["rec"])),
        _location_frame().select(pl.all().gather(tx.select(pop).to_series())),
    ], how="horizontal")
    return frame.select(_output_exprs())


@cache
def _output_exprs() -> tuple[pl.Expr, ...]:
    """One expression per wide column: computed, passed through from the lookup frames, or null."""
    exprs = {
        **_award_and_key_columns(),
        **_agency_columns(),
        **_recipient_columns(),
        **_money_and_date_columns(),
        **_description_columns(),
        **_coded_columns(),
    }
    passthrough = set(_recipient_frame().columns) | set(_location_frame().columns)
    return tuple(
        exprs[c].alias(c) if c in exprs else pl.col(c) if c in passthrough else pl.lit(None, pl.String).alias(c)
        for c in (*current_columns(), *LEGACY_ONLY)
    )


def _parent_columns() -> dict[str, pl.Expr]:
    """Orders' parent IDV: one in this file, or a vehicle held elsewhere (GSA schedule, EAGLE II, SEWP)."""
    vehicles = _vehicle_list()
    own_schedule = _lookup([vehicles.index(_gsa_schedule(r.name)) for r in _recipients()], pl.col("rec"), pl.Int64)
    new_style = _lookup([v[0].startswith("47Q") for v in vehicles], pl.col("vehicle"), pl.Boolean)
    vehicle = pl.when(new_style & (pl.col("d0") < _day(NEW_PIID_FROM))).then(own_schedule).otherwise(pl.col("vehicle"))
    is_order = pl.col("kind").is_in([DELIVERY_ORDER, BPA_CALL])
    in_file = pl.col("in_file_parent")
    parent_idv_type = _lookup([t[0] for t in AGENCY_IDV_TYPES], pl.col("parent_idv_type"))
    parent_multiple = pl.when(pl.col("parent_draw") % 3 == 0).then(pl.lit("M")).otherwise(pl.lit("S"))

    def either(in_file_value: pl.Expr, vehicle_field: int) -> pl.Expr:
        external = _lookup([v[vehicle_field] for v in vehicles], vehicle)
        return pl.when(~is_order).then(pl.lit(None, pl.String)).when(in_file).then(in_file_value).otherwise(external)

    type_code = either(parent_idv_type, 2)
    multiple = either(parent_multiple, 3)
    agency = either(pl.col("agency_id"), 1)
    return {
        "parent_award_agency_id": agency,
        "parent_award_agency_name": agency.replace_strict(PARENT_AGENCY_NAMES, default=None),
        "parent_award_id_piid": either(pl.col("parent_in_file_piid"), 0),
        "parent_award_modification_number": pl.when(is_order).then(
            _mod_number(pl.col("parent_mod"), pl.lit("P"))),
        "parent_award_type_code": type_code,
        "parent_award_type": type_code.replace_strict(IDV_TYPES, default=None),
        "parent_award_single_or_multiple_code": multiple,
        "parent_award_single_or_multiple": multiple.replace_strict(SINGLE_OR_MULTIPLE, default=None),
        "program_acronym": pl.when(is_order & ~in_file).then(
            _lookup([PROGRAM_ACRONYMS.get(v[0]) for v in vehicles], vehicle)),
    }


def _award_and_key_columns() -> dict[str, pl.Expr]:
    """Identifiers, unique keys (award-sources.md 2.1), award / IDV type and action type."""
    parents = _parent_columns()
    is_idv = pl.col("kind") == IDV
    style = _lookup([s[4] for s in SUBTIERS], pl.col("sub"))
    mod = _mod_number(pl.col("mod_seq"), style)
    tx_number = pl.when(is_idv).then(pl.lit(None, pl.String)).otherwise(pl.col("tx_number").cast(pl.String))
    parent_agency, parent_piid = parents["parent_award_agency_id"], parents["parent_award_id_piid"]
    transaction_key = pl.concat_str([
        pl.col("agency_id"), parent_agency.fill_null(NONE), pl.col("piid"), mod, parent_piid.fill_null(NONE),
        tx_number.fill_null(NONE)], separator="_")
    award_key = pl.when(is_idv).then(pl.concat_str([pl.lit("CONT_IDV"), pl.col("piid"), pl.col("agency_id")],
                                                   separator="_")).otherwise(
        pl.concat_str([pl.lit("CONT_AWD"), pl.col("piid"), pl.col("agency_id"), parent_piid.fill_null(NONE),
                       parent_agency.fill_null(NONE)], separator="_"))
    idv_type = pl.when(is_idv).then(_lookup([t[0] for t in AGENCY_IDV_TYPES], pl.col("idv_type")))
    multiple = pl.when(is_idv).then(pl.when(pl.col("amount_draw") % 3 == 0).then(pl.lit("M")).otherwise(pl.lit("S")))
    idc = pl.when(idv_type == "B").then(
        pl.when(pl.col("amount_draw") % 5 == 0).then(pl.lit("A")).otherwise(pl.lit("B")))
    return {
        **parents,
        "contract_transaction_unique_key": transaction_key.str.to_uppercase(),
        "contract_award_unique_key": award_key.str.to_uppercase(),
        "usaspending_permalink": pl.concat_str([pl.lit("https://www.usaspending.gov/award/"),
                                                award_key.str.to_uppercase(), pl.lit("/")]),
        "award_id_piid": pl.col("piid"),
        "modification_number": mod,
        "transaction_number": tx_number,
        "award_or_idv_flag": _lookup([k[0] for k in AWARD_KINDS], pl.col("kind")),
        "award_type_code": _lookup([k[1] for k in AWARD_KINDS], pl.col("kind")),
        "award_type": _lookup([k[2] for k in AWARD_KINDS], pl.col("kind")),
        "idv_type_code": idv_type,
        "idv_type": idv_type.replace_strict(IDV_TYPES, default=None),
        "multiple_or_single_award_idv_code": multiple,
        "multiple_or_single_award_idv": multiple.replace_strict(SINGLE_OR_MULTIPLE, default=None),
        "type_of_idc_code": idc,
        "type_of_idc": idc.replace_strict(TYPES_OF_IDC, default=None),
        "number_of_actions": pl.lit("1"),
        "action_type_code": _lookup(ACTION_CODES, pl.col("action")),
        "action_type": _lookup([a[0] for a in ACTION_TYPES.values()], pl.col("action")),
    }


def _agency_columns() -> dict[str, pl.Expr]:
    """Awarding and funding toptier, subtier and office."""
    offices = _office_list()
    funding_office = pl.when(pl.col("fsub") == pl.col("sub")).then(pl.col("off")).otherwise(pl.col("foff_other"))
    columns = {}
    for side, sub, office in (("awarding", pl.col("sub"), pl.col("off")), ("funding", pl.col("fsub"), funding_office)):
        toptier = _lookup([s[2] for s in SUBTIERS], sub)
        columns |= {
            f"{side}_agency_code": toptier,
            f"{side}_agency_name": toptier.replace_strict(TOPTIERS),
            f"{side}_sub_agency_code": _lookup(SUBTIER_CODES, sub),
            f"{side}_sub_agency_name": _lookup([s[1] for s in SUBTIERS], sub),
            f"{side}_office_code": _lookup([o[1] for o in offices], office),
            f"{side}_office_name": _lookup([o[2] for o in offices], office),
        }
    return columns


def _recipient_columns() -> dict[str, pl.Expr]:
    """Recipient names as reported (aliases, renames), parents (empty on some older awards), DUNS era, set-aside."""
    day = pl.col("action_day")
    renamed = day < pl.col("_renamed_day")
    reported = (pl.when(renamed).then(pl.col("_old_name"))
                .when(pl.col("alias") < pl.col("_alias_per_mille")).then(pl.col("_alias"))
                .otherwise(pl.col("_name")))
    self_parent = pl.col("recipient_parent_name") == pl.col("_name")
    keep_parent = ~(pl.col("no_parent") & (pl.col("d0") < _day(date(2017, 1, 1))))
    parent_name = pl.when(keep_parent).then(
        pl.when(self_parent & renamed).then(pl.col("_old_name")).otherwise(pl.col("recipient_parent_name")))
    has_duns = day < _day(DUNS_RETIRED)
    set_aside = pl.when((pl.col("_size") == 0) & ~pl.col("set_aside_none")).then(pl.col("_set_aside")).otherwise(
        pl.lit("NONE"))
    set_aside = pl.when((set_aside == "8A") & (pl.col("award") % 2 == 0)).then(pl.lit("8AN")).otherwise(set_aside)
    return {
        "recipient_name": reported,
        "recipient_name_raw": reported,
        "recipient_duns": pl.when(has_duns).then(pl.col("recipient_duns")),
        "recipient_parent_uei": pl.when(keep_parent).then(pl.col("recipient_parent_uei")),
        "recipient_parent_duns": pl.when(keep_parent & has_duns).then(pl.col("recipient_parent_duns")),
        "recipient_parent_name": parent_name,
        "recipient_parent_name_raw": parent_name,
        "type_of_set_aside_code": set_aside,
        "type_of_set_aside": set_aside.replace_strict(SET_ASIDES),
    }


def _money_and_date_columns() -> dict[str, pl.Expr]:
    """Amounts, dates and timestamps, File C account columns (awards from 2017 on)."""
    is_idv = pl.col("kind") == IDV
    file_c = pl.col("file_c") & ~is_idv & (pl.col("d0") >= _day(date(2017, 1, 1)))
    outlay = pl.when(file_c & (pl.col("award_obligated") > 0)).then(
        _money(pl.col("award_obligated") * pl.col("outlay_pct") // 100))
    end = pl.col("d0") + pl.when(is_idv).then(5 * 365).otherwise(pl.col("duration"))
    funding = pl.col("fsub")
    toptier = _lookup([s[2] for s in SUBTIERS], funding)
    account = _lookup([s[5] for s in SUBTIERS], funding)
    fiscal = _fiscal_year(pl.col("d0"))
    no_year = funding.is_in([SUBTIER_CODES.index("7003"), SUBTIER_CODES.index("4732")])
    period = pl.when(no_year).then(pl.lit("X")).otherwise(
        pl.concat_str([fiscal.cast(pl.String), pl.lit("/"), (fiscal + 1).cast(pl.String)]))
    line_class = _lookup([PRODUCT_LINES[name][2] for name in LINE_NAMES], pl.col("line"), pl.Int64)
    object_class = pl.when(pl.col("object_class_alt")).then(pl.lit("25.1: Advisory and assistance services")).otherwise(
        _lookup([OBJECT_CLASSES[c] for c in range(len(LINE_CLASSES))], line_class))
    initial = pl.col("action_day") * 86400 + pl.col("report_lag")
    return {
        "federal_action_obligation": _money(pl.col("obligation")),
        "total_dollars_obligated": _money(pl.col("total_obligated")),
        "total_outlayed_amount_for_overall_award": outlay,
        "base_and_exercised_options_value": _money(pl.col("exercised")),
        "current_total_value_of_award": _money(pl.col("total_exercised")),
        "base_and_all_options_value": _money(pl.col("all_options")),
        "potential_total_value_of_award": _money(pl.col("total_all")),
        "action_date": _date_text(pl.col("action_day")),
        "action_date_fiscal_year": _fiscal_year(pl.col("action_day")).cast(pl.String),
        "period_of_performance_start_date": _date_text(pl.col("d0")),
        "period_of_performance_current_end_date": _date_text(end),
        "period_of_performance_potential_end_date": _date_text(end + pl.col("option_years") * 365),
        "ordering_period_end_date": pl.when(is_idv).then(_date_text(end)),
        "solicitation_date": pl.when(pl.col("solicitation")).then(
            _date_text(pl.col("d0") - pl.col("solicitation_lead"))),
        "solicitation_identifier": pl.when(pl.col("solicitation") & pl.col("kind").is_in([IDV, DEFINITIVE])).then(
            pl.concat_str([_lookup([o[1] for o in _office_list()], pl.col("off")),
                           (fiscal % 100).cast(pl.String).str.zfill(2), pl.lit("R"),
                           pl.col("solicitation_serial").cast(pl.String).str.zfill(5)])),
        "treasury_accounts_funding_this_award": pl.when(file_c).then(
            pl.concat_str([toptier, period, account, pl.lit("000")], separator="-")),
        "federal_accounts_funding_this_award": pl.when(file_c).then(pl.concat_str([toptier, account], separator="-")),
        "object_classes_funding_this_award": pl.when(file_c).then(object_class),
        "program_activities_funding_this_award": pl.when(file_c).then(_lookup([s[6] for s in SUBTIERS], funding)),
        "initial_report_date": _timestamp_text(initial),
        "last_modified_date": _timestamp_text(initial + pl.col("modified_lag")),
    }


def _description_columns() -> dict[str, pl.Expr]:
    """Descriptions (IGF prefixes, long tails, modification texts), PSC and NAICS."""
    phrases = [p for line in PRODUCT_LINES.values() for p in line[3]]
    mod_texts = [t for texts in MOD_TEXTS.values() for t in texts]
    igf_codes = [g[0] for g in INHERENTLY_GOVERNMENTAL]
    igf = _lookup(igf_codes, pl.col("igf"))
    idv_prefix = pl.when(pl.col("kind") == IDV).then(
        _lookup([IDV_DESCRIPTION_PREFIX[t[0]] for t in AGENCY_IDV_TYPES], pl.col("idv_type")))
    award_text = pl.concat_str([
        pl.when(pl.col("igf_prefix")).then(pl.concat_str([pl.lit("IGF::"), igf, pl.lit("::IGF ")])),
        idv_prefix,
        _lookup(phrases, pl.col("phrase")),
        pl.when(pl.col("tail").is_not_null()).then(pl.concat_str([pl.lit(" "), _lookup(LONG_TAILS, pl.col("tail"))])),
    ], ignore_nulls=True)
    text = pl.when((pl.col("k") == 0) | pl.col("same_text")).then(award_text).otherwise(
        _lookup(mod_texts, pl.col("mod_text")))
    return {
        "transaction_description": text,
        "prime_award_base_transaction_description": award_text,
        "inherently_governmental_functions": igf,
        "inherently_governmental_functions_description": _lookup(
            [g[1] for g in INHERENTLY_GOVERNMENTAL], pl.col("igf")),
        "product_or_service_code": _lookup([PRODUCT_LINES[n][0] for n in LINE_NAMES], pl.col("line")),
        "product_or_service_code_description": _lookup([PSC[PRODUCT_LINES[n][0]] for n in LINE_NAMES], pl.col("line")),
        "naics_code": _lookup([PRODUCT_LINES[n][1] for n in LINE_NAMES], pl.col("line")),
        "naics_description": _lookup([NAICS[PRODUCT_LINES[n][1]] for n in LINE_NAMES], pl.col("line")),
    }


def _coded_columns() -> dict[str, pl.Expr]:
    """Code + label pairs drawn per award, constants, and the ones that depend on competition or award type."""
    columns = {}
    for column, (_, _, codes, labels) in _tables().coded.items():
        columns[f"{column}_code"] = _lookup(codes, pl.col("coded_" + column))
        columns[column] = _lookup(labels, pl.col("coded_" + column))
    for code_column, code, label_column, label in CONSTANT_CODED.values():
        columns[code_column] = pl.lit(code)
        columns[label_column] = pl.lit(label)
    not_competed = columns["extent_competed_code"].is_in(["B", "C", "G"])
    is_order = pl.col("kind").is_in([DELIVERY_ORDER, BPA_CALL])
    for column, keep in (("other_than_full_and_open_competition", not_competed),
                         ("fair_opportunity_limited_sources", is_order)):
        columns[f"{column}_code"] = pl.when(keep).then(columns[f"{column}_code"])
        columns[column] = pl.when(keep).then(columns[column])
    columns["number_of_offers_received"] = pl.when(not_competed).then(pl.lit("1")).otherwise(
        pl.col("offers").cast(pl.String))
    columns["interagency_contracting_authority_code"] = pl.lit("X")
    columns["interagency_contracting_authority"] = pl.lit("NOT APPLICABLE")
    columns["small_business_competitiveness_demonstration_program"] = pl.lit("f")
    return columns


# ---------------------------------------------------------------------------------------------------------
# Layouts and malformed rows
# ---------------------------------------------------------------------------------------------------------


@cache
def _layout_columns(layout: str) -> tuple[str, ...]:
    return tuple(current_columns()) if layout == "current" else legacy_2018_columns()


def _to_layout(wide: pl.DataFrame, layout: str) -> pl.DataFrame:
    """Select (and for legacy, rename) the wide columns into the requested layout."""
    if layout == "current":
        return wide.select(list(current_columns()))
    districts = {"recipient_congressional_district", "primary_place_of_performance_congressional_district"}
    exprs = []
    for name in legacy_2018_columns():
        source = pl.col(RENAMES.get(name, name))
        exprs.append((source.str.slice(3) if name in districts else source).alias(name))
    return wide.select(exprs)


def _with_thousands(amount: str) -> str:
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, _, cents = digits.partition(".")
    return f"{sign}{int(whole):,}.{cents}"


def _corrupt(frame: pl.DataFrame, local: list[tuple[int, str, int]]) -> pl.DataFrame:
    """Apply malformed kinds 1-4 to (row, kind, plan index) entries; extra_field is done when writing."""
    edits: dict[str, dict[int, str | None]] = {}
    for row, kind, index in local:
        if kind == "day_first_date":
            value = frame["action_date"][row]
            edits.setdefault("action_date", {})[row] = f"{value[8:10]}/{value[5:7]}/{value[:4]}"
        elif kind == "non_numeric_amount":
            value = _with_thousands(frame["federal_action_obligation"][row])
            use_comma = (index // len(MALFORMED_KINDS)) % 2 == 0 and "," in value
            edits.setdefault("federal_action_obligation", {})[row] = value if use_comma else "N/A"
        elif kind == "bad_id_length":
            duns = frame["recipient_duns"][row]
            edits.setdefault("recipient_duns", {})[row] = duns[1:] if duns else "12345678"
            if "recipient_uei" in frame.columns:
                edits.setdefault("recipient_uei", {})[row] = frame["recipient_uei"][row][:11]
        elif kind == "empty_piid":
            edits.setdefault("award_id_piid", {})[row] = None
    updates = []
    for column, values in edits.items():
        series = frame[column].clone()
        series.scatter(list(values), list(values.values()))
        updates.append(series)
    return frame.with_columns(updates) if updates else frame


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.sources.sample",
                                     description="Write a synthetic USAspending contract-transaction CSV.")
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=3000, help="data rows (default 3000)")
    parser.add_argument("--layout", choices=LAYOUTS, default="current", help="column layout (default current)")
    parser.add_argument("--seed", type=int, default=2018, help="random seed (default 2018)")
    parser.add_argument("--malformed", type=int, default=0, help="rows to corrupt (default 0)")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows generated per chunk (default 50000)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    path = write_transactions(args.out, args.rows, seed=args.seed, layout=args.layout, malformed=args.malformed,
                              chunk_rows=args.chunk_rows)
    print(f"wrote {path}: {args.rows} rows, {path.stat().st_size / 1e6:.1f} MB, {args.layout} layout, "
          f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


class SampleFeed(Feed):
    """The feed of generated data, offline: each window is one CSV of ``AWARDWATCH_SAMPLE_ROWS`` actions dated
    within it, the same for the same window and ``AWARDWATCH_SAMPLE_SEED`` (seed + the window's first day)."""

    name = "sample"

    def scopes(self, chosen) -> list[Scope]:
        return [Scope("sample")]

    def land(self, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
        path = into / f"sample_{window.start:%Y%m%d}_{window.end:%Y%m%d}.csv"
        write_transactions(path, self.settings.sample_rows, seed=self.settings.sample_seed + window.start.toordinal(),
                           start=window.start, end=window.end)
        return Landed([path], window.end if mode == NIGHTLY else None, [path.name])


if __name__ == "__main__":
    raise SystemExit(main())

