"""``companies.refresh`` resolves only what the loads since the last refresh reach, and ends exactly where a
full rebuild (``companies.resolve`` + ``companies.marts``) ends, table by table."""

from __future__ import annotations

from pathlib import Path

import pytest

from awardwatch.flows.core import ingest as job
from awardwatch.flows.core.ingest import ingest
from awardwatch.schemas.layouts import current_columns
from tests.factories import row, write_csv
from awardwatch.warehouse import companies, db

# what resolution and the mart write, and the resolver's counts, each table in full (lists of rows, sorted)
TABLES = {
    "transactions": "SELECT contract_transaction_unique_key, parent_company, parent_company_method FROM transactions",
    "awards": "SELECT * FROM awards",
    "recipients": "SELECT * FROM recipients",
    "brand_mentions": "SELECT * FROM brand_mentions",
    "company_agency_fiscal_year": "SELECT * FROM company_agency_fiscal_year",
    "resolution_methods": "SELECT * FROM resolution_methods",
    "resolution_duns": "SELECT * FROM resolution_duns",
    "resolution_duns_counts": "SELECT * FROM resolution_duns_counts",
    "resolution_parent_names": "SELECT * FROM resolution_parent_names",
    "resolution_parents": "SELECT * FROM resolution_parents",
}
DELTA_COLUMNS = ["correction_delete_ind", "agency_id", *current_columns()]
FULL_RESOLVE = companies.resolve  # the tests refuse it to refreshes


def tx(piid: str, recipient: str, uei: str = "", *, mod: str = "0", duns: str = "", parent_uei: str = "",
       parent_name: str = "", **values: str) -> dict:
    """A row of recipient ``recipient``; identifiers left out are empty."""
    return row(piid=piid, mod=mod, recipient_name=recipient, recipient_uei=uei, recipient_duns=duns,
               recipient_parent_uei=parent_uei, recipient_parent_name=parent_name, **values)


def deletion(piid: str, mod: str = "0", agency: str = "7012", when: str = "2024-01-02 00:00:00") -> dict:
    return {"correction_delete_ind": "D", "agency_id": agency, "award_id_piid": piid, "modification_number": mod,
            "transaction_number": "0", "contract_transaction_unique_key": f"{agency}_-NONE-_{piid}_{mod}_-NONE-_0",
            "last_modified_date": when}


def later(**values: str) -> dict:
    """Values of a correction: last modified after the rows it replaces."""
    return {"last_modified_date": "2023-06-01 00:00:00"} | values


