"""A backfill whose map stage runs on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1),
through Prefect's DaskTaskRunner: the warehouse equals a serial run's, table by table, and each chunk names
the worker that staged it. The same with chunks staged in an S3 prefix (moto in server mode), in threads and
on Dask: the prefix is empty afterwards."""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.prefect

TABLES = ("transactions", "awards", "recipients", "brand_mentions", "company_agency_fiscal_year", "quarantine")
EXCLUDED = {"transactions": "source_file, run_id, loaded_at", "quarantine": "first_run_id, last_run_id, first_seen_at, last_seen_at"}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0") as c:
        yield c


def tables(sql_at, wh) -> dict[str, list]:
    found = {}
    for table in TABLES:
        columns = {c for (c,) in sql_at(wh, f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")}
        drop = [c.strip() for c in EXCLUDED.get(table, "").split(",") if c.strip() in columns]
        found[table] = sql_at(wh, f"SELECT * {'EXCLUDE (' + ', '.join(drop) + ')' if drop else ''} FROM {table} ORDER BY ALL")
    return found


@pytest.fixture(scope="module")
def serial(prefect_harness, tmp_path_factory):
    """The same backfill, serial, staged in a folder (the default): its warehouse file and summary."""
    from awardwatch.flows.backfill import backfill

    home = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**SETTINGS, "AWARDWATCH_HOME": str(home)}.items():
            mp.setenv(name, value)
        for name in ("AWARDWATCH_WAREHOUSE", "AWARDWATCH_STAGING_URL"):
            mp.delenv(name, raising=False)
        summary = backfill(start=START, end=END, source="sample", concurrency=1)
    return home / "awardwatch.duckdb", summary


SETTINGS = {"AWARDWATCH_SAMPLE_ROWS": "400", "AWARDWATCH_TASK_RETRIES": "0"}
START, END = date(2018, 1, 1), date(2018, 4, 30)


def at_home(monkeypatch, home, staging: str | None = None) -> None:
    for name, value in {**SETTINGS, "AWARDWATCH_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWARDWATCH_WAREHOUSE", raising=False)
    if staging:
        monkeypatch.setenv("AWARDWATCH_STAGING_URL", staging)
    else:
        monkeypatch.delenv("AWARDWATCH_STAGING_URL", raising=False)


def test_a_dask_backfill_equals_a_serial_one(prefect_harness, cluster, serial, tmp_path, monkeypatch, sql_at):
    from prefect_dask import DaskTaskRunner

    from awardwatch.flows.backfill import backfill

    at_home(monkeypatch, tmp_path / "dask")
    on_dask = backfill.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    spread = on_dask(start=START, end=END, source="sample", concurrency=2)
    serial_wh, serial_summary = serial

    assert spread["counts"] == serial_summary["counts"] and spread["counts"]["inserted"] > 1000
    assert tables(sql_at, tmp_path / "dask" / "awardwatch.duckdb") == tables(sql_at, serial_wh)
    workers = set(cluster.scheduler_info["workers"])
    staged_on = sql_at(tmp_path / "dask" / "awardwatch.duckdb", "SELECT chunk_start, worker FROM backfill_chunks ORDER BY 1")
    assert [d for d, _ in staged_on] == [date(2018, m, 1) for m in (1, 2, 3, 4)]
    assert {w for _, w in staged_on} <= workers and all(w for _, w in staged_on)
    assert sql_at(serial_wh, "SELECT DISTINCT worker FROM backfill_chunks") == [("",)]


def bucket_keys(s3_url: str) -> list[str]:
    """Every key of the test's bucket, under the staging prefix or not, and every unfinished multipart upload."""
    import boto3

    client, bucket = boto3.client("s3"), s3_url.removeprefix("s3://").split("/")[0]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])] + [u["Key"] for u in uploads]


def test_an_s3_staged_backfill_equals_a_serial_one_and_leaves_nothing(prefect_harness, serial, s3, tmp_path, monkeypatch,
                                                                     sql_at):
    """AWARDWATCH_STAGING_URL=s3://...: chunks staged in threads of the flow, uploaded, downloaded, merged, deleted."""
    from awardwatch.flows.backfill import backfill

    at_home(monkeypatch, tmp_path / "s3", f"{s3}/staged")
    spread = backfill(start=START, end=END, source="sample", concurrency=2)
    serial_wh, serial_summary = serial
    assert spread["counts"] == serial_summary["counts"]
    assert tables(sql_at, tmp_path / "s3" / "awardwatch.duckdb") == tables(sql_at, serial_wh)
    assert bucket_keys(s3) == []


def test_an_s3_staged_dask_backfill_equals_a_serial_one(prefect_harness, serial, s3, tmp_path, monkeypatch, sql_at):
    """The same with the map stage on Dask worker processes, which reach the bucket with their own environment
    (started after the ``s3`` fixture set the AWS_* variables): they upload, the flow downloads."""
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    from awardwatch.flows.backfill import backfill

    at_home(monkeypatch, tmp_path / "s3dask", f"{s3}/staged")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0") as c:
        spread = backfill.with_options(task_runner=DaskTaskRunner(address=c.scheduler_address))(
            start=START, end=END, source="sample", concurrency=2)
        workers = set(c.scheduler_info["workers"])
    wh = tmp_path / "s3dask" / "awardwatch.duckdb"
    serial_wh, serial_summary = serial
    assert spread["counts"] == serial_summary["counts"]
    assert tables(sql_at, wh) == tables(sql_at, serial_wh)
    assert {w for (w,) in sql_at(wh, "SELECT DISTINCT worker FROM backfill_chunks")} <= workers
    assert bucket_keys(s3) == []


def test_cluster_workers_counts_the_schedulers_workers(cluster):
    """The CLI's Dask backfill stages ``cluster_workers + 1`` chunks ahead when no ``--concurrency`` is given, so every
    worker stages while the one writer merges (with the default 2, one worker would sit idle during each merge)."""
    from awardwatch.flows.tasks import cluster_workers

    assert cluster_workers(cluster.scheduler_address) == 2
