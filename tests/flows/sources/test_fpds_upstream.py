"""FPDS feed against the upstream code (issue 14 points 8, 9 and 11's FPDS part).

Each test names the upstream file it follows: data-act-broker-backend
dataactcore/scripts/pipeline/pull_fpds_data.py (``country_code_map``,
``vendor_site_details_values``, ``calculate_legal_entity_fields``, ``calculate_ppop_fields``,
``get_data``, ``get_delete_data``, ``main``) and, for the district form, usaspending-api
usaspending_api/download/helpers/download_annotation_functions.py
(``congressional_district_display_name``) with
usaspending_api/search/delta_models/dataframes/abstract_search.py (``extract_numbers_as_string``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from awardwatch.flows import settings as config
from awardwatch.flows.sources.base import NIGHTLY, Window
from awardwatch.flows.sources.fpds import AtomFeed
from awardwatch.schemas import agencies as registry
from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.sources import fpds
from awardwatch.flows.sources.fpds_xml import COUNTRY_CODE_MAP, build_query, parse_page
from tests.paths import SHARED
from tests.servers.fpds import FakeFPDS, Record

SAMPLES = SHARED / "samples" / "fpds_atom"
GSA_TRUNCATED = SAMPLES / "fpds_pkg_truncated_response_gsa4740.xml"
ATOM = "http://www.w3.org/2005/Atom"
FPDS = "https://www.fpds.gov/FPDS"
DAY = date(2018, 3, 6)

# the broker's pull_fpds_data.py country_code_map, written out here so that a change to ours is seen
BROKER_COUNTRY_CODE_MAP = {
    "USA": "US", "ASM": "AS", "GUM": "GU", "MNP": "MP", "PRI": "PR", "VIR": "VI", "FSM": "FM", "MHL": "MH",
    "PLW": "PW", "XBK": "UM", "XHO": "UM", "XJV": "UM", "XJA": "UM", "XKR": "UM", "XPL": "UM", "XMW": "UM",
    "XWK": "UM",
}


def location(tag: str, value: str | None, name: str | None = None) -> str:
    if value is None:
        return ""
    attr = f' name="{name}"' if name else ""
    return f"<ns1:{tag}{attr}>{value}</ns1:{tag}>"


def entry(*, country=("USA", "UNITED STATES"), state=("VA", "VIRGINIA"), district="08",
          pop_country=("USA", "UNITED STATES"), pop_state=("MD", "MARYLAND"), pop_district="04") -> bytes:
    """One award entry in the real feed's shape (prefixes, nesting and attributes as in the GSA and broker samples)."""
    vendor = (location("state", state[0], state[1]) + location("countryCode", country[0], country[1])
              + location("congressionalDistrictCode", district))
    place = (location("stateCode", pop_state[0], pop_state[1]) + location("countryCode", pop_country[0], pop_country[1]))
    award = f"""<ns1:award xmlns:ns1="{FPDS}" version="1.5">
      <ns1:awardID><ns1:awardContractID><ns1:agencyID name="PUBLIC BUILDINGS SERVICE">4740</ns1:agencyID>
        <ns1:PIID>GS11P18MKC0001</ns1:PIID><ns1:modNumber>0</ns1:modNumber><ns1:transactionNumber>0</ns1:transactionNumber>
      </ns1:awardContractID></ns1:awardID>
      <ns1:relevantContractDates><ns1:signedDate>2018-03-05 00:00:00</ns1:signedDate></ns1:relevantContractDates>
      <ns1:dollarValues><ns1:obligatedAmount>8392.90</ns1:obligatedAmount></ns1:dollarValues>
      <ns1:purchaserInformation><ns1:contractingOfficeAgencyID name="PUBLIC BUILDINGS SERVICE" departmentID="4700"
        departmentName="GENERAL SERVICES ADMINISTRATION">4740</ns1:contractingOfficeAgencyID></ns1:purchaserInformation>
      <ns1:placeOfPerformance><ns1:principalPlaceOfPerformance>{place}</ns1:principalPlaceOfPerformance>
        <ns1:placeOfPerformanceZIPCode county="SAN JUAN" city="SAN JUAN">009011234</ns1:placeOfPerformanceZIPCode>
        {location("placeOfPerformanceCongressionalDistrict", pop_district)}</ns1:placeOfPerformance>
      <ns1:vendor><ns1:vendorHeader><ns1:vendorName>ISLAND FACILITIES LLC</ns1:vendorName></ns1:vendorHeader>
        <ns1:vendorSiteDetails><ns1:vendorLocation><ns1:streetAddress>1 CALLE LUNA</ns1:streetAddress>
          <ns1:city>SAN JUAN</ns1:city>{vendor}</ns1:vendorLocation></ns1:vendorSiteDetails></ns1:vendor>
      <ns1:transactionInformation><ns1:lastModifiedDate>2018-03-06 10:00:00</ns1:lastModifiedDate></ns1:transactionInformation>
    </ns1:award>"""
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><title>FPDS-NG search results</title>'
            f'<entry><title>x</title><content type="application/xml">{award}</content></entry></feed>').encode()


