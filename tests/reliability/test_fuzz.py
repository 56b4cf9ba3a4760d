"""A few hundred generated hostile inputs through the CLI's ingest, in-process (issue 18, "Done when").

For each: the exit code is 0 (loaded, quarantined rows counted) or 1 (refused, one line on
stderr starting "error: "), never 2 (an unexpected error) or a traceback; and the warehouse's
transactions and awards change only when the summary says rows were inserted or updated (or,
for a refused multi-file input, when the message says which files were loaded before)."""

from __future__ import annotations

import os
import random
import re
import zipfile
from pathlib import Path

import duckdb

from awardwatch.schemas.layouts import current_columns
from tests.factories import row, run_cli, write_csv

SEED = 18
CASES = int(os.environ.get("FUZZ_CASES") or 250)  # FUZZ_CASES=1000 for a longer run
COLUMNS = list(current_columns())
AMOUNTS = ["١٢٣", "۱۲۳.٤٥", "１２３", "1e5", "--1", "1,000.00", " 7 ", "9" * 36 + ".99", "-" + "9" * 40, "0x10", "NaN", "", "12.345"]
BYTES = [b"\x00", b"\xff\xfe", b"\r", b'"', b'""', b"\xe2\x80", b"\n", b",", b"\x1b[31m"]
NAMES = [b"caf\xe9.csv", b"new\nline.csv", b"sp ace.csv", b"x" * 200 + b".csv", b"\xff\xfe.csv", b"tab\t.csv", b"--flag.csv", b"emoji\xf0\x9f\x92\xb0.csv"]


def csv_bytes(rng: random.Random, n: int, **values) -> bytes:
    """A valid current-layout CSV of n rows with random keys."""
    out = [",".join(COLUMNS)]
    for _ in range(n):
        r = row(piid=f"FZ{rng.randrange(10**8):08d}", **values)
        out.append(",".join(_q(r.get(c, "")) for c in COLUMNS))
    return ("\n".join(out) + "\n").encode()


def _q(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(ch in v for ch in ',"\n\r') else v


def mangle(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = rng.randrange(1, max(2, len(lines) - 1))
    kind = rng.randrange(6)
    if kind == 0:  # bad bytes in a value
        pos = rng.randrange(len(lines[i]) or 1)
        lines[i] = lines[i][:pos] + rng.choice(BYTES) + lines[i][pos:]
    elif kind == 1:  # short row
        lines[i] = b",".join(lines[i].split(b",")[: rng.randrange(1, len(COLUMNS))])
    elif kind == 2:  # long row
        lines[i] = lines[i] + b",extra" * rng.randrange(1, 4)
    elif kind == 3:  # a broken header
        lines[0] = lines[0].replace(rng.choice([b"action_date", b"award_id_piid", b"federal_action_obligation"]), b"nope", 1)
    elif kind == 4:  # garbage
        lines = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))]
    else:  # cut anywhere
        return data[: rng.randrange(len(data))]
    return b"\n".join(lines)