BASE = [
    # siblings under parent UEI PARENT000001, reported as ACME HOLDINGS
    tx("A1", "ACME WIDGETS LLC", "ACMEWI000001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC", amount="100.00"),
    tx("A1", "ACME WIDGETS LLC", "ACMEWI000001", mod="P00001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC",
       amount="50.00", action_date="2018-05-01"),
    tx("A2", "ACME WIDGETS LLC", "ACMEWI000001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC",
       awarding_sub_agency_code="7014", awarding_sub_agency_name="U.S. Customs and Border Protection"),
    tx("B1", "BETA SERVICES INC", "BETASE000001", parent_uei="PARENT000001", amount="300.00"),
    # a parent UEI only F1 names: its sibling G1 resolves through the name F1 reports
    tx("F1", "FOXTROT LABS LLC", "FOXTRO000001", parent_uei="QPARENT00001", parent_name="FOXTROT PARENT INC"),
    tx("G1", "GOLF SYSTEMS LLC", "GOLFSY000001", parent_uei="QPARENT00001", action_date="2017-03-01"),
    # a parent that is a recipient itself, named only as such: its subsidiary I1 takes its name
    tx("H1", "HOTEL PARENT CORP", "HOTELP000001"),
    tx("I1", "INDIA SUPPLY LLC", "INDIAS000001", parent_uei="HOTELP000001"),
    # a parent DUNS (older data) that J1 names and K1 resolves through
    tx("J1", "JULIET WORKS LLC", duns="333333333", recipient_parent_duns="222222222", parent_name="JULIET PARENT INC"),
    tx("K1", "KILO TECH LLC", duns="444444444", recipient_parent_duns="222222222"),
    # a parent DUNS no row names: O1 takes the name of the recipient with that DUNS
    tx("M1", "MIKE PARENT LLC", duns="555555555"),
    tx("O1", "OSCAR PARTS LLC", duns="666666666", recipient_parent_duns="555555555"),
    # P: no parent yet; Q: a DUNS-only row of a known recipient; S names a parent DUNS no recipient has yet
    tx("P1", "PAPA TECH LLC", "PAPATE000001", action_date="2016-01-01"),
    tx("Q1", "QUEBEC SUPPLY LLC", "QUEBEC000001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC",
       action_date="2019-06-01"),
    tx("Q0", "QUEBEC SUPPLY LLC", duns="777777777", action_date="2014-01-01"),
    tx("S1", "SIERRA LLC", duns="121212121", recipient_parent_duns="888888888"),
    tx("T1", "TANGO TRADING LLC", "TANGOT000001", duns="999999999"),
    # a recipient without a parent (yet), a DUNS-only recipient, a name-only one
    tx("C1", "GAMMA ANALYTICS CORP", "GAMMAA000001", action_date="2016-02-01"),
    tx("D1", "DELTA CONSULTING LP", duns="111111111", action_date="2015-06-01"),
    tx("N1", "GEO GROUP, INC."),
    # a reseller naming a brand, and awards no later load touches
    tx("R1", "CARAHSOFT TECHNOLOGY CORP.", transaction_description="PALANTIR SOFTWARE LICENSES"),
    *[tx(f"E{i}", f"ECHO VENDOR {i} LLC", f"ECHOVE00000{i}", action_date=f"201{i}-04-01") for i in range(5)],
]
CHANGES = [  # one file
    tx("A3", "ACME WIDGETS LLC", "ACMEWI000001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC"),  # new award
    # A1's first row moves to recipient B (and its mart group with it)
    tx("A1", "BETA SERVICES INC", "BETASE000001", parent_uei="PARENT000001", amount="100.00", **later()),
    # F1 reports another parent name: G1 (not touched) follows
    tx("F1", "FOXTROT LABS LLC", "FOXTRO000001", parent_uei="QPARENT00001", parent_name="FOXTROT GLOBAL INC", **later()),
    # H renamed: I1 (not touched) follows; J1 reports another parent name: K1 (not touched) follows
    tx("H1", "HOTEL WORLDWIDE CORP", "HOTELP000001", **later()),
    tx("J1", "JULIET WORKS LLC", duns="333333333", recipient_parent_duns="222222222", parent_name="JULIET GLOBAL INC",
       **later()),
    tx("M1", "MIKE HOLDINGS LLC", duns="555555555", **later()),  # O1 (not touched) follows
    # P gains a parent UEI (no name): P1 follows; Q0's DUNS is linked to Q, whose parent fields stay
    tx("P2", "PAPA TECH LLC", "PAPATE000001", parent_uei="PARENT000001"),
    tx("Q2", "QUEBEC SUPPLY LLC", "QUEBEC000001", duns="777777777", parent_uei="PARENT000001",
       parent_name="ACME HOLDINGS INC", action_date="2018-01-01"),
    # T is now mostly reported with DUNS 888888888: S1 takes T's name through it
    tx("T2", "TANGO TRADING LLC", "TANGOT000001", duns="888888888"),
    tx("T2", "TANGO TRADING LLC", "TANGOT000001", mod="P00001", duns="888888888"),
    tx("T1", "TANGO TRADING LLC", "TANGOT000001", duns="888888888", **later()),
    # C gains a parent UEI on a newer row: its older row C1 follows
    tx("C2", "GAMMA ANALYTICS CORP", "GAMMAA000001", parent_uei="GPARENT00001", parent_name="GAMMA HOLDINGS LLC",
       action_date="2019-01-01"),
    # a row links D's DUNS to a UEI: D1 moves from DUNS:111111111 to that UEI's recipient
    tx("D2", "DELTA CONSULTING LP", "DELTAC000001", duns="111111111", parent_uei="DPARENT00001", parent_name="DELTA GROUP"),
    # N1 renamed: its old name-only recipient disappears
    tx("N1", "CORECIVIC, INC.", **later()),
    # a brand mention appears (E1) and one disappears (R1)
    tx("E1", "ECHO VENDOR 1 LLC", "ECHOVE000001", action_date="2011-04-01",
       transaction_description="MICROSOFT AZURE HOSTING", **later()),
    tx("R1", "CARAHSOFT TECHNOLOGY CORP.", transaction_description="SOFTWARE LICENSES", **later()),
]
DELETIONS = [
    {**tx("A4", "ACME WIDGETS LLC", "ACMEWI000001", parent_uei="PARENT000001", parent_name="ACME HOLDINGS INC"),
     "correction_delete_ind": "", "agency_id": "7012"},  # a new row in the same Delta file
    deletion("A2", agency="7014"),  # a whole award
    deletion("C2"),  # C's only row with a parent: C1 loses it again
    deletion("A1", "P00001"),  # one row of an award
]


