"""A backfill whose map stage runs on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1),
through Prefect's DaskTaskRunner: the warehouse equals a serial run's, table by table, and each chunk names
the worker that staged it."""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.prefect

TABLES = ("transactions", "awards", "recipients", "brand_mentions", "company_agency_fiscal_year", "quarantine")
EXCLUDED = {"transactions": "source_file, run_id, loaded_at", "quarantine": "first_run_id, last_run_id, first_seen_at, last_seen_at"}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        yield c


def tables(sql_at, wh) -> dict[str, list]:
    found = {}
    for table in TABLES:
        columns = {c for (c,) in sql_at(wh, f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")}
        drop = [c.strip() for c in EXCLUDED.get(table, "").split(",") if c.strip() in columns]
        found[table] = sql_at(wh, f"SELECT * {'EXCLUDE (' + ', '.join(drop) + ')' if drop else ''} FROM {table} ORDER BY ALL")
    return found


def test_a_dask_backfill_equals_a_serial_one(prefect_harness, cluster, tmp_path, monkeypatch, sql_at):
    from prefect_dask import DaskTaskRunner

    from awardwatch.flows.backfill import backfill

    for name, value in {"AWARDWATCH_SAMPLE_ROWS": "400", "AWARDWATCH_TASK_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWARDWATCH_WAREHOUSE", raising=False)
    monkeypatch.setenv("AWARDWATCH_HOME", str(tmp_path / "dask"))
    on_dask = backfill.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    spread = on_dask(start=date(2018, 1, 1), end=date(2018, 4, 30), source="sample", concurrency=2)
    monkeypatch.setenv("AWARDWATCH_HOME", str(tmp_path / "serial"))
    serial = backfill(start=date(2018, 1, 1), end=date(2018, 4, 30), source="sample", concurrency=1)

    assert spread["counts"] == serial["counts"] and spread["counts"]["inserted"] > 1000
    assert tables(sql_at, tmp_path / "dask" / "awardwatch.duckdb") == tables(sql_at, tmp_path / "serial" / "awardwatch.duckdb")
    workers = set(cluster.scheduler_info["workers"])
    staged_on = sql_at(tmp_path / "dask" / "awardwatch.duckdb", "SELECT chunk_start, worker FROM backfill_chunks ORDER BY 1")
    assert [d for d, _ in staged_on] == [date(2018, m, 1) for m in (1, 2, 3, 4)]
    assert {w for _, w in staged_on} <= workers and all(w for _, w in staged_on)
    assert sql_at(tmp_path / "serial" / "awardwatch.duckdb", "SELECT DISTINCT worker FROM backfill_chunks") == [("",)]
