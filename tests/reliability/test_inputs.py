"""Issue 18, findings 7, 10, 11, 12, 13: every input accounted for, links not followed out of a folder,
odd names, full disks, busy warehouses, unreachable endpoints and SIGTERM, each in one right line."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.cli import commands as cli
from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.sources.files import MAX_ZIP_DEPTH
from awardwatch.flows.sources.http import Http, HttpError, PermanentHttpError
from awardwatch.flows.tasks import worth_retrying
from awardwatch.schemas.errors import InputError, PermanentError, WarehouseError
from tests.factories import row, run_cli, write_csv
from awardwatch.warehouse import db


def rows(n: int, prefix: str = "P") -> list[dict]:
    return [row(piid=f"{prefix}{i:05d}") for i in range(n)]


def zip_of(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, target)
    return path


# --- finding 7: ZIP members -------------------------------------------------------------------

def test_a_nested_zip_is_read_and_other_members_are_listed_as_skipped(tmp_path, warehouse, sql):
    inner = zip_of(tmp_path / "inner.zip", {"b.csv": write_csv(tmp_path / "b.csv", rows(3, "B")).read_bytes()})
    outer = zip_of(tmp_path / "outer.zip", {"a.csv": write_csv(tmp_path / "a.csv", rows(2, "A")).read_bytes(),
                                            "inner.zip": inner.read_bytes(), "README.txt": b"x" * 17},
                   links={"link.csv": "/etc/passwd"})
    result = ingest([outer], warehouse=warehouse)
    assert (result.counts.read, result.counts.inserted, result.counts.reconciled) == (5, 5, True)
    assert sorted(f.name for f in result.files) == [f"{outer}!a.csv", f"{outer}!inner.zip!b.csv"]
    assert sorted((s.name, s.size) for s in result.skipped) == [(f"{outer}!README.txt", 17), (f"{outer}!link.csv", 11)]
    assert sorted(sql("SELECT source_file, status, message FROM run_files WHERE status = 'skipped'")) == [
        (f"{outer}!README.txt", "skipped", "not a CSV file (17 bytes)"),
        (f"{outer}!link.csv", "skipped", "a symbolic link inside a ZIP; not followed (11 bytes)")]
    assert "skipped 2 input(s) not read" in sql("SELECT message FROM runs")[0][0]


def test_the_summary_lists_skipped_members(capsys, monkeypatch, tmp_path):
    z = zip_of(tmp_path / "z.zip", {"a.csv": write_csv(tmp_path / "a.csv", rows(1)).read_bytes(), "notes.pdf": b"%PDF"})
    code, out, err = run_cli("ingest", str(z), "-w", str(tmp_path / "w.duckdb"), "--no-publish")
    assert code == 0, err
    assert "skipped 1 input(s) not read" in out and "z.zip!notes.pdf (4 bytes): not a CSV file" in out


def test_zips_nested_too_deep_are_refused(tmp_path, warehouse):
    data = write_csv(tmp_path / "a.csv", rows(1)).read_bytes()
    path = zip_of(tmp_path / "z0.zip", {"a.csv": data})
    for depth in range(1, MAX_ZIP_DEPTH + 1):
        path = zip_of(tmp_path / f"z{depth}.zip", {f"z{depth - 1}.zip": path.read_bytes()})
    with pytest.raises(InputError, match=rf"ZIPs nested more than {MAX_ZIP_DEPTH} deep"):
        ingest([path], warehouse=warehouse)


def test_a_partial_zip_load_says_which_members_were_loaded(tmp_path, warehouse):
    z = zip_of(tmp_path / "z.zip", {"part_1.csv": write_csv(tmp_path / "a.csv", rows(2)).read_bytes(), "part_2.csv": b""})
    with pytest.raises(InputError) as info:
        ingest([z], warehouse=warehouse)
    message = str(info.value)
    assert "\n" not in message
    assert message == f"{z}!part_2.csv: file is empty (no header row); loaded before this (kept, and unchanged by a re-run): {z}!part_1.csv (2 rows)"


# --- finding 10: symbolic links ---------------------------------------------------------------

def test_links_out_of_a_folder_are_not_followed(tmp_path, warehouse, sql):
    folder = tmp_path / "in"
    write_csv(folder / "a.csv", rows(1, "A"))
    elsewhere = write_csv(tmp_path / "elsewhere" / "x.csv", rows(1, "X"))
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    (folder / "x.csv").symlink_to(elsewhere)
    (folder / "same.csv").symlink_to(folder / "a.csv")  # inside the folder: read
    result = ingest([folder], warehouse=warehouse)
    assert sorted(f.name for f in result.files) == [str(folder / "a.csv"), str(folder / "same.csv")]
    assert sorted(s.name for s in result.skipped) == [str(folder / "passwd.csv"), str(folder / "x.csv")]
    assert all("outside the folder; not followed" in s.why for s in result.skipped)
    assert sql("SELECT count(*) FROM transactions WHERE award_id_piid = 'X00000'") == [(0,)]


def test_a_folder_of_links_out_of_it_is_refused(tmp_path, warehouse):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="symbolic links out of it are not followed"):
        ingest([folder], warehouse=warehouse)


# --- finding 11: names, disks, owner notes ----------------------------------------------------

def test_a_file_name_that_is_not_utf8_loads_and_is_recorded(capsys, monkeypatch, tmp_path):
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.csv"))
    write_csv(tmp_path / "x.csv", rows(2)).rename(path)
    wh = tmp_path / "w.duckdb"
    code, out, err = run_cli("ingest", str(path), "-w", str(wh), "--no-publish")
    assert code == 0, err
    assert "caf\\xe9.csv" in out
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("SELECT status, parameters FROM runs").fetchall() == [("succeeded", json.dumps({"paths": [str(tmp_path) + "/caf\\xe9.csv"]}))]
    assert con.execute("SELECT DISTINCT source_file FROM transactions").fetchall() == [(str(tmp_path) + "/caf\\xe9.csv",)]
    con.close()


def test_a_bad_name_inside_a_folder_is_one_line(capsys, monkeypatch, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (Path(os.fsdecode(os.fsencode(folder) + b"/bad\xff\n.csv"))).write_bytes(b"")
    code, _, err = run_cli("ingest", str(folder), "-w", str(tmp_path / "w.duckdb"), "--no-publish")
    assert code == 1 and err.count("\n") == 1 and "bad\\xff\\n.csv: file is empty" in err


def test_a_full_disk_says_disk_full_with_the_folder_and_the_space(capsys, monkeypatch, tmp_path):
    import duckdb as d

    from awardwatch.flows.core import ingest as loading

    def full(*args, **kwargs):
        raise d.OutOfMemoryException('Out of Memory Error: could not write file "x": No space left on device')

    monkeypatch.setattr(loading, "ingest", full)
    f = write_csv(tmp_path / "a.csv", rows(3))
    code, _, err = run_cli("ingest", str(f), "-w", str(tmp_path / "wh" / "w.duckdb"), "--no-publish")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: disk full: no space left on the disk of {tmp_path / 'wh'} (") and "free)" in err
    assert f"needs about {cli._size(2 * f.stat().st_size)} there" in err and "OutOfMemory" not in err


def test_an_owner_note_that_cannot_be_written_leaves_no_run_running(tmp_path, warehouse, sql):
    db.owner_file(warehouse).mkdir(parents=True)  # like an immutable file: writing it fails
    result = ingest([write_csv(tmp_path / "a.csv", rows(1))], warehouse=warehouse)
    assert result.status == "succeeded"
    assert sql("SELECT status FROM runs") == [("succeeded",)]


# --- finding 13: the right words ----------------------------------------------------------------

def test_a_bad_quote_names_the_data_row_and_the_line(tmp_path, warehouse):
    path = write_csv(tmp_path / "q.csv", rows(20))
    lines = path.read_text().splitlines(True)
    lines[11] = lines[11].replace("PALANTIR USG INC.", 'PALANTIR "USG INC.', 1)
    path.write_text("".join(lines))
    with pytest.raises(InputError) as info:
        ingest([path], warehouse=warehouse)
    assert str(info.value).startswith(f"{path}: cannot parse as CSV at data row 11 (line 12 of the file): a quote")


def test_a_quote_never_closed_names_where_it_opened(tmp_path, warehouse):
    path = write_csv(tmp_path / "q.csv", rows(5))
    lines = path.read_text().splitlines(True)
    lines[3] = lines[3].replace("PALANTIR USG INC.", '"PALANTIR "USG INC.', 1)
    path.write_text("".join(lines))
    with pytest.raises(InputError, match=r"at data row 3 \(line 4 of the file\)"):
        ingest([path], warehouse=warehouse)


def test_a_reader_holding_the_warehouse_is_named_as_a_reader(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "a.csv", rows(1))], warehouse=warehouse)
    db.owner_file(warehouse).write_text(json.dumps({"run_id": "old-run", "command": "ingest", "pid": 1, "since": "2020-01-01"}))
    reader = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
                               "print('open', flush=True); time.sleep(30)", str(warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseError) as info:
            db.connect(warehouse, wait=0)
    finally:
        reader.kill()
        reader.wait()
    message = str(info.value)
    assert f"is open for reading by process {reader.pid}" in message and "old-run" not in message, message


def test_a_stale_owner_note_is_not_named():
    text = 'IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 4242).'
    note = Path("/tmp") / f"aw-note-{os.getpid()}.duckdb"
    db.owner_file(note).write_text(json.dumps({"run_id": "finished-run", "command": "ingest", "pid": 1, "since": "x"}))
    try:
        message = db._busy(note, text, False, 1)
    finally:
        db.owner_file(note).unlink()
    assert "finished-run" not in message and "being written by process 4242" in message


# --- finding 12: endpoints that retrying cannot fix, SIGTERM -------------------------------------

def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_is_permanent_after_its_attempts():
    waits = []
    client = Http(base_url=f"http://127.0.0.1:{closed_port()}", attempts=3, backoff=0, sleep=waits.append)
    with pytest.raises(PermanentHttpError, match="connection refused on all 3 attempts"):
        client.json("GET", "/x")
    assert len(waits) == 2


def test_a_4xx_is_permanent_and_408_is_retried():
    import httpx

    answers = iter([408, 400])
    client = Http(attempts=3, backoff=0, sleep=lambda s: None,
                  client=httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(next(answers)))))
    with pytest.raises(PermanentHttpError, match="HTTP 400"):
        client.request("GET", "http://test/x")


def test_prefect_does_not_retry_a_permanent_error():
    from prefect.states import Failed

    assert worth_retrying(None, None, Failed(data=PermanentHttpError("GET x failed: HTTP 400", 400))) is False
    assert worth_retrying(None, None, Failed(data=HttpError("GET x failed after 5 attempts"))) is True
    assert issubclass(PermanentHttpError, PermanentError)


def test_prefect_errors_stay_off_the_terminal():
    from awardwatch.flows.tasks import _QuietConsole

    quiet = _QuietConsole()
    record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "Task run failed", None, None)
    done = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, "Finished in state Failed('x')", None, None)
    info = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, "Beginning flow run", None, None)
    assert [quiet.filter(r) for r in (record, done, info)] == [False, False, True]


def test_sigterm_ends_a_run_promptly_and_marks_it_interrupted(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWARDWATCH_")}
    env.update(AWARDWATCH_HOME=str(tmp_path), AWARDWATCH_PAUSE_AT="before-commit", AWARDWATCH_PAUSE_SECONDS="60")
    f = write_csv(tmp_path / "a.csv", rows(2))
    proc = subprocess.Popen([sys.executable, "-m", "awardwatch.flows.cli", "ingest", str(f), "--no-publish"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr.readline().strip() == "paused at before-commit"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 143 and time.monotonic() - started < 10
    assert rest == "interrupted (SIGTERM); the run is recorded as interrupted\n"
    con = duckdb.connect(str(tmp_path / "awardwatch.duckdb"), read_only=True)
    assert con.execute("SELECT status, rows_inserted FROM runs").fetchall() == [("interrupted", 0)]
    assert con.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
    con.close()
