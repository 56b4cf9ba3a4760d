"""Backfill chunks staged in an S3 prefix (AWARDWATCH_STAGING_URL=s3://bucket/prefix) against a real S3 API
(moto in server mode): the map stage uploads each chunk, the writer downloads it, merges it, deletes it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import boto3
import pytest

from awardwatch.flows import settings as config
from awardwatch.flows.core import connect, feeds
from awardwatch.flows.sources.base import BACKFILL
from awardwatch.warehouse.store import S3Store, StoreError
from tests.flows.test_backfill_dask import tables

START, END = date(2018, 1, 1), date(2018, 3, 31)


def job(s, **kw):
    con = connect(s)
    try:
        return feeds.run_feeds(con, s, BACKFILL, ["sample"], start=START, end=END, **kw)
    finally:
        con.close()


def objects(s3_url: str) -> list[str]:
    """Every key of the test's bucket (not only under the staging prefix)."""
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("value", ["s3://bucket", "s3://bucket/some/prefix/", "/shared/staged", "relative/staged"])
def test_the_staging_url_is_a_folder_or_an_s3_prefix(value):
    s = config.load({"AWARDWATCH_STAGING_URL": value})
    assert s.chunk_staging == value
    assert isinstance(feeds.staging_store(s), S3Store) == value.startswith("s3://")
    assert config.load({}).chunk_staging == "data/staged"


@pytest.mark.parametrize("value", ["s3://", "s3:///prefix", "https://example.org/x", "file:///tmp/x", "gs://bucket"])
def test_another_staging_url_is_refused_in_one_line(value):
    with pytest.raises(config.SettingsError) as info:
        config.load({"AWARDWATCH_STAGING_URL": value})
    message = str(info.value)
    assert message.startswith("AWARDWATCH_STAGING_URL=") and "\n" not in message
    assert message.endswith(" is not allowed: expected a folder or s3://bucket/prefix")


def test_chunks_staged_in_s3_give_the_folder_staged_warehouse_and_leave_nothing(s3, tmp_path, sql_at):
    staging = f"{s3}/staging"
    s = config.load({"AWARDWATCH_STAGING_URL": staging}).but(warehouse=tmp_path / "s3" / "w.duckdb", sample_rows=300)
    seen = []

    def stage(*args):  # the default stager, watched: each chunk it returns is in the bucket, under its key
        chunk = feeds.stage_now(*args)
        keys = [p.as_posix() for p in chunk.staged.paths()]
        seen.append((chunk.staged.store, keys, set(S3Store(staging).list(""))))
        return chunk

    spread = job(s, stage=stage)
    folder = config.load({}).but(warehouse=tmp_path / "folder" / "w.duckdb", sample_rows=300)
    serial = job(folder.but(backfill_concurrency=1))
    assert [r.counts for r in spread.results] == [r.counts for r in serial.results]
    assert tables(sql_at, s.warehouse) == tables(sql_at, folder.warehouse)
    assert [store for store, _, _ in seen] == [staging] * 3
    for (_, keys, stored), month in zip(seen, ("01", "02", "03")):
        assert keys and all(k.startswith("backfill-") and f"/2018-{month}-01/staged/" in k for k in keys)
        assert set(keys) <= stored
    assert objects(s3) == []  # each chunk deleted after its merge
    assert [p for p in (tmp_path / "s3").rglob("*") if p.is_file() and "staged" in p.parts] == []  # nor the downloads
    assert sql_at(s.warehouse, "SELECT count(*) FROM backfill_chunks WHERE status = 'done'") == [(3,)]


def test_a_chunk_whose_upload_fails_is_not_done_and_a_rerun_finishes_it(s3, tmp_path, sql_at, monkeypatch):
    staging = f"{s3}/staging"
    s = config.load({"AWARDWATCH_STAGING_URL": staging}).but(warehouse=tmp_path / "w.duckdb", sample_rows=200)
    put = S3Store.put_file

    def flaky(self, key, path):
        if "/2018-02-01/" in key and key.endswith("00000.parquet") and "rows_" in key:
            raise StoreError(f"S3 upload of {self.reader_path(key)} failed: connection reset")
        put(self, key, path)

    monkeypatch.setattr(S3Store, "put_file", flaky)
    with pytest.raises(StoreError, match="connection reset"), ThreadPoolExecutor(2) as pool:  # chunks staged ahead
        job(s, stage=lambda *args: pool.submit(feeds.stage_now, *args))
    done = sql_at(s.warehouse, "SELECT chunk_start, status FROM backfill_chunks ORDER BY 1")
    assert done == [(date(2018, 1, 1), "done"), (date(2018, 2, 1), "planned"), (date(2018, 3, 1), "planned")]
    failed = sql_at(s.warehouse, "SELECT message FROM runs WHERE status = 'failed'")
    assert len(failed) == 1 and "connection reset" in failed[0][0]
    left = objects(s3)  # what February had uploaded was removed; March, staged ahead, waits for the re-run
    assert all("/2018-03-01/" in k for k in left)

    monkeypatch.setattr(S3Store, "put_file", put)
    again = job(s)
    assert [r.counts.read for r in again.results] == [200, 200]
    assert sql_at(s.warehouse, "SELECT count(*) FROM backfill_chunks WHERE status = 'done'") == [(3,)]
    assert objects(s3) == []