def contents(con) -> dict[str, list]:
    return {name: sorted(con.execute(query).fetchall(), key=repr) for name, query in TABLES.items()}


def assert_equals_a_full_rebuild(warehouse: Path) -> dict[str, list]:
    con = db.connect(warehouse)
    try:
        assert con.execute("SELECT count(*) FROM pending_awards").fetchone() == (0,)
        incremental = contents(con)
        shares = companies.resolution_shares(con)
        con.execute("BEGIN")
        try:
            FULL_RESOLVE(con)
            companies.marts(con)
            full = contents(con)
            assert companies.resolution_shares(con) == pytest.approx(shares)
        finally:
            con.execute("ROLLBACK")  # leave the warehouse as the refreshes made it
    finally:
        con.close()
    for table in TABLES:
        assert incremental[table] == full[table], table
    return incremental


@pytest.fixture
def no_full_resolve(monkeypatch):
    """Fails any full resolve: what follows must go the incremental way."""
    def refuse(*args, **kwargs):
        raise AssertionError("companies.resolve (full) called by a refresh")

    def switch() -> None:
        monkeypatch.setattr(companies, "resolve", refuse)
    return switch


def load(tmp_path: Path, warehouse: Path, name: str, rows: list[dict], **kw) -> None:
    result = ingest([write_csv(tmp_path / name, rows, **kw)], warehouse=warehouse)
    assert result.counts.reconciled