def row_of(data: bytes) -> dict:
    page = parse_page(data)
    assert page.problems == []
    return page.entries[0]


RECIPIENT = ("recipient_country_code", "recipient_country_name", "recipient_state_code", "recipient_state_name",
             "prime_award_transaction_recipient_cd_original")
PLACE = ("primary_place_of_performance_country_code", "primary_place_of_performance_country_name",
         "primary_place_of_performance_state_code", "primary_place_of_performance_state_name",
         "prime_award_transaction_place_of_performance_cd_original")


def of(row: dict, columns: tuple[str, ...]) -> tuple:
    return tuple(row[c] for c in columns)


# ---------------------------------------------------------------- point 8: territories and missing countries


def test_country_code_map_is_the_brokers():
    """pull_fpds_data.py country_code_map, entry for entry."""
    assert COUNTRY_CODE_MAP == BROKER_COUNTRY_CODE_MAP


@pytest.mark.parametrize("country,state,state_name", [
    ("PRI", "PR", "PUERTO RICO"), ("GUM", "GU", "GUAM"), ("VIR", "VI", "U.S. VIRGIN ISLANDS"),
    ("ASM", "AS", "AMERICAN SAMOA"), ("MNP", "MP", "NORTHERN MARIANA ISLANDS"), ("XWK", "UM", "U.S. MINOR OUTLYING ISLANDS"),
])
def test_a_territory_country_is_usa_with_the_territory_as_state(country, state, state_name):
    """calculate_legal_entity_fields / calculate_ppop_fields (pull_fpds_data.py): a territory code becomes USA /
    UNITED STATES, the territory its state (whatever state FPDS wrote: the broker's own test has GUM with GA)."""
    row = row_of(entry(country=(country, "X"), state=("GA", "GEORGIA"), district="98",
                       pop_country=(country, "X"), pop_state=(None, None), pop_district="98"))
    assert of(row, RECIPIENT) == ("USA", "UNITED STATES", state, state_name, f"{state}-98")
    assert of(row, PLACE) == ("USA", "UNITED STATES", state, state_name, f"{state}-98")


@pytest.mark.parametrize("country,state", [("FSM", "FM"), ("MHL", "MH"), ("PLW", "PW")])
def test_a_freely_associated_state_keeps_the_name_fpds_wrote(country, state):
    """Mapped to USA by country_code_map, but (as far as the code shows) in no state list: the name stays."""
    row = row_of(entry(country=(country, "X"), state=(state, "AS WRITTEN"), district=None,
                       pop_country=(country, "X"), pop_state=(state, None), pop_district=None))
    assert of(row, RECIPIENT) == ("USA", "UNITED STATES", state, "AS WRITTEN", None)
    assert of(row, PLACE) == ("USA", "UNITED STATES", state, None, None)


@pytest.mark.parametrize("country", [None, "0", "CAN", "US", "usa", "XNV"])
def test_a_missing_or_unmapped_vendor_country_is_foreign(country):
    """vendor_site_details_values: a vendor country not in country_code_map (missing, legacy "0", a foreign code,
    "US", lower case, XNV which only load_country_codes.py lists) gives no state code and the state text as name;
    the district then has no state: bare 2 digits (congressional_district_display_name's default)."""
    row = row_of(entry(country=(country, None), state=("VA", "VIRGINIA"), district="8"))
    assert of(row, RECIPIENT) == (country, None, None, "VA", "08")


def test_a_missing_place_country_keeps_its_state():
    """place_of_performance_values reads the state as written; calculate_ppop_fields runs only with a country."""
    row = row_of(entry(pop_country=(None, None), pop_state=("MD", "MARYLAND"), pop_district="4"))
    assert of(row, PLACE) == (None, None, "MD", "MARYLAND", "MD-04")
    foreign = row_of(entry(pop_country=("CAN", "CANADA"), pop_state=("ON", "ONTARIO"), pop_district=None))
    assert of(foreign, PLACE) == ("CAN", "CANADA", "ON", "ONTARIO", None)


