"""Every AWARDWATCH_* setting and numeric flag is checked before any work, in one line (issue 18, finding 11)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from awardwatch.flows import settings as config
from tests.factories import run_cli, row, write_csv

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
FIELDS = {f.validation_alias: f for model in (config.Settings, config.Failpoint, config.Debug) for f in model.model_fields.values()}
VARIABLES = [f.validation_alias for f in config.Settings.model_fields.values()]


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
    s = config.load({"AWARDWATCH_HOME": "h", "AWARDWATCH_SOURCES": "fpds, archive", "AWARDWATCH_AGENCIES": " ICE,CBP ",
                     "AWARDWATCH_ALLOW_EMPTY": "yes"})
    assert (s.warehouse, s.staging, s.snapshots) == (Path("h/awardwatch.duckdb"), Path("h/staging"), "h/snapshots")
    assert (s.sources, s.agencies, s.allow_empty) == (("fpds", "archive"), ("ICE", "CBP"), True)
    assert config.load({variable: " " for variable in VARIABLES}) == config.load({})


def test_but_checks_a_flag_as_its_variable_and_ignores_none():
    s = config.load({})
    assert s.but(batch_rows=None, lookback_days=7) == config.load({"AWARDWATCH_LOOKBACK_DAYS": "7"})
    with pytest.raises(config.SettingsError, match=r"^--max-rejected=-1 is not allowed: expected a share from 0 to 1 "):
        s.but(max_rejected_share=-1.0)
    with pytest.raises(config.SettingsError, match=r"^--keep=0 is not allowed: expected a whole number of at least 1$"):
        s.but(keep_snapshots=0)
    with pytest.raises(ValidationError):
        s.batch_rows = 1  # frozen


def test_a_url_in_an_error_hides_its_password():
    with pytest.raises(config.SettingsError) as info:
        config.load({"AWARDWATCH_FPDS_URL": "ftp://user:secret@example.org/feed"})
    assert str(info.value) == ("AWARDWATCH_FPDS_URL=ftp://example.org/feed is not allowed: "
                               "expected an http:// or https:// URL")


def test_failpoints_and_debug_are_read_when_asked(monkeypatch):
    monkeypatch.delenv("AWARDWATCH_KILL_AT", raising=False)
    monkeypatch.setenv("AWARDWATCH_PAUSE_AT", "staged")
    monkeypatch.setenv("AWARDWATCH_PAUSE_SECONDS", "")
    assert config.failpoint() == config.Failpoint(kill_at=None, pause_at="staged", pause_seconds=30)
    monkeypatch.setenv("AWARDWATCH_PAUSE_SECONDS", "-1")
    with pytest.raises(config.SettingsError, match="^AWARDWATCH_PAUSE_SECONDS=-1 is not allowed: expected a number of"):
        config.failpoint()
    monkeypatch.setenv("AWARDWATCH_DEBUG", "")
    assert not config.debug()
    monkeypatch.setenv("AWARDWATCH_DEBUG", "anything")
    assert config.debug()


def test_prefect_defaults_give_way_to_the_environment(monkeypatch):
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    config.prefect_defaults()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED")
    config.prefect_defaults()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_every_setting_is_documented():
    """The settings docstring names every AWARDWATCH_* variable read anywhere in flows/ and warehouse/."""
    root = Path(config.__file__).parents[1]
    used = {m for d in ("flows", "warehouse") for p in (root / d).rglob("*.py") for m in re.findall(r"AWARDWATCH_[A-Z_]+[A-Z]", p.read_text())}
    missing = sorted(v for v in used if v not in config.__doc__)
    assert not missing, missing


def _table() -> dict[str, tuple[str, str]]:
    """variable -> (default, accepts) from the docstring's table."""
    rows = [line.split("|")[1:-1] for line in config.__doc__.splitlines() if line.startswith("| AWARDWATCH_")]
    return {r[0].strip(): (r[1].strip(), r[2].strip()) for r in rows}


def _shown(default) -> str:
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, bool):
        return str(default).lower()
    return f"{default:g}" if isinstance(default, float) else str(default)


SHORT = {r"a whole number of at least (\S+)": r"whole number >= \1",
         r"a whole number above (\S+)": r"whole number > \1",
         r"a number of at least (\S+)": r"number >= \1",
         r"a number above (\S+)": r"number > \1",
         r"a share from (\S+) to (\S+) .*": r"share \1..\2", r"a comma-separated list of ": "comma-separated "}


def _short(accepts: str) -> str:
    """The table's short form of ``settings.accepts``: "a whole number of at least 1" is "whole number >= 1"."""
    for pattern, short in SHORT.items():
        accepts = re.sub("^" + pattern, short, accepts)
    return accepts


def test_the_docstring_table_matches_the_declarations():
    """One row per declared variable (and prefect.yaml's AWARDWATCH_PROJECT_DIR), with its default and range."""
    table = _table()
    assert sorted(table.keys() - FIELDS.keys()) == ["AWARDWATCH_PROJECT_DIR"] and not FIELDS.keys() - table.keys()
    for variable, field in FIELDS.items():
        default, accepts = table[variable]
        if field.default is not None and not field.default_factory:
            expected = str(Path(default)) if isinstance(field.default, Path) else default
            assert expected == _shown(field.default), (variable, default, field.default)
        if (words := config.accepts(field)) is not None:
            assert accepts == _short(words), (variable, accepts, words)


@pytest.mark.parametrize("flag,value", [("--max-rejected", "-1"), ("--max-rejected", "5"), ("--batch-rows", "0")])
def test_a_bad_flag_is_refused_before_any_work(capsys, monkeypatch, tmp_path, flag, value):
    f = write_csv(tmp_path / "a.csv", [row()])
    code, _, err = run_cli("ingest", str(f), "-w", str(tmp_path / "w.duckdb"), flag, value)
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {flag}="), err
    assert "-100%" not in err
    assert not (tmp_path / "w.duckdb").exists()


def test_keep_snapshots_below_one_is_refused_before_publishing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AWARDWATCH_KEEP_SNAPSHOTS", "-1")
    f = write_csv(tmp_path / "a.csv", [row()])
    code, _, err = run_cli("ingest", str(f), "-w", str(tmp_path / "w.duckdb"), "--snapshot-url", str(tmp_path / "s"))
    assert code == 1 and err.startswith("error: AWARDWATCH_KEEP_SNAPSHOTS=-1 is not allowed: expected a whole number of at least 1")
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("sql", ["", ";", "  ; ;  "])
def test_an_empty_query_is_one_line(capsys, monkeypatch, tmp_path, sql):
    code, _, err = run_cli("query", "-w", str(tmp_path / "w.duckdb"), sql)
    assert code == 1 and err.startswith("error: query: no SQL statement given") and err.count("\n") == 1