def by_piid(warehouse: Path) -> dict[tuple[str, str], tuple]:
    con = db.connect(warehouse, read_only=True)
    try:
        return {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT award_id_piid, modification_number, parent_company, parent_company_method FROM transactions").fetchall()}
    finally:
        con.close()


def test_a_sequence_of_loads_refreshed_incrementally_equals_a_full_rebuild(tmp_path, warehouse, no_full_resolve):
    load(tmp_path, warehouse, "base.csv", BASE)  # first refresh of a new warehouse: a full resolve
    before = assert_equals_a_full_rebuild(warehouse)
    assert by_piid(warehouse)[("G1", "0")] == ("FOXTROT PARENT", "uei")
    assert by_piid(warehouse)[("C1", "0")] == ("GAMMA ANALYTICS", "name")
    assert by_piid(warehouse)[("I1", "0")] == ("HOTEL PARENT", "uei")
    assert by_piid(warehouse)[("K1", "0")] == ("JULIET PARENT", "duns")
    assert by_piid(warehouse)[("O1", "0")] == ("MIKE PARENT", "duns")
    assert by_piid(warehouse)[("Q0", "0")] == ("QUEBEC SUPPLY", "name")
    assert by_piid(warehouse)[("S1", "0")] == ("SIERRA", "name")
    no_full_resolve()

    load(tmp_path, warehouse, "changes.csv", CHANGES)
    after = assert_equals_a_full_rebuild(warehouse)
    got = by_piid(warehouse)
    assert got[("G1", "0")] == ("FOXTROT GLOBAL", "uei")  # untouched, through its parent UEI
    assert got[("C1", "0")] == ("GAMMA HOLDINGS", "uei")  # untouched, through its recipient's new parent
    assert got[("D1", "0")] == ("DELTA GROUP", "uei")  # untouched, through the DUNS's new UEI
    assert got[("I1", "0")] == ("HOTEL WORLDWIDE", "uei")  # untouched, through its parent's own new name
    assert got[("K1", "0")] == ("JULIET GLOBAL", "duns")  # untouched, through its parent DUNS
    assert got[("O1", "0")] == ("MIKE HOLDINGS", "duns")  # untouched, through its parent DUNS's own new name
    assert got[("P1", "0")] == ("ACME HOLDINGS", "uei")  # untouched, through its recipient's new parent UEI
    assert got[("Q0", "0")] == ("ACME HOLDINGS", "uei")  # untouched, moved to recipient Q by its DUNS
    assert got[("S1", "0")] == ("TANGO TRADING", "duns")  # untouched, through its parent DUNS's new own recipient
    assert {r[0] for r in after["recipients"]} - {r[0] for r in before["recipients"]} == {"UEI:DELTAC000001", "NAME:CORECIVIC"}
    assert {r[0] for r in before["recipients"]} - {r[0] for r in after["recipients"]} == {"DUNS:111111111", "DUNS:777777777", "NAME:GEO GROUP"}
    mentions = {(r[2], r[12]) for r in after["brand_mentions"]}
    assert ("E1", "Microsoft Azure") in mentions and not any(piid == "R1" for piid, _ in mentions)

    load(tmp_path, warehouse, "delta.csv", DELETIONS, columns=DELTA_COLUMNS)
    final = assert_equals_a_full_rebuild(warehouse)
    got = by_piid(warehouse)
    assert ("A2", "0") not in got and ("A1", "P00001") not in got and ("A4", "0") in got
    assert got[("C1", "0")] == ("GAMMA ANALYTICS", "name")  # its parent went with C2
    assert not any(r[2] == "A2" for r in final["awards"])


def test_several_loads_then_one_refresh_equals_a_full_rebuild(tmp_path, warehouse, no_full_resolve):
    """As a job does: every file commits (the same rows changed twice), then one refresh (``settle``)."""
    load(tmp_path, warehouse, "base.csv", BASE)
    no_full_resolve()
    files = [write_csv(tmp_path / "changes.csv", CHANGES),
             write_csv(tmp_path / "again.csv", [
                 tx("A1", "ACME WIDGETS LLC", "ACMEWI000001", parent_uei="PARENT000001", amount="7.00",
                    last_modified_date="2023-07-01 00:00:00"),  # back to A: a second correction of the same row
                 tx("C3", "GAMMA ANALYTICS CORP", "GAMMAA000001", action_date="2020-01-01")]),
             write_csv(tmp_path / "delta.csv", DELETIONS, columns=DELTA_COLUMNS)]
    con = db.connect(warehouse)
    try:
        results = [job.run(con, [f], warehouse=warehouse) for f in files]
        assert con.execute("SELECT count(*) FROM pending_rows").fetchone()[0] == 9 + 0 + 2
        shares = job.settle(con, results)
    finally:
        con.close()
    assert sum(shares.values()) == pytest.approx(1)
    assert_equals_a_full_rebuild(warehouse)


def test_a_crash_between_a_file_commit_and_the_refresh_is_healed_by_the_next_refresh(tmp_path, warehouse, monkeypatch,
                                                                                    no_full_resolve):
    load(tmp_path, warehouse, "base.csv", BASE)
    no_full_resolve()
    refresh = companies.refresh

    def crash(con, **kw):
        raise KeyboardInterrupt  # the process dies after the file committed, before the refresh committed

    monkeypatch.setattr(companies, "refresh", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([write_csv(tmp_path / "changes.csv", CHANGES)], warehouse=warehouse)
    con = db.connect(warehouse)
    pending = con.execute("SELECT count(*) FROM pending_awards").fetchone()[0]
    assert pending == len({r["award_id_piid"] for r in CHANGES})
    assert con.execute("SELECT count(*) FROM pending_rows").fetchone()[0] == 9  # the rows replaced
    assert con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL").fetchone()[0] == 7  # A3, C2, D2, P2, Q2, T2 twice
    with db.transaction(con):
        refresh(con)
    con.close()
    assert_equals_a_full_rebuild(warehouse)


def test_refresh_with_nothing_pending_reads_counts_not_transactions(tmp_path, warehouse):
    load(tmp_path, warehouse, "base.csv", BASE)
    con = db.connect(warehouse)
    shares = companies.resolution_shares(con)
    con.execute("UPDATE transactions SET parent_company_method = 'name'")  # the counts, not the rows, answer
    assert companies.refresh(con) == shares
    assert set(shares) <= set(companies.METHODS) and sum(shares.values()) == pytest.approx(1)
    con.close()