def test_a_us_state_without_a_name_gets_one():
    """calculate_legal_entity_fields / calculate_ppop_fields: 'derive state name if we don't have it'."""
    row = row_of(entry(state=("VA", None), pop_state=("MD", None)))
    assert row["recipient_state_name"] == "VIRGINIA" and row["primary_place_of_performance_state_name"] == "MARYLAND"


@pytest.mark.skipif(not GSA_TRUNCATED.is_file(), reason="shared/samples not beside the clone")
def test_the_real_sample_with_a_territory_country():
    """The GSA sample entry (USA, TX, district 15) with its country codes turned into PRI, as FPDS writes
    Puerto Rico vendors that are not filed under USA."""
    data = GSA_TRUNCATED.read_bytes()
    real = row_of(data)
    assert of(real, RECIPIENT) == ("USA", "UNITED STATES", "TX", "TEXAS", "TX-15")
    moved = row_of(data.replace(b'name="UNITED STATES">USA<', b'name="PUERTO RICO">PRI<'))
    assert of(moved, RECIPIENT) == ("USA", "UNITED STATES", "PR", "PUERTO RICO", "PR-15")
    assert of(moved, PLACE)[:4] == ("USA", "UNITED STATES", "PR", "PUERTO RICO")


# ---------------------------------------------------------------- point 11: congressional districts


@pytest.mark.parametrize("written,expected", [
    ("08", "VA-08"), ("8", "VA-08"), ("VA08", "VA-08"), ("00", "VA-00"), ("98", "VA-98"), ("8.0", "VA-08"),
    ("ZZ", None), ("", None),
])
def test_district_forms(written, expected):
    """extract_numbers_as_string (digits after optional letters, as a number, left-padded to 2) then
    congressional_district_display_name (STATE-CD when there is a state code)."""
    row = row_of(entry(district=written or None))
    assert row["prime_award_transaction_recipient_cd_original"] == expected
    assert row["prime_award_transaction_recipient_cd_current"] is None


# ---------------------------------------------------------------- point 9: queries name the record types


def test_queries_are_the_brokers():
    """pull_fpds_data.py main(): award_types_idv then award_types_award for get_data (CONTRACT_TYPE and
    AWARD_TYPE); get_delete_data for IDV then award (CONTRACT_TYPE only)."""
    assert fpds.type_queries("PUBLIC") == [
        ("IDV", "GWAC"), ("IDV", "BOA"), ("IDV", "BPA"), ("IDV", "FSS"), ("IDV", "IDC"),
        ("AWARD", "Delivery Order"), ("AWARD", "BPA Call"), ("AWARD", "Definitive Contract"), ("AWARD", "Purchase Order"),
    ]
    assert fpds.type_queries("DELETED") == [("IDV", None), ("AWARD", None)]
    q = build_query(last_mod_from=DAY, last_mod_to=DAY, contract_type="award", award_type="Delivery Order")
    assert q == 'LAST_MOD_DATE:[2018/03/06,2018/03/06] CONTRACT_TYPE:"AWARD" AWARD_TYPE:"Delivery Order"'
    with pytest.raises(ValueError, match="award type for IDV"):
        build_query(last_mod_from=DAY, last_mod_to=DAY, contract_type="IDV", award_type="Delivery Order")
    with pytest.raises(ValueError, match="needs a contract type"):
        build_query(last_mod_from=DAY, last_mod_to=DAY, award_type="GWAC")


