"""Recipients, parent companies, brands behind resellers and the company x agency mart, on real DuckDB files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from tests.factories import row, write_csv
from awardwatch.warehouse import companies, db
from awardwatch.warehouse.companies import METHODS, ReferenceDataError


def load_and_resolve(tmp_path: Path, warehouse: Path, rows: list[dict], **kw) -> duckdb.DuckDBPyConnection:
    """Ingests the rows (which refreshes), then resolves everything again and rebuilds the mart."""
    ingest([write_csv(tmp_path / "rows.csv", rows)], warehouse=warehouse)
    con = db.connect(warehouse)
    companies.resolve(con, **kw)
    companies.marts(con)
    return con


def anonymous(piid: str, name: str, **values) -> dict:
    """A row that identifies its recipient by name only (no UEI, DUNS or parent fields)."""
    return row(piid=piid, **({"recipient_name": name, "recipient_uei": "", "recipient_duns": "", "recipient_parent_name": ""} | values))


def by_piid(con, columns: str = "parent_company, parent_company_method") -> dict:
    return {r[0]: r[1:] for r in con.execute(f"SELECT award_id_piid, {columns} FROM transactions").fetchall()}


@pytest.fixture
def mem():
    con = duckdb.connect()
    companies.install_macros(con)
    yield con
    con.close()


@pytest.mark.parametrize("raw, normalised", [
    ("GEO GROUP INC., THE", "GEO GROUP"),
    ("THE GEO GROUP, INC.", "GEO GROUP"),
    ("GEO GROUP, INC.", "GEO GROUP"),
    ("The  Geo   Group,Inc", "GEO GROUP"),
    ("DELL MARKETING L.P.", "DELL MARKETING"),
    ("Dell Federal Systems L.P.", "DELL FEDERAL SYSTEMS"),
    ("HEWLETT PACKARD ENTERPRISE COMPANY", "HEWLETT PACKARD ENTERPRISE"),
    ("MCKINSEY & COMPANY, INC.", "MCKINSEY AND COMPANY"),
    ("AT&T CORP.", "AT AND T"),
    ("CACI, INC. - FEDERAL", "CACI INC FEDERAL"),
    ("THOMSON REUTERS SPECIAL SERVICES LLC", "THOMSON REUTERS SPECIAL SERVICES"),
    ("Acme Widgets Co., Ltd.", "ACME WIDGETS"),
    ("CORRECTIONS CORPORATION OF AMERICA", "CORRECTIONS CORPORATION OF AMERICA"),
    ("Nestlé S.A.", "NESTLE SA"),
    ("McDonald’s Corp", "MCDONALDS"),
    ("  ", None),
    ("Inc.", None),
    (None, None),
])
def test_name_normalisation_folds_case_punctuation_suffixes_and_the(mem, raw, normalised):
    assert companies.normalise(mem, raw) == normalised


def test_technology_flag_rule(mem):
    cases = {
        ("D302", None): True, ("DA01", "541611"): True, ("7030", None): True, ("7A21", None): True,
        ("5820", "334220"): True, ("J058", "811213"): True, ("W070", None): True,
        (None, "541512"): True, (None, "518210"): True, (None, "513210"): True, (None, "517311"): True,
        ("S206", "561210"): False, ("R408", "541611"): False, ("6515", "423450"): False, (None, None): False,
    }
    for (psc, naics), expected in cases.items():
        assert mem.execute("SELECT aw_is_technology(?, ?)", [psc, naics]).fetchone()[0] is expected, (psc, naics)


def test_spelling_variants_resolve_to_one_company_through_the_alias_table(tmp_path, warehouse):
    con = load_and_resolve(tmp_path, warehouse, [
        anonymous("G1", "GEO GROUP INC., THE"),
        anonymous("G2", "THE GEO GROUP, INC."),
        anonymous("G3", "GEO GROUP, INC."),
        anonymous("C1", "CORRECTIONS CORPORATION OF AMERICA"),
        anonymous("C2", "CoreCivic, Inc."),
    ])
    assert by_piid(con) == {
        "G1": ("GEO Group", "alias"), "G2": ("GEO Group", "alias"), "G3": ("GEO Group", "alias"),
        "C1": ("CoreCivic", "alias"), "C2": ("CoreCivic", "alias"),
    }
    recipients = con.execute(
        "SELECT recipient_key, recipient_names, parent_company, parent_company_method FROM recipients ORDER BY 1").fetchall()
    assert recipients == [
        ("NAME:CORECIVIC", ["CoreCivic, Inc."], "CoreCivic", "alias"),
        ("NAME:CORRECTIONS CORPORATION OF AMERICA", ["CORRECTIONS CORPORATION OF AMERICA"], "CoreCivic", "alias"),
        ("NAME:GEO GROUP", ["GEO GROUP INC., THE", "GEO GROUP, INC.", "THE GEO GROUP, INC."], "GEO Group", "alias"),
    ]


def test_each_resolution_method_is_recorded(tmp_path, warehouse):
    con = load_and_resolve(tmp_path, warehouse, [
        # uei: the parent UEI, named by the parent name reported with it, then aliased
        row(piid="U1", recipient_name="DELL MARKETING L.P.", recipient_uei="DELLMK000001", recipient_duns="",
            recipient_parent_uei="DELLTE000001", recipient_parent_name="DELL TECHNOLOGIES INC."),
        # uei through the recipients dimension: same recipient UEI, no parent fields on this (older) row
        row(piid="U2", recipient_name="DELL MARKETING L.P.", recipient_uei="DELLMK000001", recipient_duns="",
            recipient_parent_name="", action_date="2015-01-10"),
        # duns: parent DUNS only (older data), parent name not in the alias table
        row(piid="D1", recipient_name="BLUE RIDGE CONSULTING GROUP LLC", recipient_uei="", recipient_duns="111111111",
            recipient_parent_duns="222222222", recipient_parent_name="BLUE RIDGE HOLDINGS, INC."),
        # duns through the recipients dimension (same DUNS, no parent)
        row(piid="D2", recipient_name="BLUE RIDGE CONSULTING GROUP, LLC", recipient_uei="", recipient_duns="111111111",
            recipient_parent_name=""),
        # alias: the recipient name only
        anonymous("A1", "Palantir USG, Inc."),
        # alias through the parent name (the recipient name is unknown to the table)
        anonymous("A2", "FALCON SUPPORT LLC", recipient_parent_name="PALANTIR TECHNOLOGIES INC."),
        # name: the normalised parent name, else the recipient's own
        anonymous("N1", "SMALL SUB LLC", recipient_parent_name="Big Holding Co."),
        anonymous("N2", "Acme Widgets Co."),
        # unresolved: nothing to go on
        anonymous("X1", ""),
    ])
    assert by_piid(con) == {
        "U1": ("Dell Technologies", "uei"),
        "U2": ("Dell Technologies", "uei"),
        "D1": ("BLUE RIDGE HOLDINGS", "duns"),
        "D2": ("BLUE RIDGE HOLDINGS", "duns"),
        "A1": ("Palantir Technologies", "alias"),
        "A2": ("Palantir Technologies", "alias"),
        "N1": ("BIG HOLDING", "name"),
        "N2": ("ACME WIDGETS", "name"),
        "X1": ("(unresolved)", "unresolved"),
    }
    assert con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL OR parent_company_method IS NULL").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM awards WHERE parent_company IS NULL OR parent_company_method IS NULL").fetchone() == (0,)
    shares = companies.resolution_shares(con)
    assert set(shares) <= set(METHODS) and abs(sum(shares.values()) - 1) < 1e-9
    assert shares["uei"] == pytest.approx(2 / 9) and shares["unresolved"] == pytest.approx(1 / 9)


def test_award_takes_the_company_of_its_latest_action(tmp_path, warehouse):
    con = load_and_resolve(tmp_path, warehouse, [
        anonymous("P1", "CORRECTIONS CORPORATION OF AMERICA", action_date="2016-01-05"),
        anonymous("P1", "ACME DETENTION LLC", mod="P00001", action_date="2017-02-01"),
    ])
    assert con.execute("SELECT parent_company, parent_company_method FROM awards").fetchall() == [("ACME DETENTION", "name")]


def test_refresh_resolves_the_rows_written_and_only_what_they_reach(tmp_path, warehouse):
    rows = [anonymous("G1", "GEO GROUP, INC."), anonymous("G2", "GEO GROUP, INC."),
            anonymous("D1", "DELL MARKETING L.P.", transaction_description="MICROSOFT AZURE"),
            anonymous("D2", "DELL MARKETING ONE L.P.", transaction_description="MICROSOFT OFFICE 365")]
    ingest([write_csv(tmp_path / "a.csv", rows)], warehouse=warehouse)
    con = db.connect(warehouse)
    con.execute("DELETE FROM brand_mentions")
    con.execute("UPDATE transactions SET parent_company = 'stale' WHERE award_id_piid IN ('G1', 'G2')")
    con.close()
    corrected = [r | {"amount": "2000.00", "last_modified_date": "2019-01-01 00:00:00"} for r in rows if r["award_id_piid"] in ("G1", "D1")]
    ingest([write_csv(tmp_path / "b.csv", corrected)], warehouse=warehouse)
    con = db.connect(warehouse)
    assert by_piid(con)["G1"] == ("GEO Group", "alias")  # written: resolved
    assert by_piid(con)["G2"][0] == "stale"  # same recipient, its parent fields unchanged: not resolved again
    assert con.execute("SELECT award_id_piid FROM brand_mentions").fetchall() == [("D1",)]  # D2 not reached
    assert con.execute("SELECT count(*) FROM pending_awards").fetchone() == (0,)


def test_a_later_load_corrects_older_rows_of_the_same_recipient(tmp_path, warehouse):
    """File 1 knows the recipient by DUNS only; file 2 links that DUNS to a UEI with a parent."""
    ingest([write_csv(tmp_path / "old.csv", [anonymous("OLD1", "DELL MARKETING LP", recipient_duns="123456789",
                                                       action_date="2015-02-01")])], warehouse=warehouse)
    con = db.connect(warehouse)
    assert by_piid(con)["OLD1"] == ("Dell Technologies", "alias")
    con.close()
    ingest([write_csv(tmp_path / "new.csv", [row(piid="NEW1", recipient_name="DELL MARKETING L.P.", recipient_duns="123456789",
                                                 recipient_uei="DELLMK000001", recipient_parent_uei="DELLTE000001",
                                                 recipient_parent_name="DELL TECHNOLOGIES INC.")])], warehouse=warehouse)
    con = db.connect(warehouse)
    assert by_piid(con) == {"OLD1": ("Dell Technologies", "uei"), "NEW1": ("Dell Technologies", "uei")}
    assert con.execute("SELECT parent_company_method FROM awards ORDER BY award_id_piid").fetchall() == [("uei",), ("uei",)]
    assert con.execute("SELECT recipient_key, transactions FROM recipients").fetchall() == [("UEI:DELLMK000001", 2)]


def test_brand_named_by_a_reseller_is_a_mention_and_the_owner_itself_is_not(tmp_path, warehouse):
    con = load_and_resolve(tmp_path, warehouse, [
        row(piid="DELL1", amount="250000.00", recipient_name="DELL FEDERAL SYSTEMS L.P.", recipient_uei="DELLFS000001",
            recipient_parent_uei="DELLTE000001", recipient_parent_name="DELL TECHNOLOGIES INC.",
            transaction_description="MICROSOFT AZURE CLOUD SERVICES, OPTION YEAR 1"),
        anonymous("CARA1", "CARAHSOFT TECHNOLOGY CORP.", amount="90000.00",
                  transaction_description="PALANTIR SOFTWARE LICENSES (BRAND NAME)"),
        anonymous("MSFT1", "MICROSOFT CORPORATION", transaction_description="MICROSOFT AZURE CONSUMPTION"),
        anonymous("PAL1", "PALANTIR USG INC.", transaction_description="PALANTIR GOTHAM SOFTWARE LICENSES"),
        anonymous("GDIT1", "GENERAL DYNAMICS INFORMATION TECHNOLOGY, INC.", transaction_description="GENERAL DYNAMICS IT SUPPORT"),
        anonymous("MISC1", "ACME LLC", transaction_description="AZUREUS BLUE PAINT"),  # no word boundary: no mention
    ])
    mentions = con.execute(
        "SELECT award_id_piid, brand, brand_owner, matched_text, matched_in, recipient_name, parent_company, "
        "federal_action_obligation FROM brand_mentions ORDER BY award_id_piid").fetchall()
    assert mentions == [
        ("CARA1", "Palantir (generic)", "Palantir Technologies", "PALANTIR", "transaction_description",
         "CARAHSOFT TECHNOLOGY CORP.", "Carahsoft", Decimal("90000.00")),
        ("DELL1", "Microsoft Azure", "Microsoft", "MICROSOFT AZURE", "transaction_description",
         "DELL FEDERAL SYSTEMS L.P.", "Dell Technologies", Decimal("250000.00")),
    ]


def test_funding_modification_counts_through_the_award_base_description(tmp_path, warehouse):
    base = "MICROSOFT OFFICE 365 LICENSES"
    con = load_and_resolve(tmp_path, warehouse, [
        anonymous("DM1", "DELL MARKETING L.P.", amount="5000.00", transaction_description=base,
                  prime_award_base_transaction_description=base),
        anonymous("DM1", "DELL MARKETING L.P.", mod="P00001", amount="-1200.00", action_date="2018-06-01",
                  transaction_description="DE-OBLIGATE EXCESS FUNDS", prime_award_base_transaction_description=base),
    ])
    mentions = con.execute("SELECT modification_number, brand, matched_text, matched_in, bm.federal_action_obligation "
                           "FROM brand_mentions bm JOIN transactions USING (contract_transaction_unique_key) ORDER BY 1").fetchall()
    assert mentions == [
        ("0", "Microsoft 365 / Office 365", "MICROSOFT OFFICE 365", "transaction_description", Decimal("5000.00")),
        ("P00001", "Microsoft 365 / Office 365", "MICROSOFT OFFICE 365", "prime_award_base_transaction_description", Decimal("-1200.00")),
    ]


def test_reference_csvs_are_checked(tmp_path, mem):
    con = db.connect(tmp_path / "w.duckdb")
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("company,name,match,note\nAcme,ACME INC.,exact,\n")
    rules = tmp_path / "rules.csv"
    rules.write_text("brand,owner,pattern,note\nWidget,Nobody,WIDGET,\n")
    with pytest.raises(ReferenceDataError, match=r"rules.csv:2: owner 'Nobody' is not a company"):
        companies.load_reference(con, aliases, rules)
    rules.write_text("brand,owner,pattern,note\nWidget,Acme,WIDGET(,\n")
    with pytest.raises(ReferenceDataError, match=r"rules.csv:2: pattern 'WIDGET\(' is not a valid RE2 regex"):
        companies.load_reference(con, aliases, rules)
    aliases.write_text("company,name,match,note\nAcme,ACME INC.,fuzzy,\n")
    with pytest.raises(ReferenceDataError, match="aliases.csv:2: match must be exact or prefix"):
        companies.load_reference(con, aliases, rules)
    aliases.write_text("company,name\nAcme,ACME\n")
    with pytest.raises(ReferenceDataError, match="missing column"):
        companies.load_reference(con, aliases, rules)


def test_shipped_reference_csvs_load_and_cover_the_watched_contractors(tmp_path):
    con = db.connect(tmp_path / "w.duckdb")
    companies.load_reference(con)
    known = {c for (c,) in con.execute("SELECT DISTINCT company FROM company_aliases").fetchall()}
    for company in ("Microsoft", "Palantir Technologies", "Dell Technologies", "Hewlett Packard Enterprise", "IBM", "Oracle",
                    "Amazon", "Google", "Motorola Solutions", "Thomson Reuters", "RELX (LexisNexis)", "Accenture", "Deloitte",
                    "Booz Allen Hamilton", "General Dynamics", "Leidos", "SAIC", "CACI", "ManTech", "Northrop Grumman",
                    "Lockheed Martin", "Raytheon (RTX)", "Unisys", "Verizon", "AT&T", "Carahsoft", "GEO Group", "CoreCivic",
                    "Management & Training Corp (MTC)", "Akima", "McKinsey & Company", "KPMG", "PwC", "EY"):
        assert company in known, company
    for path in (companies.ALIASES_CSV, companies.BRANDS_CSV):
        assert path.stat().st_size < 1 << 20


def test_mart_totals_equal_a_direct_sum_over_transactions(tmp_path, warehouse):
    from awardwatch.flows.sources import sample

    feed = sample.write_transactions(tmp_path / "feed.csv", 600, seed=11)
    ingest([feed], warehouse=warehouse)
    con = db.connect(warehouse)
    companies.resolve(con)
    companies.marts(con)
    mart = con.execute(
        "SELECT parent_company, awarding_agency_code, awarding_sub_agency_code, fiscal_year, is_technology, obligated_amount, "
        "transactions, awards FROM company_agency_fiscal_year ORDER BY ALL").fetchall()
    direct = con.execute(
        "SELECT parent_company, awarding_agency_code, awarding_sub_agency_code, fiscal_year, "
        "aw_is_technology(product_or_service_code, naics_code), coalesce(sum(federal_action_obligation), 0), count(*), "
        "count(DISTINCT contract_award_unique_key) FROM transactions GROUP BY ALL ORDER BY ALL").fetchall()
    assert mart == direct and len(mart) > 20
    total = con.execute("SELECT sum(federal_action_obligation) FROM transactions").fetchone()[0]
    assert con.execute("SELECT sum(obligated_amount) FROM company_agency_fiscal_year").fetchone()[0] == total
    per_company = dict(con.execute("SELECT parent_company, sum(federal_action_obligation) FROM transactions GROUP BY 1").fetchall())
    assert dict(con.execute("SELECT parent_company, sum(obligated_amount) FROM company_agency_fiscal_year GROUP BY 1").fetchall()) == per_company


def test_sample_feed_families_resolve_across_subsidiaries_renames_and_spellings(tmp_path, warehouse):
    """The demo feed: current and 2018 layouts, parents missing on some older awards, DUNS-only rows."""
    from awardwatch.flows.core.demo import write_demo_feed

    ingest(write_demo_feed(tmp_path / "feed", 1500, 2018), warehouse=warehouse, max_rejected_share=1)
    con = db.connect(warehouse)
    companies.resolve(con)
    families = dict(con.execute(
        "SELECT parent_company, list_sort(list(DISTINCT recipient_name)) FROM transactions GROUP BY 1").fetchall())
    assert families["Dell Technologies"] == ["DELL FEDERAL SYSTEMS L.P.", "DELL MARKETING L.P."]
    assert families["GEO Group"] == ["GEO GROUP INC., THE", "THE GEO GROUP, INC."]
    assert families["CoreCivic"] == ["CORECIVIC, INC.", "CORRECTIONS CORPORATION OF AMERICA"]
    assert families["Palantir Technologies"] == ["PALANTIR TECHNOLOGIES INC.", "PALANTIR USG INC."]
    assert con.execute("SELECT count(*) FROM transactions WHERE parent_company IS NULL").fetchone() == (0,)
    resellers = {r for (r,) in con.execute(
        "SELECT DISTINCT parent_company FROM brand_mentions WHERE brand_owner = 'Microsoft' AND brand = 'Microsoft Azure'").fetchall()}
    assert resellers and resellers <= {"Dell Technologies", "Carahsoft"}
    assert con.execute("SELECT count(*) FROM brand_mentions WHERE parent_company = brand_owner").fetchone() == (0,)


def test_refresh_resolves_again_only_when_needed_and_rebuilds_the_mart(tmp_path, warehouse):
    ingest([write_csv(tmp_path / "rows.csv", [anonymous("G1", "GEO GROUP, INC."), anonymous("Z1", "ZETA SYSTEMS LLC")])],
           warehouse=warehouse)
    con = db.connect(warehouse)
    shares = companies.refresh(con)  # never resolved: everything
    assert shares == {"alias": 0.5, "name": 0.5}
    assert con.execute("SELECT count(*) FROM company_agency_fiscal_year").fetchone() == (2,)
    assert not companies.reference_changed(con)
    aliases = tmp_path / "aliases.csv"
    aliases.write_text(companies.ALIASES_CSV.read_text() + "Zeta,ZETA SYSTEMS LLC,exact,reviewed\n")
    assert companies.reference_changed(con, aliases)
    assert companies.refresh(con, aliases=aliases) == {"alias": 1.0}
    assert by_piid(con)["Z1"] == ("Zeta", "alias")
