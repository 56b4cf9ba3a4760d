"""Publish writes only where and what it should (issue 18, findings 4, 5 and 8): the warehouse path is a
DuckDB file or nothing, clean-up touches only publish's own temporary names and its own prefix with a
trailing '/', and a warehouse whose latest run did not finish is not published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from awardwatch.schemas.errors import AwardwatchError
from tests.factories import row, write_csv
from awardwatch.warehouse import snapshots
from awardwatch.warehouse.store import LocalStore, S3Store


def rows(n: int = 10, amount: str = "10.00") -> list[dict]:
    return [row(piid=f"HSCETC15C{i:05d}", amount=amount, action_date=f"201{6 + i % 3}-03-15") for i in range(n)]


# --- 4: the warehouse path is a DuckDB file or nothing ---

def _write_parquet(path: Path) -> None:
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{path}' (FORMAT parquet)")


@pytest.mark.parametrize("kind,make", [
    ("csv", lambda p: p.write_text("a,b\n1,2\n")),
    ("parquet", _write_parquet),
    ("json", lambda p: p.write_text('{"a": 1}\n')),
    ("empty", lambda p: p.write_bytes(b"")),
    ("binary", lambda p: p.write_bytes(os.urandom(64))),
])
def test_an_existing_file_that_is_not_duckdb_is_refused_and_nothing_published(tmp_path, kind, make):
    target = tmp_path / f"warehouse.{kind}"
    make(target)
    before = target.read_bytes()
    url = tmp_path / "snaps"
    feed = write_csv(tmp_path / "a.csv", rows())
    for step in (lambda: ingest([feed], warehouse=target), lambda: publish(target, str(url))):
        with pytest.raises(AwardwatchError, match=rf"warehouse path {target} .*(is not a DuckDB database|not a valid DuckDB)") as info:
            step()
        assert "\n" not in str(info.value)
    assert target.read_bytes() == before
    assert not url.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.csv", target.name])  # no owner file, no staging


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_duckdb_opening_a_data_file_in_memory_is_caught_even_without_the_header_check(tmp_path, monkeypatch, suffix):
    """DuckDB opens an existing CSV/Parquet/JSON path as an in-memory database (every row would be lost):
    the database it opened is checked too, not only the file's header."""
    from awardwatch.warehouse import db

    target = tmp_path / f"warehouse.{suffix}"
    (_write_parquet(target) if suffix == "parquet" else target.write_text("a,b\n1,2\n" if suffix == "csv" else '{"a": 1}\n'))
    monkeypatch.setattr(db, "check_file", lambda path: None)
    with pytest.raises(AwardwatchError, match=r"is not a DuckDB database file \(DuckDB would open it as an empty in-memory") as info:
        ingest([write_csv(tmp_path / "a.csv", rows())], warehouse=target)
    assert "\n" not in str(info.value)


def test_a_folder_as_warehouse_is_refused(tmp_path):
    target = tmp_path / "wh"
    target.mkdir()
    with pytest.raises(AwardwatchError, match=r"is a folder, not a DuckDB database file"):
        publish(target, str(tmp_path / "snaps"))
    assert list(target.iterdir()) == []


# --- 5: publish touches only what it wrote ---

def test_local_cleanup_removes_only_publish_own_temporary_files(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "a.csv", rows())], warehouse=warehouse)
    root = tmp_path / "snaps"
    theirs = [root / "deep/er/movie.mp4.partial", root / "upload.partial", root / "snapshots/notes/todo.partial",
              root / "snapshots/.draft.partial"]
    ours = [root / "snapshots/20200101T000000Z-0001/awards/.part-0.parquet.awardwatch.partial", root / ".latest.awardwatch.partial"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".part-0.parquet.awardwatch.partial").write_bytes(b"not ours either")
    for path in theirs + ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "snapshots/link").symlink_to(outside, target_is_directory=True)  # never followed
    LocalStore(root).cleanup()
    assert all(p.exists() for p in theirs)
    assert not any(p.exists() for p in ours)
    assert publish(warehouse, str(root)).published
    assert all(p.exists() for p in theirs)
    assert not any(p.exists() for p in ours)
    assert (outside / ".part-0.parquet.awardwatch.partial").exists()


def test_prune_deletes_only_folders_publish_made(tmp_path, warehouse):
    root = tmp_path / "snaps"
    mine = root / "snapshots" / "0000-my-notes" / "readme.txt"  # sorts before any snapshot id, no manifest
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    for i in range(3):
        ingest([write_csv(tmp_path / f"a{i}.csv", rows(amount=f"{i + 1}.00"))], warehouse=warehouse)
        publish(warehouse, str(root), keep=1)
    assert mine.read_text() == "mine"
    assert len([s for s in snapshots.list_snapshots(LocalStore(root)) if s["complete"]]) == 1


def _start_upload(client, bucket: str, key: str) -> str:
    return client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]


