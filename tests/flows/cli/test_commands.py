"""The awardwatch command: help texts, summaries, output formats, one-line errors."""

from __future__ import annotations

import json
import re

import pytest

from awardwatch.flows.cli import commands as cli
from tests.factories import row, write_csv
from tests.factories import run_cli as run


def all_commands():
    import typer.main

    group = typer.main.get_command(cli.app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            for sub, c in command.commands.items():
                yield f"{name} {sub}", c
        else:
            yield name, command


@pytest.mark.parametrize("name,command", list(all_commands()))
def test_every_command_and_option_has_help(name, command):
    assert command.help and len(command.help) > 20, f"{name} lacks help"
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert param.help, f"{name} --{param.name} lacks help"


def test_help_lists_the_commands():
    code, out, _ = run("--help")
    assert code == 0
    listed = set(re.findall(r"^│ ([a-z][a-z-]*) ", out, re.M))  # the first word of each line of the Commands panel
    assert {"ingest", "query", "demo", "publish", "snapshots", "run", "backfill", "runs", "report", "changes", "reconcile",
            "status"} <= listed, listed


def test_ingest_prints_a_summary_that_reconciles(capsys, monkeypatch, tmp_path):
    f = write_csv(tmp_path / "a.csv", [row(), row(piid="HSCETC15C00002"), row(piid="BAD", action_date="01/02/2018")])
    code, out, err = run("ingest", str(f), "-w", str(tmp_path / "w.duckdb"), "--max-rejected", "0.5", "--no-publish")
    assert code == 0, err
    assert "read 3 = inserted 2 + updated 0 + unchanged 0 + duplicates 0 + quarantined 1: reconciled" in out
    assert "a.csv" in out


def test_ingest_publishes_by_default(capsys, monkeypatch, tmp_path):
    f = write_csv(tmp_path / "a.csv", [row()])
    code, out, _ = run("ingest", str(f), "-w", str(tmp_path / "w.duckdb"), "--snapshot-url", str(tmp_path / "s"))
    assert code == 0 and "published snapshot" in out
    code, out, _ = run("snapshots", "list", "--snapshot-url", str(tmp_path / "s"), "--format", "json")
    assert json.loads(out)[0]["current"] == "*"


def test_bad_input_is_one_line_on_stderr_with_exit_1(capsys, monkeypatch, tmp_path):
    code, out, err = run("ingest", str(tmp_path / "missing.csv"), "-w", str(tmp_path / "w.duckdb"))
    assert code == 1
    assert err == f"error: {tmp_path / 'missing.csv'}: no such file\n"


def test_query_formats_and_formula_cells_are_neutralised(capsys, monkeypatch, tmp_path):
    f = write_csv(tmp_path / "a.csv", [row(recipient_name="=HYPERLINK(\"http://x\")", amount="-5.00")])
    wh = str(tmp_path / "w.duckdb")
    run("ingest", str(f), "-w", wh, "--no-publish")
    sql = "SELECT recipient_name, federal_action_obligation, recipient_duns FROM transactions"
    code, out, _ = run("query", "-w", wh, "--format", "csv", sql)
    assert code == 0
    assert out.splitlines() == ["recipient_name,federal_action_obligation,recipient_duns", "\"'=HYPERLINK(\"\"http://x\"\")\",-5.00,012345678"]
    code, out, _ = run("query", "-w", wh, "--format", "json", sql)
    assert json.loads(out) == [{"recipient_name": '=HYPERLINK("http://x")', "federal_action_obligation": "-5.00", "recipient_duns": "012345678"}]


def test_query_refuses_writes(capsys, monkeypatch, tmp_path):
    wh = str(tmp_path / "w.duckdb")
    run("ingest", str(write_csv(tmp_path / "a.csv", [row()])), "-w", wh, "--no-publish")
    for sql in ("DELETE FROM transactions", "COPY transactions TO '/tmp/x.csv'", "CREATE TABLE t (a INT)"):
        code, _, err = run("query", "-w", wh, sql)
        assert code == 1 and err.startswith("error: query is read-only"), err


def test_query_without_a_warehouse_says_what_to_do(capsys, monkeypatch, tmp_path):
    code, _, err = run("query", "-w", str(tmp_path / "none.duckdb"), "SELECT 1")
    assert code == 1 and "run `awardwatch ingest` or `awardwatch demo` first" in err


def test_demo_builds_a_warehouse_publishes_and_prints_a_query(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AWARDWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AWARDWATCH_WAREHOUSE", raising=False)
    monkeypatch.delenv("AWARDWATCH_SNAPSHOT_URL", raising=False)
    code, out, err = run("demo", "--rows", "600")
    assert code == 0, err
    assert "reconciled" in out and "published snapshot" in out
    assert "ICE and CBP: top parent companies" in out and "gives the same result" in out
    assert (tmp_path / "home" / "awardwatch.duckdb").exists()