def make_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def case(rng: random.Random, folder: Path) -> Path:
    """One hostile input in ``folder``; returns the path to ingest."""
    folder.mkdir(parents=True)
    kind = rng.randrange(9)
    good = csv_bytes(rng, rng.randrange(1, 4))
    if kind == 0:
        return _write(folder / "m.csv", mangle(rng, good))
    if kind == 1:
        return _write(folder / "a.csv", csv_bytes(rng, rng.randrange(1, 3), amount=rng.choice(AMOUNTS)))
    if kind == 2:  # odd names
        path = Path(os.fsdecode(os.fsencode(folder) + b"/" + rng.choice(NAMES)))
        return _write(path, good if rng.random() < 0.7 else mangle(rng, good))
    if kind == 3:  # symlinks in a folder
        (folder / "in").mkdir()
        (folder / "in" / "passwd.csv").symlink_to("/etc/passwd")
        if rng.random() < 0.5:
            _write(folder / "in" / "ok.csv", good)
        return folder / "in"
    if kind == 4:  # nested ZIPs, non-CSV members
        inner = make_zip(folder / "inner.zip", {"b.csv": mangle(rng, good) if rng.random() < 0.3 else good})
        members = {"a.csv": good, "inner.zip": inner.read_bytes(), "notes.txt": b"hello"}
        return make_zip(folder / "outer.zip", dict(rng.sample(list(members.items()), rng.randrange(1, 4))))
    if kind == 5:  # hostile ZIPs
        choice = rng.randrange(5)
        if choice == 0:
            return make_zip(folder / "slip.zip", {"../../evil.csv": good})
        if choice == 1:
            return make_zip(folder / "empty.zip", {})
        if choice == 2:
            return make_zip(folder / "parts.zip", {"p1.csv": good, "p2.csv": rng.choice([b"", b"x", mangle(rng, good)])})
        if choice == 3:
            whole = make_zip(folder / "w.zip", {"a.csv": good * 3}).read_bytes()
            return _write(folder / "cut.zip", whole[: rng.randrange(10, len(whole))])
        return _write(folder / "fake.zip", b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(64)))
    if kind == 6:  # empty, header only, BOM, CRLF
        return _write(folder / "e.csv", rng.choice([b"", b"\n", good.split(b"\n")[0] + b"\n", b"\xef\xbb\xbf" + good, good.replace(b"\n", b"\r\n")]))
    if kind == 7:  # several files, one bad
        return _write_many(folder, rng, good)
    return _write(folder / "q.csv", good.replace(b"PALANTIR USG INC.", b'PALANTIR "USG INC.', 1) if rng.random() < 0.5
                  else good.replace(b'"FALCON', b'"FAL"CON', 1))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_many(folder: Path, rng: random.Random, good: bytes) -> Path:
    (folder / "many").mkdir()
    _write(folder / "many" / "1.csv", good)
    _write(folder / "many" / "2.csv", mangle(rng, csv_bytes(rng, 2)))
    return folder / "many"


def content(warehouse: Path) -> tuple:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return (con.execute("SELECT count(*), sum(hash(contract_transaction_unique_key, row_hash)) FROM transactions").fetchone(),
                con.execute("SELECT count(*), sum(hash(contract_award_unique_key, total_obligated_amount)) FROM awards").fetchone())
    finally:
        con.close()


def ingest(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    return run_cli("ingest", *args)


def test_hostile_inputs_get_one_line_and_change_nothing_they_should_not(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AWARDWATCH_DEBUG", raising=False)
    monkeypatch.setenv("AWARDWATCH_THREADS", "1")  # tiny files: fewer threads start faster
    rng = random.Random(SEED)
    wh = tmp_path / "w.duckdb"
    base = write_csv(tmp_path / "base.csv", [row(piid=f"BASE{i:05d}") for i in range(5)])
    assert ingest(capsys, monkeypatch, str(base), "-w", str(wh), "--no-publish")[0] == 0
    outcomes = {0: 0, 1: 0}
    for n in range(CASES):
        path = case(rng, tmp_path / f"case{n:03d}")
        before = content(wh)
        extra = ["--max-rejected", "1"] if rng.random() < 0.5 else []
        code, out, err = ingest(capsys, monkeypatch, str(path), "-w", str(wh), "--no-publish", *extra)
        where = f"case {n} ({path}): exit {code}, stderr {err!r}"
        assert code in (0, 1), where
        outcomes[code] += 1
        after = content(wh)
        if code == 1:
            assert err.startswith("error: ") and err.count("\n") == 1 and "unexpected" not in err, where
            if "loaded before this" not in err:
                assert after == before, where
        else:
            assert err == "", where
            m = re.search(r"inserted ([\d,]+) \+ updated ([\d,]+) .*: reconciled", out)
            assert m, where + out
            if m.group(1) == "0" and m.group(2) == "0":
                assert after == before, where
    assert outcomes[0] > 20 and outcomes[1] > 20, outcomes
