"""A second process contending for the warehouse gets one line naming the run that holds it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.factories import row, write_csv


def cli(home: Path, *args: str, wait: bool = True, **env: str):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWARDWATCH_")}
    environment.update(AWARDWATCH_HOME=str(home), **env)
    command = [sys.executable, "-m", "awardwatch.flows.cli", *args]
    if not wait:
        return subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def test_a_second_writer_and_a_reader_are_told_who_holds_the_warehouse(tmp_path):
    first = write_csv(tmp_path / "a.csv", [row(piid=f"HSCETC15C{i:05d}") for i in range(5)])
    holder = cli(tmp_path, "ingest", str(first), wait=False, AWARDWATCH_PAUSE_AT="before-commit", AWARDWATCH_PAUSE_SECONDS="60")
    try:
        assert holder.stderr.readline().strip() == "paused at before-commit"
        second = write_csv(tmp_path / "b.csv", [row(piid="HSCETC15C99999")])
        blocked = cli(tmp_path, "ingest", str(second), AWARDWATCH_LOCK_WAIT="1")
        reader = cli(tmp_path, "query", "SELECT count(*) FROM transactions")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert blocked.returncode == 1
    assert blocked.stderr.count("\n") == 1
    assert re.fullmatch(r"error: warehouse .*awardwatch\.duckdb is being written by run \S+ \(ingest, process \d+, since \S+\) "
                        r"after waiting 1 s; try again when it has finished\n", blocked.stderr), blocked.stderr
    assert reader.returncode == 1 and "query a snapshot instead: awardwatch query --snapshot latest" in reader.stderr
    after = cli(tmp_path, "ingest", str(first), str(second))
    assert after.returncode == 0, after.stderr
    check = cli(tmp_path, "query", "--format", "csv", "SELECT count(*) AS n FROM transactions")
    assert check.stdout.splitlines() == ["n", "6"]
