"""Object-store faults through a fault-injecting TCP proxy in front of the local S3 server (no mocked boto3)."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from awardwatch.schemas.errors import AwardwatchError
from tests.factories import row, write_csv
from tests.reliability.proxy import FaultProxy
from awardwatch.warehouse import snapshots
from awardwatch.warehouse.query import query_snapshot
from awardwatch.warehouse.store import S3Store


@pytest.fixture
def proxied(s3, moto_server, monkeypatch):
    """The bucket of ``s3``, reached by awardwatch through the proxy (tests inspect it directly)."""
    with FaultProxy(moto_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy, s3, boto3.client("s3", endpoint_url=moto_server)


def fill(tmp_path: Path, warehouse: Path, amount: str, name: str) -> None:
    rows = [row(piid=f"HSCETC15C{i:05d}", amount=amount, action_date=f"201{6 + i % 3}-03-15") for i in range(40)]
    ingest([write_csv(tmp_path / name, rows)], warehouse=warehouse)


def open_uploads(direct, url: str) -> list:
    bucket, prefix = url[5:].split("/", 1)
    return direct.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def test_resets_503s_and_slow_answers_are_retried(tmp_path, warehouse, proxied):
    proxy, url, _ = proxied
    fill(tmp_path, warehouse, "10.00", "a.csv")
    proxy.add(b"PUT ", "reset", times=2)
    proxy.add(b"PUT ", "503", times=1)
    proxy.add(b"GET ", "delay", times=3, seconds=0.3)
    result = publish(warehouse, url)
    assert result.published
    assert sum(r.hits for r in proxy.rules) == 6
    assert snapshots.verify(S3Store(url), result.manifest) == []


def test_a_store_that_keeps_failing_leaves_the_previous_snapshot(tmp_path, warehouse, proxied):
    proxy, url, direct = proxied
    fill(tmp_path, warehouse, "10.00", "a.csv")
    first = publish(warehouse, url)
    fill(tmp_path, warehouse, "20.00", "b.csv")
    proxy.add(b"PUT ", "503", times=None)
    with pytest.raises(AwardwatchError) as info:
        publish(warehouse, url)
    message = str(info.value)
    assert "\n" not in message and f"'latest' still points to {first.snapshot_id}" in message and "503" in message
    proxy.clear()
    assert snapshots.current(S3Store(url))["snapshot_id"] == first.snapshot_id
    assert query_snapshot(url, "latest", "SELECT sum(federal_action_obligation) FROM transactions")[1] == [(400,)]
    assert open_uploads(direct, url) == []


def test_a_server_that_disappears_mid_upload_leaves_no_multipart_upload(tmp_path, proxied):
    proxy, url, direct = proxied
    store = S3Store(url, multipart_mb=5)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 << 20))
    proxy.add(b"partNumber=2", "cut", times=None)
    with pytest.raises(AwardwatchError, match="S3 upload of .*big.bin failed"):
        store.put_file("snapshots/x/big.bin", big)
    assert open_uploads(direct, url) == []
    assert store.list("snapshots/") == []
