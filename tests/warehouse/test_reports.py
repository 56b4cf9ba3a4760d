"""Company and agency reports, watchlists, and the changes between two snapshots."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from awardwatch.flows.cli.reports import changes_command, report_app
from awardwatch.flows.core.changes import changes_markdown, load_watchlist, publish_changes, write_changes_markdown
from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from awardwatch.schemas.agencies import AgencyRef, agency_ref
from awardwatch.schemas.errors import InputError
from awardwatch.schemas.watchlist import Watchlist
from tests.paths import ROOT
from tests.factories import row, write_csv
from awardwatch.warehouse import companies, db
from awardwatch.warehouse import reports
from awardwatch.warehouse.changes import snapshot_changes
from awardwatch.warehouse.reports import ReportError
from awardwatch.warehouse.snapshots import connect_snapshot
from awardwatch.warehouse.store import open_store

D = Decimal
NOT_TECH = {"product_or_service_code": "S206", "naics_code": "561210"}


def company(piid: str, name: str, parent: str = "", **values) -> dict:
    """A row of a recipient known by name (and parent name) only."""
    return row(piid=piid, **({"recipient_name": name, "recipient_uei": "", "recipient_duns": "", "recipient_parent_name": parent} | values))


ROWS = [
    company("P1", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", amount="1000000.00", action_date="2017-03-01",
            transaction_description="FALCON OPERATIONS AND MAINTENANCE", current_total_value_of_award="1500000.00"),
    company("P1", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", mod="P00001", amount="500000.00", action_date="2018-02-01",
            transaction_description="FUNDING", current_total_value_of_award="2000000.00", potential_total_value_of_award="5000000.00"),
    company("P2", "PALANTIR TECHNOLOGIES INC.", amount="200000.00", action_date="2018-05-01",
            awarding_sub_agency_code="7014", awarding_sub_agency_name="U.S. Customs and Border Protection"),
    company("R1", "CARAHSOFT TECHNOLOGY CORP.", amount="300000.00", action_date="2018-04-01",
            transaction_description="PALANTIR GOTHAM LICENSE RENEWAL AND O&M SUPPORT"),
    company("G1", "THE GEO GROUP, INC.", amount="2000000.00", action_date="2017-06-01", **NOT_TECH),
    company("G2", "GEO GROUP INC., THE", amount="3000000.00", action_date="2018-06-01", **NOT_TECH),
    company("M1", "MICROSOFT CORPORATION", amount="400000.00", action_date="2018-07-01", transaction_description="MICROSOFT PREMIER SUPPORT"),
]


@pytest.fixture
def con(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "rows.csv", ROWS)], warehouse=warehouse)  # loads resolve companies and build the marts
    c = reports.open_warehouse(warehouse)
    yield c
    c.close()


def test_agencies_by_abbreviation_toptier_or_subtier_code():
    assert agency_ref("ice") == AgencyRef("7012", "subtier", "ICE")
    assert agency_ref("7012") == AgencyRef("7012", "subtier", "ICE")
    assert agency_ref("DHS") == AgencyRef("070", "toptier", "DHS")
    assert agency_ref("070") == AgencyRef("070", "toptier", "DHS")
    assert agency_ref("097") == AgencyRef("097", "toptier", "097")
    assert agency_ref("7040") == AgencyRef("7040", "subtier", "7040")
    with pytest.raises(InputError, match="unknown agency 'NASAX'; use an abbreviation"):
        agency_ref("NASAX")


def test_company_report_lists_awards_brands_via_resellers_and_years(con):
    report = reports.company_report(con, "palantir", agency="ICE")
    assert report.companies.rows == [("Palantir Technologies", 2, 1, D("1500000.00"))]
    [award] = report.awards.records()
    assert {k: award[k] for k in ("agency", "piid", "first_action_date", "latest_action_date", "obligated", "current_value",
                                  "potential_value", "recipient")} == {
        "agency": "ICE", "piid": "P1", "first_action_date": award["first_action_date"].__class__(2017, 3, 1),
        "latest_action_date": award["latest_action_date"].__class__(2018, 2, 1), "obligated": D("1500000.00"),
        "current_value": D("2000000.00"), "potential_value": D("5000000.00"), "recipient": "PALANTIR USG INC."}
    assert award["award_key"].startswith("CONT_AWD_P1_7012")
    [mention] = report.brand_mentions.records()
    assert (mention["piid"], mention["reseller"], mention["reseller_parent"], mention["brands"], mention["obligated"]) == (
        "R1", "CARAHSOFT TECHNOLOGY CORP.", "Carahsoft", "Palantir Gotham", D("300000.00"))
    assert report.years.rows == [
        (2017, D("1000000.00"), 1, D("0"), 0, D("1000000.00")),
        (2018, D("500000.00"), 1, D("300000.00"), 1, D("800000.00")),
    ]


LICENSES = "PALANTIR SOFTWARE LICENSES AND MAINTENANCE, GOTHAM PLATFORM"
RESOLD = [
    company("P1", "PALANTIR USG INC.", "PALANTIR TECHNOLOGIES INC.", amount="1000.00"),
    # the base action names the brand; its later modification only says FUNDING (the award's base description does)
    company("R2", "CARAHSOFT TECHNOLOGY CORP.", amount="300000.00", action_date="2018-04-01",
            transaction_description=LICENSES, prime_award_base_transaction_description=LICENSES),
    company("R2", "CARAHSOFT TECHNOLOGY CORP.", mod="P00001", amount="50000.00", action_date="2018-09-01",
            transaction_description="INCREMENTAL FUNDING", prime_award_base_transaction_description=LICENSES),
    # only a modification loaded: the brand is in the award's base description
    company("R3", "CARAHSOFT TECHNOLOGY CORP.", mod="P00002", amount="7000.00", action_date="2018-09-01",
            transaction_description="OPTION YEAR 2",
            prime_award_base_transaction_description="PALANTIR FOUNDRY SUBSCRIPTION"),
]


def test_brand_mentions_show_the_action_and_text_that_matched(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "rows.csv", RESOLD)], warehouse=warehouse)
    with reports.open_warehouse(warehouse) as c:
        report = reports.company_report(c, "Palantir")
    evidence = {m["piid"]: m for m in report.brand_mentions.records()}
    r2, r3 = evidence["R2"], evidence["R3"]
    assert r2["obligated"] == D("350000.00") and r2["latest_action_date"].isoformat() == "2018-09-01"
    assert (r2["matched_description"], r2["matched_text"], r2["matched_in"], r2["matched_modification"]) == (
        LICENSES, "PALANTIR", "transaction_description", "0")  # not the latest action's INCREMENTAL FUNDING
    assert r2["matched_transaction_key"].endswith("_R2_0_-NONE-_0")
    assert (r3["matched_description"], r3["matched_text"], r3["matched_in"], r3["matched_modification"]) == (
        "PALANTIR FOUNDRY SUBSCRIPTION", "PALANTIR FOUNDRY", "prime_award_base_transaction_description", "P00002")
    assert "description" not in report.brand_mentions.columns


def test_provenance_names_the_run_snapshot_latest_change_and_source(tmp_path, warehouse):
    rows = [r | {"last_modified_date": "2019-01-02 03:04:05"} if r["award_id_piid"] == "P2" else r for r in ROWS]
    first = ingest([write_csv(tmp_path / "rows.csv", rows)], warehouse=warehouse)
    with reports.open_warehouse(warehouse) as c:
        before = reports.company_report(c, "Palantir", agency="ICE").provenance
    assert before == {"snapshot_id": None, "run_id": first.run_id, "last_modified_date": datetime(2018, 3, 6, 10),
                      "source": ["file"]}  # P2 (CBP) is out of scope; no snapshot yet
    url = str(tmp_path / "snaps")
    snapshot_id = publish(warehouse, url, run_ids=[first.run_id]).snapshot_id
    with reports.open_warehouse(warehouse) as c:
        company_ = reports.company_report(c, "Palantir")
        agency = reports.agency_report(c, "CBP")
    expected = {"snapshot_id": snapshot_id, "run_id": first.run_id, "last_modified_date": datetime(2019, 1, 2, 3, 4, 5),
                "source": ["file"]}
    assert company_.provenance == agency.provenance == expected
    assert company_.as_dict()["provenance"] == expected and agency.as_dict()["provenance"] == expected

    c, manifest = connect_snapshot(open_store(url))  # no runs table: the snapshot's manifest says where it comes from
    try:
        on_snapshot = reports.company_report(c, "Palantir", manifest=manifest)
        agency_on_snapshot = reports.agency_report(c, "ICE", manifest=manifest)
    finally:
        c.close()
    assert on_snapshot.provenance == {"snapshot_id": snapshot_id, "snapshot_created_at": manifest["created_at"],
                                      "run_ids": [first.run_id], "last_modified_date": datetime(2019, 1, 2, 3, 4, 5),
                                      "source": ["file"]}
    assert agency_on_snapshot.provenance["last_modified_date"] == datetime(2018, 3, 6, 10)
    assert on_snapshot.brand_mentions.rows == company_.brand_mentions.rows


def test_company_report_filters_since_and_spans_agencies(con):
    report = reports.company_report(con, "Palantir Technologies Inc.", since=2018)
    assert sorted((a["piid"], a["agency"], a["obligated"]) for a in report.awards.records()) == [
        ("P1", "ICE", D("500000.00")), ("P2", "CBP", D("200000.00"))]
    assert [r[0] for r in report.years.rows] == [2018]


def test_company_spelling_variants_match_one_company(con):
    for name in ("GEO Group", "the geo group, inc.", "GEO GROUP INC., THE"):
        report = reports.company_report(con, name)
        assert [r[0] for r in report.companies.rows] == ["GEO Group"]
        assert sorted(a["piid"] for a in report.awards.records()) == ["G1", "G2"]


def test_unknown_company_is_a_one_line_error(con):
    with pytest.raises(ReportError, match="no company matches 'Initech'"):
        reports.company_report(con, "Initech")
    with pytest.raises(InputError, match="empty once normalised"):
        reports.company_report(con, "Inc.")


def test_agency_report_ranks_companies_with_share_and_year_on_year_change(con):
    report = reports.agency_report(con, "ICE", fiscal_year=2018)
    assert (report.total, report.previous_total, report.agency_name) == (
        D("4200000.00"), D("3000000.00"), "U.S. Immigration and Customs Enforcement")
    got = [(r["rank"], r["parent_company"], r["obligated"], r["share_pct"], r["awards"], r["technology_obligated"],
            r["previous_obligated"], r["change"], r["change_pct"]) for r in report.companies.records()]
    assert got == [
        (1, "GEO Group", D("3000000.00"), D("71.4"), 1, D("0"), D("2000000.00"), D("1000000.00"), D("50.0")),
        (2, "Palantir Technologies", D("500000.00"), D("11.9"), 1, D("500000.00"), D("1000000.00"), D("-500000.00"), D("-50.0")),
        (3, "Microsoft", D("400000.00"), D("9.5"), 1, D("400000.00"), None, D("400000.00"), None),
        (4, "Carahsoft", D("300000.00"), D("7.1"), 1, D("300000.00"), None, D("300000.00"), None),
    ]
    assert [(r[0], r[1]) for r in report.years.rows] == [(2017, D("3000000.00")), (2018, D("4200000.00"))]
    assert len(reports.agency_report(con, "ICE", fiscal_year=2018, top=2).companies.rows) == 2
    dhs = reports.agency_report(con, "070")  # toptier, latest fiscal year by default
    assert (dhs.fiscal_year, dhs.total) == (2018, D("4400000.00"))
    with pytest.raises(ReportError, match="no transactions awarded by FBI"):
        reports.agency_report(con, "FBI")


def test_reports_refuse_a_warehouse_without_resolution(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "rows.csv", ROWS[:1])], warehouse=warehouse)
    c = duckdb.connect(str(warehouse))
    c.execute("UPDATE transactions SET parent_company = NULL")  # as after upgrading a warehouse to migration 003
    c.close()
    with pytest.raises(ReportError, match="run `awardwatch report resolve`"):
        reports.open_warehouse(warehouse)


def test_watchlist_yaml_and_csv(tmp_path):
    shipped = load_watchlist(ROOT / "watchlist.yaml")
    assert {"Palantir", "Microsoft", "GEO Group", "CoreCivic"} <= set(shipped.companies)
    assert [a.code for a in shipped.agencies] == ["7012", "7014"]
    f = tmp_path / "w.csv"
    f.write_text("kind,name\ncompany,Palantir\nagency,FEMA\nagency,070\n")
    w = load_watchlist(f)
    assert (w.companies, [a.code for a in w.agencies]) == (["Palantir"], ["7022", "070"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("companies: [Palantir\n")
    with pytest.raises(InputError, match="bad.yaml.*not valid YAML"):
        load_watchlist(bad)
    bad.write_text("agencies: [NOPE]\n")
    with pytest.raises(InputError, match="unknown agency 'NOPE'"):
        load_watchlist(bad)
    with pytest.raises(InputError, match="cannot read watchlist"):
        load_watchlist(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------------------------
# Changes between snapshots
# ---------------------------------------------------------------------------------------------------------


def resolve_and_publish(warehouse: Path, url: str):
    con = db.connect(warehouse)
    companies.resolve(con)
    companies.marts(con)
    con.close()
    result = publish(warehouse, url)
    assert result.published
    return result.snapshot_id


@pytest.fixture
def two_snapshots(tmp_path, warehouse):
    """Snapshot 1: four awards. Then one new award (CBP), one new modification, one deobligation,
    and one row deleted straight from the warehouse file. Snapshot 2."""
    url = str(tmp_path / "snaps")
    base = [
        company("A1", "THE GEO GROUP, INC.", amount="1000.00", transaction_description="DETENTION SERVICES"),
        company("B1", "PALANTIR USG INC.", amount="2000.00", transaction_description="FALCON O&M"),
        company("C1", "MICROSOFT CORPORATION", amount="3000.00", transaction_description="PREMIER SUPPORT"),
        company("D1", "GEO GROUP, INC.", amount="4000.00", transaction_description="TRANSPORTATION SERVICES"),
    ]
    ingest([write_csv(tmp_path / "day1.csv", base)], warehouse=warehouse)
    first = resolve_and_publish(warehouse, url)
    day2 = [
        company("E1", "MOTOROLA SOLUTIONS, INC.", amount="5000.00", action_date="2018-04-02", transaction_description="APX RADIOS",
                awarding_sub_agency_code="7014", awarding_sub_agency_name="U.S. Customs and Border Protection"),
        company("A1", "THE GEO GROUP, INC.", mod="P00001", amount="100.00", action_date="2018-04-02",
                transaction_description="EXERCISE OPTION YEAR ONE"),
        company("B1", "PALANTIR USG INC.", mod="P00001", amount="-50.00", action_date="2018-04-02",
                transaction_description="DE-OBLIGATE EXCESS FUNDS"),
    ]
    ingest([write_csv(tmp_path / "day2.csv", day2)], warehouse=warehouse)
    con = duckdb.connect(str(warehouse))
    con.execute("DELETE FROM transactions WHERE award_id_piid = 'D1'")
    con.close()
    second = resolve_and_publish(warehouse, url)
    return url, first, second


def test_changes_list_exactly_what_changed_between_two_snapshots(two_snapshots):
    url, first, second = two_snapshots
    changes = snapshot_changes(open_store(url))  # default: latest vs the one before
    assert (changes.old_snapshot, changes.new_snapshot) == (first, second)
    got = [(r[0], r[4], r[5], r[6], r[7], r[8], r[10]) for r in changes.rows]
    assert got == [
        ("new award", "E1", "0", "MOTOROLA SOLUTIONS, INC.", "Motorola Solutions", D("5000.00"), "APX RADIOS"),
        ("new modification", "A1", "P00001", "THE GEO GROUP, INC.", "GEO Group", D("100.00"), "EXERCISE OPTION YEAR ONE"),
        ("deobligation", "B1", "P00001", "PALANTIR USG INC.", "Palantir Technologies", D("-50.00"), "DE-OBLIGATE EXCESS FUNDS"),
        ("deletion", "D1", "0", "GEO GROUP, INC.", "GEO Group", D("4000.00"), "TRANSPORTATION SERVICES"),
    ]
    assert changes.counts() == {"new award": 1, "new modification": 1, "deobligation": 1, "correction": 0, "deletion": 1}
    assert [r[2] for r in changes.rows] == ["CBP", "ICE", "ICE", "ICE"]


def test_changes_are_limited_to_the_watchlist(two_snapshots):
    url, first, second = two_snapshots
    store = open_store(url)
    geo = snapshot_changes(store, first, second, Watchlist(companies=["GEO Group"]))
    assert [(r[0], r[4]) for r in geo.rows] == [("new modification", "A1"), ("deletion", "D1")]
    cbp = snapshot_changes(store, first, second, Watchlist(agencies=[agency_ref("CBP")]))
    assert [(r[0], r[4]) for r in cbp.rows] == [("new award", "E1")]
    nobody = snapshot_changes(store, first, second, Watchlist(companies=["Initech"], agencies=[agency_ref("FBI")]))
    assert nobody.rows == []
    assert "No changes touching the watchlist." in changes_markdown(nobody)


def test_changes_markdown_is_written_beside_the_snapshot(two_snapshots):
    url, first, second = two_snapshots
    store = open_store(url)
    changes = snapshot_changes(store, first, second)
    text = changes_markdown(changes)
    assert text.startswith(f"# awardwatch changes: `{first}` → `{second}`")
    assert "| new award | 1 | 5,000.00 |" in text and "| deletion | 1 | 4,000.00 |" in text
    assert "## New awards (1)" in text and "## Deobligations (1)" in text and "## Corrections" not in text
    assert "| 2018-04-02 | CBP |" in text and "APX RADIOS" in text
    key = write_changes_markdown(store, changes, text)
    assert key == f"snapshots/{second}/changes.md"
    assert (Path(url) / key).read_text(encoding="utf-8") == text


def test_changes_since_an_unknown_snapshot_is_an_error(two_snapshots):
    url, first, second = two_snapshots
    with pytest.raises(Exception, match="no snapshot 'nope'"):
        snapshot_changes(open_store(url), "nope", second)
    with pytest.raises(ReportError, match="has no earlier snapshot"):
        snapshot_changes(open_store(url), None, first)


# ---------------------------------------------------------------------------------------------------------
# CLI (registered the way flows/cli.py will register them)
# ---------------------------------------------------------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(report_app, name="report")
    app.command(name="changes")(changes_command)
    return app


def test_every_report_command_and_option_has_help():
    import typer.main

    group = typer.main.get_command(cli_app())
    commands = [group.commands["changes"], *group.commands["report"].commands.values()]
    assert {c.name for c in commands} == {"changes", "company", "agency", "resolve"}
    for command in commands:
        assert command.help and len(command.help) > 20, command.name
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{command.name} --{param.name} lacks help"


def test_cli_reports_and_changes(two_snapshots, warehouse, tmp_path, monkeypatch):
    url, first, second = two_snapshots
    monkeypatch.chdir(tmp_path)  # no ./watchlist.yaml here: everything is watched
    runner = CliRunner()
    app = cli_app()
    result = runner.invoke(app, ["report", "company", "GEO Group", "--warehouse", str(warehouse), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("agency,award_key,piid,recipient,parent_company,first_action_date")
    assert len(lines) == 2 and ",A1," in lines[1] and ",1100.00," in lines[1]
    result = runner.invoke(app, ["report", "agency", "ICE", "--warehouse", str(warehouse), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fiscal_year"] == 2018 and [c["parent_company"] for c in data["companies"]] == ["Microsoft", "Palantir Technologies", "GEO Group"]
    result = runner.invoke(app, ["report", "agency", "ICE", "--warehouse", str(warehouse)])
    assert result.exit_code == 0 and "ICE: top parent companies, FY2018" in result.output
    result = runner.invoke(app, ["changes", "--snapshot-url", url, "--warehouse", str(warehouse), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"] == {"new award": 1, "new modification": 1, "deobligation": 1, "correction": 0, "deletion": 1}
    watch = tmp_path / "watch.yaml"
    watch.write_text("companies: [Palantir]\n")
    result = runner.invoke(app, ["changes", "--since", first, "--snapshot-url", url, "--watchlist", str(watch), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "## Deobligations (1)" in result.output and "## New awards" not in result.output
    result = runner.invoke(app, ["report", "resolve", "--warehouse", str(warehouse)])
    assert result.exit_code == 0 and "parent companies resolved: " in result.output


def test_publish_changes_after_a_publish(two_snapshots, tmp_path):
    url, first, second = two_snapshots
    store = open_store(url)
    assert publish_changes(store, first) is None  # the first snapshot has nothing to compare with
    watch = tmp_path / "watch.yaml"
    watch.write_text("agencies: [CBP]\n")
    changes, key = publish_changes(store, second, watch)
    assert [(r[0], r[4]) for r in changes.rows] == [("new award", "E1")]
    assert key == f"snapshots/{second}/changes.md"
    assert (Path(url) / key).read_text(encoding="utf-8") == changes_markdown(changes)


def test_the_changes_markdown_can_be_capped(two_snapshots):
    url, first, second = two_snapshots
    changes = snapshot_changes(open_store(url), first, second)
    capped = changes_markdown(changes, limit=0, whole="s3://b/snapshots/x/changes.md")
    assert "| action date |" in capped and "\n| 20" not in capped.replace("\n|---", "")
    assert "more new awards: the whole list is `s3://b/snapshots/x/changes.md`." in capped
