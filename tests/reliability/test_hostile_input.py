"""Hostile and broken input: one clear line or quarantine rows, and the warehouse otherwise unchanged."""

from __future__ import annotations

import socket
import threading
import time
import zipfile
from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.sources.http import Http, HttpError
from awardwatch.schemas.errors import InputError
from awardwatch.schemas.layouts import current_columns
from tests.factories import row, write_csv, write_zip

CONTENT = "SELECT count(*), sum(federal_action_obligation), sum(hash(contract_transaction_unique_key, row_hash)) FROM transactions"


def zip_slip(tmp: Path) -> Path:
    return write_zip(tmp / "slip.zip", {"../../../tmp/evil.csv": write_csv(tmp / "m.csv", [row(piid="EVIL1")])})


def zip_absolute(tmp: Path) -> Path:
    """zipfile strips a leading / when writing, so the name is patched in afterwards."""
    path = write_zip(tmp / "abs.zip", {"Xetc/cron.d/evil.csv": write_csv(tmp / "m.csv", [row(piid="EVIL1")])})
    path.write_bytes(path.read_bytes().replace(b"Xetc/cron.d/", b"/etc/cron.d/"))
    return path


def zip_bomb(tmp: Path) -> Path:
    path = tmp / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z, z.open("bomb.csv", "w") as member:
        member.write(",".join(current_columns()).encode() + b"\n")
        for _ in range(64):
            member.write(b"0" * (1 << 20))
    return path


def truncated_zip(tmp: Path) -> Path:
    whole = write_zip(tmp / "whole.zip", {"a.csv": write_csv(tmp / "m.csv", [row(piid=f"P{i:05d}", transaction_description="X" * 300) for i in range(40)])})
    cut = tmp / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:-300])
    return cut


def not_a_zip(tmp: Path) -> Path:
    path = tmp / "download.zip"
    path.write_bytes(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    return path


def with_bytes(tmp: Path, marker: str, replacement: bytes) -> Path:
    path = write_csv(tmp / "bytes.csv", [row(piid="NEW00001", recipient_name=marker)])
    path.write_bytes(path.read_bytes().replace(marker.encode(), replacement))
    return path


def unbalanced(tmp: Path) -> Path:
    path = write_csv(tmp / "quote.csv", [row(piid="NEW00002")])
    path.write_text(path.read_text() + '"never closed,,,\n')
    return path


def repeated_header(tmp: Path) -> Path:
    return write_csv(tmp / "dup.csv", [row(piid="NEW00003")], columns=[*current_columns(), "recipient_name"])


def dropped_required(tmp: Path) -> Path:
    return write_csv(tmp / "drop.csv", [row(piid="NEW00004")], columns=[c for c in current_columns() if c != "award_id_piid"])


REFUSED = {
    "zip entry with ..": (zip_slip, r"unsafe path"),
    "zip entry with an absolute path": (zip_absolute, r"unsafe path"),
    "zip bomb": (zip_bomb, r"compression ratio over \d+:1; refusing a likely ZIP bomb"),
    "truncated zip": (truncated_zip, r"not a readable ZIP file \(truncated or corrupt\)"),
    "not a zip": (not_a_zip, r"not a readable ZIP file"),
    "unbalanced quotes": (unbalanced, r"cannot parse as CSV at data row \d+ \(line \d+ of the file\)"),
    "repeated column": (repeated_header, r"header repeats column\(s\) recipient_name"),
    "dropped required column": (dropped_required, r"missing required column\(s\) award_id_piid"),
}
QUARANTINED = {
    "NUL byte": (lambda tmp: with_bytes(tmp, "NULMARK", b"A\x00B"), "recipient_name: contains a NUL byte"),
    "not UTF-8": (lambda tmp: with_bytes(tmp, "LATIN1", b"CAF\xc9"), "recipient_name: bytes that are not UTF-8 (shown as \ufffd)"),
}


@pytest.fixture
def loaded(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "base.csv", [row(piid=f"HSCETC15C{i:05d}") for i in range(10)])], warehouse=warehouse)
    return warehouse


def content(warehouse: Path) -> list:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(CONTENT).fetchall() + con.execute("SELECT * FROM awards ORDER BY 1").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_one_line_and_nothing_changes(case, tmp_path, loaded):
    make, pattern = REFUSED[case]
    before = content(loaded)
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        ingest([path], warehouse=loaded, max_rejected_share=1)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert pytest.importorskip("re").search(pattern, message), message
    assert content(loaded) == before
    assert not Path("/tmp/evil.csv").exists()


@pytest.mark.parametrize("case", list(QUARANTINED))
def test_quarantined_with_the_reason_and_nothing_else_changes(case, tmp_path, loaded, sql):
    make, reason = QUARANTINED[case]
    before = content(loaded)
    result = ingest([make(tmp_path)], warehouse=loaded, max_rejected_share=1)
    assert (result.counts.quarantined, result.counts.inserted, result.counts.reconciled) == (1, 0, True)
    assert content(loaded) == before
    assert sql("SELECT reasons FROM quarantine") == [([reason],)]


def test_added_columns_are_tolerated_and_recorded(tmp_path, loaded, sql):
    path = write_csv(tmp_path / "wider.csv", [row(piid="HSCETC15C00000")], columns=[*current_columns(), "brand_new_flag"])
    result = ingest([path], warehouse=loaded)
    assert (result.counts.unchanged, result.files[0].extra_columns) == (1, ["brand_new_flag"])
    assert sql("SELECT extra_columns FROM run_files WHERE run_id = ?", result.run_id) == [(["brand_new_flag"],)]


def test_an_answer_that_never_ends_is_cut_off():
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                server.settimeout(0.2)
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n[")
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    break
                time.sleep(0.05)
            conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        client = Http(base_url=f"http://127.0.0.1:{server.getsockname()[1]}", attempts=2, timeout=5, deadline=1.0, backoff=0, sleep=lambda s: None)
        started = time.monotonic()
        with pytest.raises(HttpError, match=r"failed after 2 attempts \(answer did not finish within 1 s\)"):
            client.json("GET", "/api/v2/references/toptier_agencies/")
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