def test_s3_cleanup_aborts_only_uploads_under_its_own_prefix_and_slash(s3, moto_server):
    """s3://b/prod must not abort another application's upload at prod-other-app/..., nor a user's under prod/."""
    bucket = s3[5:].split("/")[0]
    direct = boto3.client("s3", endpoint_url=moto_server)
    others = ["prod-other-app/big.bin", "prodx", "prod/user-files/movie.mp4"]
    for key in others + ["prod/snapshots/20200101T000000Z-0001/awards/part-0.parquet"]:
        _start_upload(direct, bucket, key)
    S3Store(s3).cleanup()
    left = sorted(u["Key"] for u in direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    assert left == sorted(others)


def test_s3_publish_leaves_other_applications_uploads(tmp_path, warehouse, s3, moto_server):
    bucket = s3[5:].split("/")[0]
    direct = boto3.client("s3", endpoint_url=moto_server)
    _start_upload(direct, bucket, "prod-other-app/big.bin")
    ingest([write_csv(tmp_path / "a.csv", rows())], warehouse=warehouse)
    assert publish(warehouse, s3).published
    assert [u["Key"] for u in direct.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["prod-other-app/big.bin"]


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a"])
def test_store_keys_cannot_leave_the_store(tmp_path, s3, key):
    for store in (LocalStore(tmp_path / "snaps"), S3Store(s3)):
        with pytest.raises(AwardwatchError, match=r"is not inside the store"):
            store.put_bytes(key, b"x")
        with pytest.raises(AwardwatchError, match=r"is not inside the store"):
            store.get_bytes(key)
    assert not (tmp_path / "x").exists()


# --- 8: a half-finished run is not published ---

def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWARDWATCH_")}
    environment.update(AWARDWATCH_HOME=str(home), **env)
    return subprocess.run([sys.executable, "-m", "awardwatch.flows.cli", *args], env=environment, capture_output=True, text=True, timeout=120)


def test_a_run_killed_between_a_commit_and_the_company_refresh_is_not_published(tmp_path):
    """The issue's case: SIGKILL after the first file committed (marts not refreshed); publish refuses,
    naming the run and how to finish it; re-running the same ingest finishes it and publishes."""
    home = tmp_path / "home"
    files = [write_csv(tmp_path / "a.csv", rows(8)), write_csv(tmp_path / "b.csv", rows(8, amount="20.00"))]
    killed = _cli(home, "ingest", *map(str, files), AWARDWATCH_KILL_AT="between-files")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    warehouse = home / "awardwatch.duckdb"
    run_id = duckdb.connect(str(warehouse), read_only=True).execute("SELECT run_id FROM runs").fetchone()[0]
    with pytest.raises(AwardwatchError) as info:
        publish(warehouse, str(home / "snapshots"))
    message = str(info.value)
    assert "\n" not in message
    assert f"run {run_id} (ingest" in message and "did not finish" in message
    assert f"awardwatch ingest {files[0]} {files[1]}" in message and "roll it back" in message
    assert not (home / "snapshots" / "latest").exists()
    again = _cli(home, "ingest", *map(str, files))
    assert again.returncode == 0, again.stderr
    assert (home / "snapshots" / "latest").exists()


@pytest.mark.parametrize("status", ["running", "interrupted", "failed"])
def test_a_latest_run_that_did_not_finish_keeps_latest_where_it_was(tmp_path, warehouse, status):
    url = str(tmp_path / "snaps")
    ingest([write_csv(tmp_path / "a.csv", rows())], warehouse=warehouse)
    first = publish(warehouse, url)
    ingest([write_csv(tmp_path / "b.csv", rows(amount="30.00"))], warehouse=warehouse)
    con = duckdb.connect(str(warehouse))
    run_id = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    con.execute("UPDATE runs SET status = ?, message = 'OSError: disk gone' WHERE run_id = ?", [status, run_id])
    con.close()
    with pytest.raises(AwardwatchError, match=rf"^not published: run {run_id} \(ingest, started .*\) did not finish") as info:
        publish(warehouse, url)
    assert "\n" not in str(info.value)
    assert snapshots.current(LocalStore(Path(url)))["snapshot_id"] == first.snapshot_id
    assert len(snapshots.list_snapshots(LocalStore(Path(url)))) == 1


def test_a_failed_run_that_committed_nothing_does_not_block_publish(tmp_path, warehouse):
    """A file refused whole (too many rejected rows) leaves the warehouse as the run before it."""
    ingest([write_csv(tmp_path / "a.csv", rows())], warehouse=warehouse)
    bad = write_csv(tmp_path / "bad.csv", [row(piid=f"X{i}", action_date="not a date") for i in range(5)])
    with pytest.raises(AwardwatchError):
        ingest([bad], warehouse=warehouse)
    status = duckdb.connect(str(warehouse), read_only=True).execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    assert status == ("failed",)
    assert publish(warehouse, str(tmp_path / "snaps")).published
