"""Local files: USAspending contract-transaction CSVs, and ZIPs holding them.

``land`` turns the paths a user gives into the CSV files to read, extracting
ZIP members (bulk downloads split at 1,000,000 rows per CSV; nested ZIPs too) into a
staging folder with guards against unsafe archives, and lists what it did not read. ``read_header`` and ``scan`` read a
CSV as text, streaming, with every row numbered; ``read_batches`` reads it as text in batches of rows, one at a time.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import polars as pl

from awardwatch.schemas.errors import InputError
from awardwatch.schemas.names import OVERFLOW, ROW

HEADER_BYTES = 1 << 20
MAX_UNZIPPED_BYTES = 64 << 30  # per archive
MAX_ZIP_RATIO = 400  # uncompressed / compressed, per member over 1 MiB (CSV is rarely over 30)
MAX_ZIP_DEPTH = 3  # a ZIP in a ZIP in a ZIP at most


@dataclass(frozen=True)
class SourceFile:
    """One CSV to read. ``name`` is what lineage records (``a.zip!part_1.csv`` for a member)."""

    name: str
    path: Path


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def display(path: Path | str) -> str:
    r"""A path or name as text that can be printed and stored: bytes that are not UTF-8 as ``\xNN``,
    control characters escaped (a file name may hold either)."""
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Skipped:
    """An input that was not read, and why (listed in the run's files and summary)."""

    name: str
    size: int
    why: str


def land(paths: list[Path], into: Path, *, max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
         skipped: list[Skipped] | None = None) -> list[SourceFile]:
    """Expands folders (their *.csv and *.zip) and ZIPs (their *.csv members, and the members of
    nested ZIPs, up to ``MAX_ZIP_DEPTH`` deep) into CSV files. What is not read is appended to
    ``skipped``: ZIP members that are not CSV or ZIP, symbolic links inside ZIPs, and symbolic
    links in a folder that point outside it."""
    skipped = [] if skipped is None else skipped
    files: list[SourceFile] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            inner = sorted((p for p in path.iterdir() if p.suffix.lower() in (".csv", ".zip")), key=lambda p: _natural(p.name))
            if not inner:
                raise InputError(f"{display(path)}: folder holds no .csv or .zip file")
            inside = [p for p in inner if _inside(p, path, skipped)]
            if not inside:
                raise InputError(f"{display(path)}: folder holds no .csv or .zip file of its own (symbolic links out of it are not followed)")
            files += land(inside, into, max_unzipped_bytes=max_unzipped_bytes, skipped=skipped)
        elif not path.exists():
            raise InputError(f"{display(path)}: no such file")
        elif path.suffix.lower() == ".zip" or _looks_like_zip(path):
            into.mkdir(parents=True, exist_ok=True)
            files += _unzip(path, Path(tempfile.mkdtemp(prefix="zip", dir=into)), [max_unzipped_bytes], skipped, display(path), 0)
        else:
            files.append(SourceFile(display(path), path if _utf8(path) else _alias(path, into)))
    return files


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _alias(path: Path, into: Path) -> Path:
    """A link with a UTF-8 name to a file whose name is not UTF-8 (the CSV reader takes text paths only)."""
    into.mkdir(parents=True, exist_ok=True)
    alias = Path(tempfile.mkdtemp(prefix="name", dir=into)) / "file.csv"
    alias.symlink_to(path.absolute())
    return alias


def _inside(p: Path, folder: Path, skipped: list[Skipped]) -> bool:
    """False (and noted in ``skipped``) for a symbolic link that resolves outside ``folder``."""
    if not p.is_symlink():
        return True
    target = p.resolve()
    if target.is_relative_to(folder.resolve()):
        return True
    skipped.append(Skipped(display(p), p.lstat().st_size, f"a symbolic link to {display(target)}, outside the folder; not followed"))
    return False


def _looks_like_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _is_symlink(member: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


def _unzip(path: Path, into: Path, budget: list[int], skipped: list[Skipped], name: str, depth: int) -> list[SourceFile]:
    """The CSVs of one archive (``name`` is how messages and lineage call it); ``budget`` holds
    the bytes all archives of this input may still expand to."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError):
        raise InputError(f"{name}: not a readable ZIP file (truncated or corrupt); download it again") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for m in members:
            pure = PurePosixPath(m.filename.replace("\\", "/"))
            if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", m.filename):
                raise InputError(f"{name}: ZIP entry {display(m.filename)!r} has an unsafe path; refusing the archive")
        declared = sum(m.file_size for m in members)
        if declared > budget[0]:
            raise InputError(f"{name}: ZIP declares {declared:,} bytes uncompressed, over the {budget[0]:,}-byte limit")
        readable = []
        for m in members:
            label = f"{name}!{display(m.filename)}"
            if _is_symlink(m):
                skipped.append(Skipped(label, m.file_size, "a symbolic link inside a ZIP; not followed"))
            elif m.filename.lower().endswith((".csv", ".zip")):
                readable.append(m)
            else:
                skipped.append(Skipped(label, m.file_size, "not a CSV file"))
        if not readable:
            others = f" (it holds {len(members)} other member(s), listed as skipped)" if members else ""
            raise InputError(f"{name}: ZIP holds no .csv file{others}")
        into.mkdir(parents=True, exist_ok=True)
        landed = []
        for i, member in enumerate(sorted(readable, key=lambda m: _natural(m.filename))):
            label = f"{name}!{display(member.filename)}"
            if member.file_size > (1 << 20) and member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1):
                raise InputError(f"{label}: compression ratio over {MAX_ZIP_RATIO}:1; refusing a likely ZIP bomb")
            nested = member.filename.lower().endswith(".zip")
            if nested and depth + 1 >= MAX_ZIP_DEPTH:
                raise InputError(f"{label}: ZIPs nested more than {MAX_ZIP_DEPTH} deep; refusing a likely ZIP bomb")
            target = into / f"{i:03d}{'.zip' if nested else '.csv'}"
            budget[0] -= _extract(archive, member, target, min(budget[0], member.file_size), label)
            if nested:
                landed += _unzip(target, into / f"{i:03d}", budget, skipped, label, depth + 1)
                target.unlink()
            else:
                landed.append(SourceFile(label, target))
        return landed


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int, label: str) -> int:
    """Copies one member in 1 MiB chunks, stopping at ``limit`` bytes (a member may lie about its size)."""
    written = 0
    try:
        with archive.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise InputError(f"{label}: expands past its declared size; refusing a likely ZIP bomb")
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise InputError(f"{label}: ZIP member is corrupt or unsupported ({exc}); download it again") from None
    except RuntimeError as exc:  # an encrypted member
        raise InputError(f"{label}: ZIP member cannot be read ({exc}); give an unencrypted ZIP") from None
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


def read_batches(f: SourceFile, header: list[str], batch_rows: int, rows: int, *, lossy: bool = True) -> Iterator[pl.DataFrame]:
    """The data rows of ``scan`` in batches of about ``batch_rows`` rows (the file holds ``rows``), each batch
    read on its own from its bytes, so that memory holds one batch (a streaming scan reads ahead of its
    consumer: about 1 GB of a wide file). A batch is a run of whole rows (``_whole_rows``); rows are numbered
    on from the batches before it."""
    with open(f.path, "rb") as fh:
        _whole_rows(fh, 0)  # the header
        start, size = fh.tell(), os.fstat(fh.fileno()).st_size
        step = max(1, (size - start) * batch_rows // max(rows, 1))
        read = 0
        while chunk := _whole_rows(fh, step):
            batch = pl.scan_csv(
                io.BytesIO(chunk),
                has_header=False,
                schema={name: pl.String for name in header} | {OVERFLOW: pl.String},
                missing_columns="insert",
                truncate_ragged_lines=True,
                encoding="utf8-lossy" if lossy else "utf8",
                row_index_name=ROW,
                row_index_offset=1 + read,
                quote_char='"',
            ).collect()
            read += batch.height
            yield batch


def _whole_rows(fh, size: int) -> bytes:
    """From the start of a row: ``size`` bytes, then the rest of the row they end in. A row ends at a line break
    with an even number of quotes before it, as ``schemas.validate.field_counts`` counts rows (a file whose
    quoting the CSV reader sees otherwise is refused: its rows and those counts differ)."""
    data = fh.read(size)
    parity, rest = data.count(b'"') % 2, []
    if not parity and data.endswith(b"\n"):  # the bytes end where a row does
        return data
    while line := fh.readline():  # the line the bytes end in, then more while a quoted value is open
        rest.append(line)
        parity = (parity + line.count(b'"')) % 2
        if not parity:
            break
    return data + b"".join(rest)


_WELL_QUOTED = re.compile(rb'(?:[^",\r\n]*|"(?:[^"]|"")*")(?:,(?:[^",\r\n]*|"(?:[^"]|"")*"))*\r?\n?')


def bad_quote(path: Path) -> tuple[int, int, str] | None:
    """Where a CSV's quoting first breaks: (data row, line of the file, what is wrong), or None.
    Only for a file the fast reader refused: lines are matched by one regular expression, and
    only lines holding a multi-line value or a broken quote are walked byte by byte."""
    row, start, open_quote = -1, 0, False  # row 0 is the header
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not open_quote:
                row, start = row + 1, number
                if b'"' not in line or _WELL_QUOTED.fullmatch(line):
                    continue
            state = "quoted" if open_quote else "start"
            for byte in line.rstrip(b"\r\n"):
                c = chr(byte)
                if state == "start":
                    state = "quoted" if c == '"' else ("start" if c == "," else "plain")
                elif state == "plain":
                    if c == '"':
                        return row, number, 'a quote (") inside a value that does not start with one'
                    state = "start" if c == "," else "plain"
                elif state == "quoted":
                    state = "closed" if c == '"' else "quoted"
                elif c == '"':  # closed: a doubled quote is a quote inside the value
                    state = "quoted"
                elif c == ",":
                    state = "start"
                else:
                    return row, number, "characters after the closing quote of a value"
            open_quote = state == "quoted"
    if open_quote:
        return row, start, "a quoted value that is never closed"
    return None


def parse_error(f: SourceFile, rows_read: int, problem: str) -> InputError:
    """The one line for a CSV the reader refused: the data row and the line of the file when they can be found."""
    found = bad_quote(f.path)
    if found is None:
        return InputError(f"{f.name}: cannot parse as CSV after data row {rows_read:,}: {problem}; fix the file or download it again")
    row, line, what = found
    return InputError(f"{f.name}: cannot parse as CSV at data row {row:,} (line {line:,} of the file): {what}; "
                      'a quote inside a value is written "" inside a quoted value; fix the file or download it again')


def remove_landed(into: Path) -> None:
    shutil.rmtree(into, ignore_errors=True)
