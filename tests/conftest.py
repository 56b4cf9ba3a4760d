from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.settings import prefect_defaults

prefect_defaults()  # telemetry off, before any test imports Prefect


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """Path of a fresh warehouse file in a temporary folder."""
    return tmp_path / "wh" / "awardwatch.duckdb"


@pytest.fixture
def sql(warehouse: Path, sql_at):
    """Runs a query on the test's warehouse (read-only) and returns all rows."""
    return lambda query, *params: sql_at(warehouse, query, *params)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (temporary server and database) for the whole test run, telemetry off."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def moto_server():
    """A real S3 API (moto in server mode) on 127.0.0.1, for the whole test run."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch):
    """An empty bucket on the local S3 server; boto3 and DuckDB are pointed at it through the environment."""
    import secrets

    import urllib.request

    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10).close()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"awardwatch-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prod"


@pytest.fixture
def sql_at():
    """Runs a query on a given warehouse file (read-only)."""

    def run(path: Path, query: str, *params):
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(query, list(params)).fetchall()
        finally:
            con.close()

    return run
