"""A run killed with SIGKILL at any chosen point, then run again, ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.core.failpoints import POINTS
from awardwatch.flows.sources.sample import write_transactions

CONTENT = """
SELECT count(*), count(DISTINCT contract_transaction_unique_key), sum(federal_action_obligation),
       sum(hash(contract_transaction_unique_key, federal_action_obligation, action_date, recipient_name, row_hash))
FROM transactions
"""
AWARDS = "SELECT count(*), sum(total_obligated_amount), sum(number_of_transactions) FROM awards"


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("feed")
    return [write_transactions(folder / "a.csv", 1500, seed=11, malformed=3),
            write_transactions(folder / "b.csv", 1500, seed=12, malformed=3)]


def ingest(home: Path, files: list[Path], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWARDWATCH_")}
    environment.update(AWARDWATCH_HOME=str(home), **env)
    return subprocess.run([sys.executable, "-m", "awardwatch.flows.cli", "ingest", *map(str, files)], env=environment,
                          capture_output=True, text=True, timeout=300)


def state(home: Path) -> dict:
    con = duckdb.connect(str(home / "awardwatch.duckdb"), read_only=True)
    try:
        warehouse = {"transactions": con.execute(CONTENT).fetchall(), "awards": con.execute(AWARDS).fetchall(),
                     "quarantine": con.execute("SELECT count(*) FROM quarantine").fetchall()}
        statuses = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()]
    finally:
        con.close()
    pointer = json.loads((home / "snapshots" / "latest").read_text())
    snap = duckdb.connect()
    base = home / "snapshots" / "snapshots" / pointer["snapshot_id"]
    snapshot = {"transactions": snap.execute(CONTENT.replace("FROM transactions", f"FROM read_parquet('{base}/transactions/*/*.parquet')")).fetchall(),
                "awards": snap.execute(AWARDS.replace("FROM awards", f"FROM read_parquet('{base}/awards/*.parquet')")).fetchall()}
    return {"warehouse": warehouse, "snapshot": snapshot, "statuses": statuses}


@pytest.fixture(scope="module")
def uninterrupted(feed, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("clean")
    done = ingest(home, feed)
    assert done.returncode == 0, done.stderr
    return state(home)


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_a_point_then_rerun_equals_an_uninterrupted_run(point, feed, uninterrupted, tmp_path):
    killed = ingest(tmp_path, feed, AWARDWATCH_KILL_AT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = ingest(tmp_path, feed)
    assert again.returncode == 0, again.stderr
    after = state(tmp_path)
    assert after["warehouse"] == uninterrupted["warehouse"]
    assert after["snapshot"] == uninterrupted["snapshot"]
    assert after["statuses"][-1] == "succeeded"
    if point not in ("exported", "uploaded", "before-pointer"):  # those die after the run itself finished
        assert "interrupted" in after["statuses"]
