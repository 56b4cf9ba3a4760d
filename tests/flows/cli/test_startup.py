"""`awardwatch --help` imports no heavy module, and a bad argument fails in one line before Prefect (issue 17 point 6).

Which modules load is checked (``python -X importtime``), not how long it takes: timing belongs in bench/.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.timeout(120)
HEAVY = ("polars", "duckdb", "prefect", "pydantic_settings", "httpx")


def awardwatch(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Runs the CLI with ``-X importtime``: (the process, the top-level packages it imported)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWARDWATCH_")} | {"AWARDWATCH_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "awardwatch.flows.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=100)
    lines = proc.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    proc.stderr = "\n".join(line for line in lines if not line.startswith("import time:"))
    return proc, imported


@pytest.mark.parametrize("args", [["--help"], ["report", "--help"], ["backfill", "--help"]])
def test_help_imports_no_heavy_module(tmp_path, args):
    proc, imported = awardwatch(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "awardwatch" in imported  # importtime was read
    assert not imported & set(HEAVY), f"`awardwatch {' '.join(args)}` imported {sorted(imported & set(HEAVY))}"


@pytest.mark.parametrize("args, message", [
    (["run", "--agency", "FOO"], "error: unknown agency 'FOO'"),
    (["backfill", "--start", "2018-03-01", "--end", "2018-01-01"],
     "error: backfill: --end 2018-01-01 is before --start 2018-03-01"),
])
def test_a_bad_argument_is_one_line_and_exit_2_before_prefect(tmp_path, args, message):
    proc, imported = awardwatch(tmp_path, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "prefect" not in imported
