"""`awardwatch reconcile` against the local USAspending fake's search endpoints
(tests/servers/usaspending_search.py, which follows usaspending-api's spending_over_time.md and
spending_by_transaction_count.md)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows import settings as config
from awardwatch.flows.core.reconcile import reconcile
from awardwatch.flows.sources.usaspending_totals import cents
from tests.factories import row, write_csv
from tests.servers.usaspending import FakeUSAspending
from tests.servers.usaspending_search import Plant

pytestmark = pytest.mark.timeout(30)
ICE = "U.S. Immigration and Customs Enforcement"
CBP = "U.S. Customs and Border Protection"


def rows() -> list[dict]:
    cbp = {"awarding_sub_agency_code": "7014", "awarding_sub_agency_name": CBP}
    return [
        row("70CMSD18C0001", amount="1000.10", action_date="2017-10-01"),
        row("70CMSD18C0001", mod="P00001", amount="-250.35", action_date="2018-09-30"),  # a deobligation, last day of FY2018
        row("70CMSD18C0002", amount="0.20", action_date="2018-02-01"),
        row("70CMSD18A0003", amount="5000.00", action_date="2018-03-01", award_or_idv_flag="IDV", award_type_code="", idv_type_code="B"),
        row("70CMSD19C0004", amount="123.45", action_date="2018-10-01"),  # FY2019
        row("70B04C18C0005", amount="77.77", action_date="2018-05-05", **cbp),
    ]


@pytest.fixture
def env(tmp_path):
    """A fake serving rows(), a warehouse loaded with the same rows, and settings pointing at both."""
    served = rows()
    wh = tmp_path / "wh" / "awardwatch.duckdb"
    ingest([write_csv(tmp_path / "feed.csv", served)], warehouse=wh, batch_rows=1000)
    with FakeUSAspending(served, polls_until_finished=0) as api:
        s = config.load({"AWARDWATCH_WAREHOUSE": str(wh), "AWARDWATCH_USASPENDING_URL": api.url, "AWARDWATCH_AGENCIES": "ICE,CBP",
                         "AWARDWATCH_POLL_SECONDS": "0.01", "AWARDWATCH_HTTP_BACKOFF": "0", "AWARDWATCH_HTTP_ATTEMPTS": "1"})
        yield s, api


def cells(result) -> dict:
    return {(r.agency_code, r.fiscal_year): r for r in result.rows}


def test_api_floats_are_rounded_to_the_cent_before_comparing():
    assert cents(0.1 + 0.2) == Decimal("0.30")
    assert cents(1234.005) == Decimal("1234.01")
    assert cents(-250.345) == Decimal("-250.35")
    assert cents(None) == Decimal("0.00")


def test_clean_data_matches_exactly_and_the_run_is_recorded(env, sql_at):
    s, api = env
    result = reconcile(s)
    got = cells(result)
    assert set(got) == {("7012", 2018), ("7012", 2019), ("7014", 2018)}
    assert got[("7012", 2018)].warehouse_obligations == Decimal("5749.95") == got[("7012", 2018)].usaspending_obligations
    assert (got[("7012", 2018)].warehouse_transactions, got[("7012", 2018)].usaspending_transactions) == (4, 4)
    assert result.ok and all(r.status == "match" for r in result.rows)
    body = next(b for m, p, b in api.requests if p.startswith("/api/v2/search/spending_over_time"))
    assert body["filters"]["agencies"][0]["name"] == ICE and body["group"] == "fiscal_year" and body["spending_level"] == "transactions"
    assert {"start_date": "2017-10-01", "end_date": "2018-09-30"} in body["filters"]["time_period"]
    counts = [b for m, p, b in api.requests if p.startswith("/api/v2/search/spending_by_transaction_count")]
    # one per agency and year (2 x 2); CBP FY2019 is empty on both sides, so it has no row
    assert len(counts) == 4 and all(len(b["filters"]["time_period"]) == 1 for b in counts)
    assert sql_at(s.warehouse, "SELECT count(*), count(DISTINCT run_id), bool_and(status = 'match') FROM reconciliations") == [(3, 1, True)]
    # a department expands to its sub-agencies present in the warehouse
    assert set(cells(reconcile(s, ["DHS"], [2018]))) == {("7012", 2018), ("7014", 2018)}


def test_planted_obligation_and_count_differences_are_flagged_and_nothing_else(env, sql_at):
    s, api = env
    api.search_plants += [Plant(ICE, 2018, obligations=0.01), Plant(CBP, 2018, transactions=1)]
    first = reconcile(s)
    result = CliRunner().invoke(__import__("awardwatch.flows.cli", fromlist=["app"]).app, ["reconcile", "--warehouse", str(s.warehouse), "--format", "json"],
                                env={"AWARDWATCH_USASPENDING_URL": api.url, "AWARDWATCH_AGENCIES": "ICE,CBP", "AWARDWATCH_HTTP_ATTEMPTS": "1"})
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    flagged = {(r["agency_code"], r["fiscal_year"]): r for r in out["rows"] if r["status"] == "mismatch"}
    assert set(flagged) == {("7012", 2018), ("7014", 2018)}
    ice, cbp = flagged[("7012", 2018)], flagged[("7014", 2018)]
    assert (ice["warehouse_obligations"], ice["usaspending_obligations"], ice["obligations_difference"], ice["transactions_difference"]) == (
        "5749.95", "5749.96", "-0.01", 0)
    assert (cbp["obligations_difference"], cbp["warehouse_transactions"], cbp["usaspending_transactions"], cbp["transactions_difference"]) == (
        "0.00", 1, 2, -1)
    assert [r["status"] for r in out["rows"] if (r["agency_code"], r["fiscal_year"]) == ("7012", 2019)] == ["match"]
    assert ice["mismatch_since"] == first.checked_at.isoformat()  # when the difference first appeared
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1 and "2 of 3 agency-years differ" in summary[0] and "worst: 7012" in summary[0] and "FY2018" in summary[0]
    assert sql_at(s.warehouse, "SELECT count(DISTINCT run_id), count(*) FILTER (WHERE status = 'mismatch') FROM reconciliations") == [(2, 4)]


def test_repair_heals_a_row_modified_upstream_and_reports_a_difference_that_stays(env, sql_at):
    s, api = env
    changed = next(r for r in api.transactions if r["award_id_piid"] == "70CMSD18C0002")
    changed.update(federal_action_obligation="900.20", last_modified_date="2018-12-01 10:00:00")
    api.search_plants.append(Plant(CBP, 2018, obligations=5.0))  # search totals off from USAspending's own files
    result = reconcile(s, repair=True)
    got = cells(result)
    ice, cbp = got[("7012", 2018)], got[("7014", 2018)]
    assert ice.status == "match" and ice.warehouse_obligations == Decimal("6649.95")
    assert ice.repair["outcome"] == "healed" and ice.repair["updated"] == 1 and ice.repair["before"]["obligations_difference"] == Decimal("-900.00")
    assert cbp.status == "mismatch" and cbp.repair["outcome"] == "persists" and cbp.obligations_difference == Decimal("-5.00")
    assert got[("7012", 2019)].repair is None
    downloads = [b["filters"] for m, p, b in api.requests if p.startswith("/api/v2/bulk_download/awards")]
    assert [(f["date_type"], f["date_range"]["start_date"], f["agencies"][0]["name"]) for f in downloads] == [
        ("action_date", "2017-10-01", ICE), ("action_date", "2017-10-01", CBP)]
    from awardwatch.flows.core.reconcile import repair_lines

    lines = repair_lines(result)
    assert lines[0].startswith("repaired 7012 FY2018") and "updated 1" in lines[0]
    assert lines[1].startswith("NOT repaired 7014 FY2018") and "disagree with its own download files" in lines[1]
    assert "stays after a repair" in result.summary()
    assert sql_at(s.warehouse, "SELECT phase, agency_code, status, repair_run_id IS NOT NULL FROM reconciliations WHERE phase = 'recheck' ORDER BY 2") == [
        ("recheck", "7012", "match", True), ("recheck", "7014", "mismatch", True)]
    assert sql_at(s.warehouse, "SELECT federal_action_obligation FROM transactions WHERE award_id_piid = '70CMSD18C0002'") == [(Decimal("900.20"),)]
    # status reports the latest reconciliation's remaining mismatch, and only it
    from awardwatch.flows.core.reconcile import status

    problems = [p for p in status(s, online=False).problems if p.kind == "reconciliation"]
    assert len(problems) == 1 and "7014" in problems[0].message and "after a repair" in problems[0].message


def _search_years(api) -> list[tuple[str, tuple[str, ...]]]:
    """(agency, start dates) of each search request, in order."""
    return [(b["filters"]["agencies"][0]["name"], tuple(p["start_date"] for p in b["filters"]["time_period"]))
            for m, p, b in api.requests if p.startswith("/api/v2/search/")]


def test_the_nightly_check_covers_exactly_the_groups_its_runs_touched_and_the_command_all(env, tmp_path, sql_at):
    """Issue 16.1: after a job, only the (sub-agency, fiscal year) groups of the rows its runs inserted, updated
    or deleted (before and after) are compared; `awardwatch reconcile` still compares every year of every agency."""
    from awardwatch.flows.core.reconcile import after_load
    from awardwatch.warehouse import db

    s, api = env
    moved = next(r for r in api.transactions if r["award_id_piid"] == "70CMSD18C0002")
    moved.update(action_date="2018-11-01", last_modified_date="2019-01-01 00:00:00")  # ICE FY2018 -> FY2019, upstream too
    job = ingest([write_csv(tmp_path / "correction.csv", [moved])], warehouse=s.warehouse)
    api.requests.clear()
    con = db.connect(s.warehouse)
    try:
        checked = after_load(con, s, ["ICE", "CBP"], [job.run_id])
    finally:
        con.close()
    assert [(r["agency_code"], r["fiscal_year"]) for r in checked["rows"]] == [("7012", 2018), ("7012", 2019)]
    assert checked["verdict"] == "match"
    assert {name for name, _ in _search_years(api)} == {ICE}  # CBP untouched: not asked
    assert all(set(years) <= {"2017-10-01", "2018-10-01"} for _, years in _search_years(api))
    assert sql_at(s.warehouse, "SELECT DISTINCT scope FROM reconciliations WHERE run_id = ?", checked["run_id"]) == [("touched",)]
    assert sql_at(s.warehouse, "SELECT reconciliation FROM runs WHERE run_id = ?", job.run_id) == [("match",)]
    api.requests.clear()
    everything = reconcile(s)  # the command: every year of every agency
    assert set(cells(everything)) == {("7012", 2018), ("7012", 2019), ("7014", 2018)} and everything.ok
    assert {name for name, _ in _search_years(api)} == {ICE, CBP}


def test_a_job_that_loaded_nothing_checks_nothing_and_a_run_without_a_record_checks_all(env, sql_at):
    from awardwatch.flows.core.reconcile import after_load
    from awardwatch.warehouse import db

    s, api = env
    con = db.connect(s.warehouse)
    try:
        assert after_load(con, s, ["ICE", "CBP"], [])["rows"] == []
        (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
        con.execute("UPDATE runs SET touched = NULL")  # as a run from before migration 008
        checked = after_load(con, s, ["ICE", "CBP"], [run_id])
    finally:
        con.close()
    assert {(r["agency_code"], r["fiscal_year"]) for r in checked["rows"]} == {("7012", 2018), ("7012", 2019), ("7014", 2018)}


def test_a_mismatch_outside_what_a_nightly_checked_stays_reported(env, tmp_path, sql_at):
    """Status and the manifest take each cell's latest word: a nightly that checks ICE FY2019 does not hide the CBP
    FY2018 difference the last full reconciliation found."""
    from awardwatch.flows.core.reconcile import after_load, status
    from awardwatch.warehouse import db
    from awardwatch.warehouse import reconcile as sql

    s, api = env
    api.search_plants.append(Plant(CBP, 2018, transactions=1))
    assert not reconcile(s).ok
    added = row("70CMSD19C0009", amount="1.00", action_date="2019-01-15")
    api.transactions.append(added)
    job = ingest([write_csv(tmp_path / "new.csv", [added])], warehouse=s.warehouse)
    con = db.connect(s.warehouse)
    try:
        checked = after_load(con, s, ["ICE", "CBP"], [job.run_id])
        assert [(r["agency_code"], r["fiscal_year"], r["status"]) for r in checked["rows"]] == [("7012", 2019, "match")]
        section = sql.manifest_section(con)
    finally:
        con.close()
    assert section["run_id"] == checked["run_id"] and section["ok"] is False
    assert [(r["agency_code"], r["fiscal_year"], r["status"]) for r in section["rows"]] == [
        ("7012", 2018, "match"), ("7012", 2019, "match"), ("7014", 2018, "mismatch")]
    assert [r["run_id"] == checked["run_id"] for r in section["rows"]] == [False, True, False]
    problems = [p for p in status(s, online=False).problems if p.kind == "reconciliation"]
    assert len(problems) == 1 and "7014" in problems[0].message
