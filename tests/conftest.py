from __future__ import annotations

from pathlib import Path

import duckdb
import pytest


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """Path of a fresh warehouse file in a temporary folder."""
    return tmp_path / "wh" / "awardwatch.duckdb"


@pytest.fixture
def sql(warehouse: Path):
    """Runs a query on the warehouse (read-only) and returns all rows."""

    def run(query: str, *params):
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return con.execute(query, list(params)).fetchall()
        finally:
            con.close()

    return run


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (temporary server and database) for the whole test run."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
