"""Local files: USAspending contract-transaction CSVs, and ZIPs holding them.

``land`` turns the paths a user gives into the CSV files to read, extracting
ZIP members (bulk downloads split at 1,000,000 rows per CSV) into a staging
folder with guards against unsafe archives. ``read_header`` and ``scan`` read a
CSV as text, streaming, with every row numbered.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import polars as pl

from schemas.errors import InputError

OVERFLOW = "__overflow__"  # catches the fields of a row that has more than the header
ROW = "source_row"  # data row number in its file: 1 is the first row after the header
HEADER_BYTES = 1 << 20
MAX_UNZIPPED_BYTES = 64 << 30  # per archive
MAX_ZIP_RATIO = 400  # uncompressed / compressed, per member over 1 MiB (CSV is rarely over 30)


@dataclass(frozen=True)
class SourceFile:
    """One CSV to read. ``name`` is what lineage records (``a.zip!part_1.csv`` for a member)."""

    name: str
    path: Path


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def land(paths: list[Path], into: Path, *, max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> list[SourceFile]:
    """Expands folders (their *.csv and *.zip) and ZIPs (their *.csv members) into CSV files."""
    files: list[SourceFile] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            inner = sorted((p for p in path.iterdir() if p.suffix.lower() in (".csv", ".zip")), key=lambda p: _natural(p.name))
            if not inner:
                raise InputError(f"{path}: folder holds no .csv or .zip file")
            files += land(inner, into, max_unzipped_bytes=max_unzipped_bytes)
        elif not path.exists():
            raise InputError(f"{path}: no such file")
        elif path.suffix.lower() == ".zip" or _looks_like_zip(path):
            files += _unzip(path, into / f"{len(files):03d}_{path.stem}", max_unzipped_bytes)
        else:
            files.append(SourceFile(str(path), path))
    return files


def _looks_like_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _unzip(path: Path, into: Path, max_bytes: int) -> list[SourceFile]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a readable ZIP file (truncated or corrupt); download it again") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for m in members:
            pure = PurePosixPath(m.filename.replace("\\", "/"))
            if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", m.filename):
                raise InputError(f"{path}: ZIP entry {m.filename!r} has an unsafe path; refusing the archive")
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise InputError(f"{path}: ZIP declares {declared:,} bytes uncompressed, over the {max_bytes:,}-byte limit")
        csvs = sorted((m for m in members if m.filename.lower().endswith(".csv")), key=lambda m: _natural(m.filename))
        if not csvs:
            raise InputError(f"{path}: ZIP holds no .csv file")
        into.mkdir(parents=True, exist_ok=True)
        landed = []
        budget = max_bytes
        for i, member in enumerate(csvs):
            if member.file_size > (1 << 20) and member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1):
                raise InputError(f"{path}!{member.filename}: compression ratio over {MAX_ZIP_RATIO}:1; refusing a likely ZIP bomb")
            target = into / f"{i:03d}_{PurePosixPath(member.filename).name}"
            budget -= _extract(archive, member, target, min(budget, member.file_size), path)
            landed.append(SourceFile(f"{path}!{member.filename}", target))
        return landed


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int, path: Path) -> int:
    """Copies one member in 1 MiB chunks, stopping at ``limit`` bytes (a member may lie about its size)."""
    written = 0
    try:
        with archive.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise InputError(f"{path}!{member.filename}: expands past its declared size; refusing a likely ZIP bomb")
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{path}!{member.filename}: ZIP member is corrupt ({exc}); download it again") from None
    return written


def read_header(f: SourceFile) -> list[str]:
    """The first record of a CSV, as column names."""
    with open(f.path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    if not head.strip():
        raise InputError(f"{f.name}: file is empty (no header row)")
    if b"\x00" in head.split(b"\n", 1)[0]:
        raise InputError(f"{f.name}: header contains a NUL byte; not a CSV text file")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the buffer's end
            line = head[: exc.start].count(b"\n") + 1
            if line == 1:
                raise InputError(f"{f.name}: header is not UTF-8 text (byte {exc.start})") from None
        text = head[: exc.start].decode("utf-8-sig")
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{f.name}: cannot read a CSV header ({exc})") from None
    return header


def has_suspect_bytes(path: Path, chunk: int = 8 << 20) -> bool:
    """Does the file hold a NUL byte or an encoded U+FFFD? (A byte search, much cheaper than
    looking into every value; a file without either needs no per-value byte checks.) Read in
    chunks rather than mapped: a mapping would count the whole file as resident memory."""
    marker = "\ufffd".encode()
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            if b"\x00" in block or marker in tail + block[:2] or marker in block:
                return True
            tail = block[-2:]
    return False


def is_not_utf8(exc: Exception) -> bool:
    """Is this polars error a strict read meeting bytes that are not UTF-8?"""
    return "utf-8" in str(exc).lower() or "utf8" in str(exc).lower()


def scan(f: SourceFile, header: list[str], *, lossy: bool = True) -> pl.LazyFrame:
    """Streams a CSV as text: one column per header name, ``OVERFLOW`` (non-null when a row
    has more fields than the header) and ``ROW``. ``lossy``: bytes that are not UTF-8 become
    U+FFFD; otherwise they make the read fail (see ``is_not_utf8``)."""
    schema = {name: pl.String for name in header} | {OVERFLOW: pl.String}
    return pl.scan_csv(
        f.path,
        has_header=False,
        skip_rows=1,
        schema=schema,
        missing_columns="insert",
        truncate_ragged_lines=True,
        encoding="utf8-lossy" if lossy else "utf8",
        row_index_name=ROW,
        row_index_offset=1,
        quote_char='"',
    )


def remove_landed(into: Path) -> None:
    shutil.rmtree(into, ignore_errors=True)