def test_other_transactions_are_never_asked_for(tmp_path, sql):
    """get_data / get_delete_data: with the broker's type terms an other transaction never comes back, so nothing
    is quarantined; the same server hands it to a query without them (what ours sent before)."""
    other = Record(piid="70CMSD18900000001", contract_type="OTHER TRANSACTION AWARD", last_modified=f"{DAY} 10:00:00")
    order = Record(piid="70CMSD18F00000002", award_type="C", ref_piid="HSHQDC13D00001", ref_agency="7001",
                   last_modified=f"{DAY} 10:00:00")
    contract = Record(piid="70CMSD18C00000003", last_modified=f"{DAY} 10:00:00")
    bpa = Record(piid="70CMSD18A00000004", contract_type="IDV", award_type="E", last_modified=f"{DAY} 10:00:00")
    gone = Record(piid="70CMSD18A00000009", contract_type="IDV", award_type="E", last_modified=f"{DAY} 11:00:00")
    with FakeFPDS([other, order, contract, bpa], deleted=[gone]) as api:
        s = config.load({}).but(warehouse=tmp_path / "w.duckdb", fpds_url=api.url, http_backoff=0.0, http_attempts=2)
        path = extract_fpds(s, ["ICE"], Window(DAY, DAY), tmp_path / "landing")
        status, old = api.answer(f"/ezsearch/FEEDS/ATOM?FEEDNAME=PUBLIC&q=LAST_MOD_DATE:[2018/03/06,2018/03/06]"
                                 "+CONTRACTING_AGENCY_ID:7012&start=0")
        requests = list(api.requests[:-1])
    assert status == 200 and b"OtherTransactionAward" in old
    assert "OtherTransactionAward" not in "".join(p.read_text() for p in (tmp_path / "landing").rglob("*.xml"))
    public = [r for r in requests if "FEEDNAME=PUBLIC" in r]
    deleted = [r for r in requests if "FEEDNAME=DELETED" in r]
    assert len(public) == 9 and all("CONTRACT_TYPE%3A%22" in r and "AWARD_TYPE%3A%22" in r for r in public)
    assert len(deleted) == 2 and all("CONTRACT_TYPE%3A%22" in r and "AWARD_TYPE" not in r for r in deleted)
    result = ingest([path], warehouse=tmp_path / "wh" / "awardwatch.duckdb", source="fpds")
    assert (result.counts.read, result.counts.inserted, result.counts.quarantined, result.counts.reconciled) == (4, 3, 0, True)
    assert sql("SELECT award_id_piid, award_or_idv_flag, coalesce(award_type_code, idv_type_code) FROM transactions "
               "ORDER BY 1") == [("70CMSD18A00000004", "IDV", "E"), ("70CMSD18C00000003", "AWARD", "D"),
                                 ("70CMSD18F00000002", "AWARD", "C")]


def test_the_fake_feed_serves_types_as_asked():
    """The stand-in honours CONTRACT_TYPE and AWARD_TYPE as the broker's queries use them."""
    idv = Record(piid="A", contract_type="IDV", award_type="B", last_modified=f"{DAY} 10:00:00")
    award = Record(piid="B", award_type="B", last_modified=f"{DAY} 10:00:00")
    with FakeFPDS([idv, award]) as api:
        def served(q: str) -> int:
            return api.answer(f"/ezsearch/FEEDS/ATOM?FEEDNAME=PUBLIC&q={q}&start=0")[1].count(b"<entry>")
        assert served('CONTRACT_TYPE:"IDV" AWARD_TYPE:"IDC"') == 1
        assert served('CONTRACT_TYPE:"AWARD" AWARD_TYPE:"Purchase Order"') == 1
        assert served('CONTRACT_TYPE:"AWARD" AWARD_TYPE:"IDC"') == 0
        assert served('CONTRACT_TYPE:"IDV"') == 1 and served("LAST_MOD_DATE:[2018/03/06,2018/03/06]") == 2


def test_a_territory_vendor_loads_as_usaspending_shows_it(tmp_path, sql):
    """calculate_legal_entity_fields / calculate_ppop_fields through to the warehouse: the columns USAspending
    (which reads the broker's derived fields) shows for the same action."""
    action = Record(piid="70CMSD18C00000042", last_modified=f"{DAY} 10:00:00",
                    location='<ns1:state name="PUERTO RICO">PR</ns1:state><ns1:countryCode name="PUERTO RICO">PRI</ns1:countryCode>'
                             "<ns1:congressionalDistrictCode>98</ns1:congressionalDistrictCode>",
                    place='<ns1:principalPlaceOfPerformance><ns1:countryCode name="GUAM">GUM</ns1:countryCode>'
                          "</ns1:principalPlaceOfPerformance>"
                          "<ns1:placeOfPerformanceCongressionalDistrict>98</ns1:placeOfPerformanceCongressionalDistrict>")
    with FakeFPDS([action]) as api:
        s = config.load({}).but(warehouse=tmp_path / "w.duckdb", fpds_url=api.url, http_backoff=0.0, http_attempts=2)
        path = extract_fpds(s, ["ICE"], Window(DAY, DAY), tmp_path / "landing")
    ingest([path], warehouse=tmp_path / "wh" / "awardwatch.duckdb", source="fpds")
    assert sql(f"SELECT {', '.join(RECIPIENT + PLACE)} FROM transactions") == [
        ("USA", "UNITED STATES", "PR", "PUERTO RICO", "PR-98", "USA", "UNITED STATES", "GU", "GUAM", "GU-98")]


def extract_fpds(s: config.Settings, agencies: list[str], window: Window, into: Path) -> Path:
    """One nightly window of the FPDS feed, landed (``AtomFeed.land``)."""
    feed = AtomFeed(s)
    (scope,) = feed.scopes(registry.resolve(agencies))
    (path,) = feed.land(scope, window, into, NIGHTLY).paths
    return path
