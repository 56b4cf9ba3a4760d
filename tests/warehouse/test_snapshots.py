"""Parquet snapshots: local folder and a real S3 API (moto server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from awardwatch.schemas.errors import AwardwatchError
from tests.factories import row, write_csv
from awardwatch.warehouse import snapshots
from awardwatch.warehouse.query import query_snapshot, query_warehouse
from awardwatch.warehouse.store import LocalStore, S3Store, open_store

SUMS = "SELECT fiscal_year, count(*), sum(federal_action_obligation) FROM transactions GROUP BY 1 ORDER BY 1"
AWARDS = "SELECT contract_award_unique_key, total_obligated_amount, number_of_transactions FROM awards ORDER BY 1"


def fill(tmp_path: Path, warehouse: Path, n: int = 30, name: str = "a.csv", amount: str = "10.00") -> None:
    rows = [row(piid=f"HSCETC15C{i:05d}", amount=amount, action_date=f"{2016 + i % 3}-0{1 + i % 9}-15") for i in range(n)]
    ingest([write_csv(tmp_path / name, rows)], warehouse=warehouse)


def test_local_publish_writes_files_manifest_then_pointer(tmp_path, warehouse):
    fill(tmp_path, warehouse)
    url = str(tmp_path / "snaps")
    result = publish(warehouse, url)
    assert result.published
    root = Path(url)
    pointer = json.loads((root / "latest").read_text())
    manifest = json.loads((root / pointer["manifest"]).read_text())
    assert manifest["snapshot_id"] == pointer["snapshot_id"] == result.snapshot_id
    files = manifest["tables"]["transactions"]["files"]
    assert {f["path"].split("/")[1] for f in files} == {"fiscal_year=2016", "fiscal_year=2017", "fiscal_year=2018"}
    for table in manifest["tables"].values():
        for f in table["files"]:
            data = (root / "snapshots" / result.snapshot_id / f["path"]).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])
    assert manifest["tables"]["transactions"]["rows"] == 30
    assert manifest["run_ids"]


@pytest.mark.parametrize("sql", [SUMS, AWARDS, "SELECT * FROM transactions ORDER BY contract_transaction_unique_key LIMIT 5"])
def test_query_on_latest_snapshot_equals_the_warehouse(tmp_path, warehouse, sql):
    fill(tmp_path, warehouse)
    url = str(tmp_path / "snaps")
    publish(warehouse, url)
    assert query_snapshot(url, "latest", sql) == query_warehouse(warehouse, sql)


def test_unchanged_warehouse_publishes_nothing_new(tmp_path, warehouse):
    fill(tmp_path, warehouse)
    url = str(tmp_path / "snaps")
    first = publish(warehouse, url)
    fill(tmp_path, warehouse)  # same rows again: nothing changes
    second = publish(warehouse, url)
    assert not second.published
    assert "nothing changed" in second.message
    assert [s["snapshot_id"] for s in snapshots.list_snapshots(LocalStore(Path(url)))] == [first.snapshot_id]


def test_prune_keeps_the_newest_and_the_current(tmp_path, warehouse):
    url = str(tmp_path / "snaps")
    ids = []
    for i in range(4):
        fill(tmp_path, warehouse, amount=f"{i}.00", name=f"a{i}.csv")
        ids.append(publish(warehouse, url, keep=None).snapshot_id)
    store = LocalStore(Path(url))
    assert snapshots.prune(store, 2) == ids[:2][::-1]
    left = snapshots.list_snapshots(store)
    assert [s["snapshot_id"] for s in left] == ids[:1:-1]
    assert left[0]["current"]


def test_prune_never_deletes_the_current_snapshot(tmp_path, warehouse):
    url = str(tmp_path / "snaps")
    fill(tmp_path, warehouse)
    current = publish(warehouse, url).snapshot_id
    store = LocalStore(Path(url))
    # a newer but incomplete snapshot (a publish that died before its manifest)
    store.put_bytes("snapshots/29990101T000000Z-ffff/awards/part-0.parquet", b"partial")
    assert snapshots.prune(store, 1) == []
    assert snapshots.current(store)["snapshot_id"] == current


def test_s3_publish_checksums_and_query_over_httpfs(tmp_path, warehouse, s3):
    fill(tmp_path, warehouse)
    result = publish(warehouse, s3)
    store = open_store(s3)
    assert isinstance(store, S3Store)
    manifest = snapshots.current(store)
    assert manifest["snapshot_id"] == result.snapshot_id
    assert snapshots.verify(store, manifest) == []
    for sql in (SUMS, AWARDS):
        assert query_snapshot(s3, "latest", sql) == query_warehouse(warehouse, sql)
    assert store.open_multipart_uploads() == []


def test_s3_publish_failing_midway_keeps_the_previous_snapshot(tmp_path, warehouse, s3, monkeypatch):
    fill(tmp_path, warehouse)
    first = publish(warehouse, s3)
    fill(tmp_path, warehouse, amount="99.00", name="b.csv")

    calls = {"n": 0}
    original = S3Store.put_file

    def flaky(self, key, path):
        calls["n"] += 1
        if calls["n"] == 2:
            self.client.meta.events.register_first("before-send.s3.PutObject", _connection_reset)
        return original(self, key, path)

    monkeypatch.setattr(S3Store, "put_file", flaky)
    with pytest.raises(AwardwatchError, match=rf"failed, 'latest' still points to {first.snapshot_id}"):
        publish(warehouse, s3)
    store = S3Store(s3)
    assert snapshots.current(store)["snapshot_id"] == first.snapshot_id
    assert query_snapshot(s3, "latest", "SELECT sum(federal_action_obligation) FROM transactions")[1] == [(300,)]
    assert [s["snapshot_id"] for s in snapshots.list_snapshots(store)] == [first.snapshot_id]
    assert store.open_multipart_uploads() == []


def _connection_reset(**kwargs):
    from botocore.exceptions import EndpointConnectionError

    raise EndpointConnectionError(endpoint_url="injected: connection reset in the middle of the upload")


def test_s3_multipart_upload_failure_is_aborted(tmp_path, s3):
    store = S3Store(s3, multipart_mb=5)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 << 20))
    parts = {"n": 0}

    def fail_second_part(request, **kwargs):
        if "partNumber=2" in request.url:  # every attempt, retries included
            parts["n"] += 1
            _connection_reset()

    store.client.meta.events.register_first("before-send.s3.UploadPart", fail_second_part)
    with pytest.raises(AwardwatchError, match="S3 upload of s3://.*/prod/x/big.bin failed"):
        store.put_file("x/big.bin", big)
    assert parts["n"] > 1  # retried before giving up
    assert store.open_multipart_uploads() == []
    assert store.list("x/") == []


def test_snapshot_ids_sort_after_the_current_one_within_a_second(monkeypatch):
    """Several publishes in one second: "newest first" (listing, prune) is still the order of the ids."""
    from datetime import datetime

    monkeypatch.setattr(snapshots.runs, "now", lambda: datetime(2020, 1, 1))
    ids = ["20200101T000000Z-00fe"]
    for _ in range(20):
        ids.append(snapshots.new_snapshot_id(after=ids[-1]))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(snapshots.OWN_ID.fullmatch(i) for i in ids)
