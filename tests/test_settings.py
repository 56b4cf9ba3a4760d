"""Every AWARDWATCH_* setting and numeric flag is checked before any work, in one line (issue 18, finding 11)."""

from __future__ import annotations

import re
import sys

import pytest

from flows import cli
from flows import settings as config
from tests.factories import row, write_csv

BAD = {
    "AWARDWATCH_BATCH_ROWS": ["0", "-5", "abc", "1.5"],
    "AWARDWATCH_MAX_REJECTED": ["abc", "-0.1", "2", "nan"],
    "AWARDWATCH_THREADS": ["-1", "0", "x"],
    "AWARDWATCH_KEEP_SNAPSHOTS": ["-1", "0"],
    "AWARDWATCH_HTTP_ATTEMPTS": ["0"],
    "AWARDWATCH_HTTP_TIMEOUT": ["0", "inf"],
    "AWARDWATCH_TASK_RETRIES": ["-1"],
    "AWARDWATCH_LOCK_WAIT": ["-3"],
    "AWARDWATCH_LOOKBACK_DAYS": ["two"],
    "AWARDWATCH_USASPENDING_URL": ["ftp://x", "api.usaspending.gov"],
    "AWARDWATCH_SOURCES": ["usaspending,nope"],
}


@pytest.mark.parametrize("variable,value", [(k, v) for k, vs in BAD.items() for v in vs])
def test_a_bad_variable_is_one_line_naming_it_and_what_it_accepts(variable, value):
    with pytest.raises(config.SettingsError) as info:
        config.load({variable: value})
    message = str(info.value)
    assert "\n" not in message and message.startswith(variable)
    assert re.search(r"expected (a whole number|a number|a share from 0 to 1|an http|a comma-separated list)", message), message


def test_good_values_and_empty_ones_load():
    s = config.load({"AWARDWATCH_BATCH_ROWS": "10", "AWARDWATCH_MAX_REJECTED": "1", "AWARDWATCH_THREADS": "", "AWARDWATCH_KEEP_SNAPSHOTS": " 3 "})
    assert (s.batch_rows, s.max_rejected_share, s.threads, s.keep_snapshots) == (10, 1.0, None, 3)


def test_every_setting_is_documented():
    """The settings docstring names every AWARDWATCH_* variable read anywhere in flows/ and warehouse/."""
    from pathlib import Path

    root = Path(config.__file__).parents[1]
    used = {m for d in ("flows", "warehouse") for p in (root / d).rglob("*.py") for m in re.findall(r"AWARDWATCH_[A-Z_]+[A-Z]", p.read_text())}
    missing = sorted(v for v in used if v not in config.__doc__)
    assert not missing, missing


def run(capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["awardwatch", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return info.value.code, capsys.readouterr()


@pytest.mark.parametrize("flag,value", [("--max-rejected", "-1"), ("--max-rejected", "5"), ("--batch-rows", "0")])
def test_a_bad_flag_is_refused_before_any_work(capsys, monkeypatch, tmp_path, flag, value):
    f = write_csv(tmp_path / "a.csv", [row()])
    code, captured = run(capsys, monkeypatch, "ingest", str(f), "-w", str(tmp_path / "w.duckdb"), flag, value)
    assert code == 1 and captured.err.count("\n") == 1 and captured.err.startswith(f"error: {flag}="), captured.err
    assert "-100%" not in captured.err
    assert not (tmp_path / "w.duckdb").exists()


def test_keep_snapshots_below_one_is_refused_before_publishing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AWARDWATCH_KEEP_SNAPSHOTS", "-1")
    f = write_csv(tmp_path / "a.csv", [row()])
    code, captured = run(capsys, monkeypatch, "ingest", str(f), "-w", str(tmp_path / "w.duckdb"), "--snapshot-url", str(tmp_path / "s"))
    assert code == 1 and captured.err.startswith("error: AWARDWATCH_KEEP_SNAPSHOTS=-1 is not allowed: expected a whole number of at least 1")
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("sql", ["", ";", "  ; ;  "])
def test_an_empty_query_is_one_line(capsys, monkeypatch, tmp_path, sql):
    code, captured = run(capsys, monkeypatch, "query", "-w", str(tmp_path / "w.duckdb"), sql)
    assert code == 1 and captured.err.startswith("error: query: no SQL statement given") and captured.err.count("\n") == 1
