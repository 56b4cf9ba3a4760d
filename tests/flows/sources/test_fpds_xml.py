"""FPDS ATOM feed pages -> canonical rows: real samples, generated records, hostile XML, query/URL building."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.paths import SHARED

from awardwatch.flows.sources.fpds_xml import (
    FeedError,
    FeedPage,
    announced_total,
    build_query,
    page_url,
    parse_deleted_page,
    parse_page,
)
from awardwatch.schemas.errors import InputError
from awardwatch.schemas.layouts import current_columns

SAMPLES = SHARED / "samples" / "fpds_atom"
GSA_PAGE = "fpds_pkg_full_response_gsa4740_page.xml"
GSA_TRUNCATED = "fpds_pkg_truncated_response_gsa4740.xml"
BROKER = "broker_fpdsXML_award_and_idv_raw.xml"

ATOM = "http://www.w3.org/2005/Atom"
FPDS = "https://www.fpds.gov/FPDS"
FPDS_LEGACY = "http://www.fpdsng.com/FPDS"
URL = "https://www.fpds.gov/ezsearch/FEEDS/ATOM?FEEDNAME=PUBLIC&q=x&start=0"
EXTRAS = {"fpds_agency_id", "fpds_department_id", "fpds_last_modified", "fpds_entry"}


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {path} not available (shared/ folder not beside the clone)")
    return path.read_bytes()


def refused(data: bytes, pattern: str, **kw) -> str:
    with pytest.raises(FeedError) as info:
        parse_page(data, url=URL, **kw)
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert "\n" not in message
    assert message.startswith(URL + ": ")
    assert re.search(pattern, message), message
    return message


# ---------------------------------------------------------------- builders


def award(
    piid: str | None = "70CDCR18P00000001",
    agency: str | None = "7012",
    mod: str | None = "0",
    *,
    txn: str | None = "0",
    ref_piid: str | None = None,
    ref_agency: str | None = None,
    action_type: str = '<contractActionType description="PURCHASE ORDER">B</contractActionType>',
    country: str = "USA",
    extra: str = "",
) -> str:
    """An award record (default FPDS namespace), with only the elements the tests look at."""

    def el(tag: str, value: str | None, attrs: str = "") -> str:
        return "" if value is None else f"<{tag}{attrs}>{value}</{tag}>"

    ref = ""
    if ref_piid or ref_agency:
        ref_id = el("agencyID", ref_agency) + el("PIID", ref_piid) + "<modNumber>0</modNumber>"
        ref = f"<referencedIDVID>{ref_id}</referencedIDVID>"
    return f"""
      <award xmlns="{{ns}}" version="1.5">
        <awardID><awardContractID>{el('agencyID', agency, ' name="IMMIGRATION AND CUSTOMS ENFORCEMENT"')}
          {el('PIID', piid)}{el('modNumber', mod)}{el('transactionNumber', txn)}</awardContractID>{ref}</awardID>
        <relevantContractDates><signedDate>2018-01-15 00:00:00</signedDate>
          <effectiveDate> 2018-01-16 00:00:00 </effectiveDate></relevantContractDates>
        <dollarValues><obligatedAmount>-1250.50</obligatedAmount></dollarValues>
        <totalDollarValues><totalObligatedAmount>98000.00</totalObligatedAmount></totalDollarValues>
        <purchaserInformation>
          <contractingOfficeAgencyID name="U.S. IMMIGRATION AND CUSTOMS ENFORCEMENT" departmentID="7000"
            departmentName="HOMELAND SECURITY, DEPARTMENT OF">7012</contractingOfficeAgencyID>
        </purchaserInformation>
        <contractData>{action_type}
          <descriptionOfContractRequirement>   </descriptionOfContractRequirement></contractData>
        <vendor><vendorHeader><vendorName>ACME &amp; SONS</vendorName></vendorHeader>
          <vendorSiteDetails>
            <vendorSocioEconomicIndicators><isWomenOwned>true</isWomenOwned>
              <isVeteranOwned>false</isVeteranOwned></vendorSocioEconomicIndicators>
            <vendorLocation><state name="ONTARIO">ON</state>
              <countryCode name="X">{country}</countryCode></vendorLocation>
            <entityIdentifiers><vendorUEIInformation><UEI>ABCDEFGH1234</UEI>
              <ultimateParentUEI>ZYXWVUTS9876</ultimateParentUEI>
              <ultimateParentUEIName>ACME HOLDINGS</ultimateParentUEIName></vendorUEIInformation></entityIdentifiers>
          </vendorSiteDetails></vendor>
        <transactionInformation><createdDate>2018-01-16 08:00:00</createdDate>
          <lastModifiedDate>2018-01-17 09:30:45</lastModifiedDate></transactionInformation>
        {extra}
      </award>"""


def idv(piid: str = "HSCETC15D00001", agency: str = "7012", mod: str = "P00003") -> str:
    return f"""
      <ns9:IDV xmlns:ns9="{{ns}}" version="1.5">
        <ns9:contractID><ns9:IDVID><ns9:agencyID name="ICE">{agency}</ns9:agencyID><ns9:PIID>{piid}</ns9:PIID>
          <ns9:modNumber>{mod}</ns9:modNumber></ns9:IDVID>
          <ns9:referencedIDVID><ns9:agencyID>4732</ns9:agencyID><ns9:PIID>GS35F0001X</ns9:PIID>
          <ns9:modNumber>0</ns9:modNumber></ns9:referencedIDVID></ns9:contractID>
        <ns9:relevantContractDates><ns9:signedDate>2017-10-02 00:00:00</ns9:signedDate>
          <ns9:lastDateToOrder>2022-09-30 00:00:00</ns9:lastDateToOrder></ns9:relevantContractDates>
        <ns9:contractData><ns9:contractActionType description="BPA">E</ns9:contractActionType>
          <ns9:typeOfIDC description="INDEFINITE DELIVERY / INDEFINITE QUANTITY">B</ns9:typeOfIDC></ns9:contractData>
        <ns9:transactionInformation>
          <ns9:lastModifiedDate>2017-10-03 10:00:00</ns9:lastModifiedDate></ns9:transactionInformation>
      </ns9:IDV>"""


def feed(*records: str, ns: str = FPDS, links: dict[str, str] | None = None, title: str = "FPDS-NG results") -> bytes:
    """An Atom feed page holding one entry per record (a record of '' gives an entry without content)."""
    link_xml = "".join(f'<link rel="{rel}" type="text/html" href="{href}"/>' for rel, href in (links or {}).items())
    entries = "".join(
        f"<entry><title>entry {i}</title><modified>2018-01-17 09:30:45</modified>"
        + (f'<content type="application/xml">{record.replace("{ns}", ns)}</content>' if record else "")
        + "</entry>"
        for i, record in enumerate(records, 1)
    )
    head = f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><title>{title}</title>'
    return f"{head}{link_xml}{entries}</feed>".encode()


# ---------------------------------------------------------------- real samples


def test_gsa_full_page():
    page = parse_page(sample(GSA_PAGE), url=GSA_PAGE)
    assert page.problems == []
    assert len(page.entries) == 10
    assert page.title == 'FPDS-NG search results for: LAST_MOD_DATE:[2013/10/01,2014/09/30] AGENCY_CODE:"4740"'
    assert page.next_url is not None and page.next_url.endswith("&start=10")
    assert "FEEDNAME=PUBLIC" in page.next_url
    assert page.last_start == 20
    with pytest.raises(ValueError):
        announced_total(page, None)  # only the first page: the count needs the last one

    columns = list(current_columns())
    for position, row in enumerate(page.entries, 1):
        assert list(row)[: len(columns)] == columns
        assert set(row) - set(columns) == EXTRAS
        assert row["award_or_idv_flag"] == "AWARD"
        assert row["fpds_entry"] == str(position)
        assert row["fpds_agency_id"] == "4740"
        assert row["fpds_department_id"] == "4700"
        assert row["awarding_sub_agency_code"] == "4740"
        assert row["awarding_agency_code"] is None
        assert row["idv_type_code"] is None
    keys = [r["contract_transaction_unique_key"] for r in page.entries]
    assert len(set(keys)) == 10

    first = page.entries[0]
    assert first["award_id_piid"] == "1B3G02670"
    assert first["modification_number"] == "PA09"
    assert first["transaction_number"] == "0"
    assert first["contract_transaction_unique_key"] == "4740_-NONE-_1B3G02670_PA09_-NONE-_0"
    assert first["contract_award_unique_key"] == "CONT_AWD_1B3G02670_4740_-NONE-_-NONE-"
    assert first["federal_action_obligation"] == "8392.90"
    assert first["total_dollars_obligated"] == "127900.70"
    assert first["action_date"] == "2012-10-01"
    assert first["action_date_fiscal_year"] == "2013"
    assert first["period_of_performance_current_end_date"] == "2013-09-30"
    assert first["initial_report_date"] == "2013-12-18 17:02:55"
    assert first["last_modified_date"] == "2013-12-18 17:03:03"
    assert first["fpds_last_modified"] == "2013-12-18 17:03:03"
    assert first["award_type_code"] == "B"
    assert first["award_type"] == "PURCHASE ORDER"
    assert first["action_type_code"] == "M"
    assert first["awarding_office_code"] == "JU000"
    assert first["awarding_office_name"] == "GSA, PBS, ACQ MGT SVC BR"  # trimmed
    assert first["recipient_uei"] == "LNLJPLNR7GF5"
    assert first["recipient_parent_name"] == "CITY OF MC ALLEN"
    assert first["recipient_name_raw"] == "MC ALLEN CITY OF"  # empty vendorHeader: vendor/contractorName
    assert first["recipient_state_code"] == "TX"
    assert first["recipient_state_name"] == "TEXAS"
    assert first["prime_award_transaction_recipient_cd_original"] == "TX-15"  # congressionalDistrictCode 15
    assert first["prime_award_transaction_place_of_performance_cd_original"] == "TX-15"
    assert first["recipient_duns"] is None  # no DUNS block in this feed
    assert first["corporate_entity_not_tax_exempt"] == "f"
    assert first["transaction_description"] == "FY13 WATER UTILITIES."

    order = page.entries[7]  # delivery order under a GSA schedule owned by another subtier (4730)
    assert order["award_id_piid"] == "AZ000200206CP0302AZ0036GS07F0087K"
    assert order["parent_award_agency_id"] == "4730"
    assert order["parent_award_id_piid"] == "GS07F0087K"
    assert order["parent_award_modification_number"] == "0"
    assert order["contract_transaction_unique_key"] == "4740_4730_AZ000200206CP0302AZ0036GS07F0087K_0_GS07F0087K_0"
    assert order["contract_award_unique_key"] == "CONT_AWD_AZ000200206CP0302AZ0036GS07F0087K_4740_GS07F0087K_4730"
    assert order["award_type_code"] == "C"
    assert order["federal_action_obligation"] == "55768.89"
    assert order["action_date"] == "2002-06-15"
    assert order["action_date_fiscal_year"] == "2002"
    # its two modifications roll up to the same award
    assert {r["contract_award_unique_key"] for r in page.entries[7:]} == {order["contract_award_unique_key"]}


def test_gsa_truncated_single_page():
    page = parse_page(sample(GSA_TRUNCATED))
    assert len(page.entries) == 1 and page.problems == []
    assert page.last_start is None and page.next_url is None
    assert announced_total(page, None) == 1
    assert page.entries[0]["contract_transaction_unique_key"] == "4740_-NONE-_1B3G02670_PA09_-NONE-_0"


def test_announced_total_from_last_page():
    first = parse_page(sample(GSA_PAGE))
    last = parse_page(sample(GSA_TRUNCATED))  # stands in for the page at start=20 (1 entry)
    assert first.last_start == 20
    assert announced_total(first, last) == 21
    assert announced_total(first, FeedPage([], [(1, "x", "<entry/>")] * 3, None, 20, None)) == 23


def test_broker_award_and_idv():
    page = parse_page(sample(BROKER))
    assert page.problems == [] and page.last_start is None and page.next_url is None
    assert page.title == 'FPDS-NG search results for: PIID:"0001" CONTRACT_TYPE:"AWARD" CAGE_CODE:"0PW76"'
    call, idv_row = page.entries

    assert call["award_or_idv_flag"] == "AWARD"
    assert call["contract_transaction_unique_key"] == "9700_9700_0001_0_N6830617A0090_0"
    assert call["contract_award_unique_key"] == "CONT_AWD_0001_9700_N6830617A0090_9700"
    assert call["award_type_code"] == "A" and call["award_type"] == "BPA CALL"
    assert call["parent_award_id_piid"] == "N6830617A0090"
    assert call["parent_award_agency_id"] == "9700"
    assert call["parent_award_agency_name"] == "DEPT OF DEFENSE"
    assert call["parent_award_type_code"] == "E"
    assert call["awarding_sub_agency_code"] == "1700"  # the Navy office, not the PIID owner (9700)
    assert call["awarding_sub_agency_name"] == "DEPT OF THE NAVY"
    assert call["fpds_agency_id"] == "9700" and call["fpds_department_id"] == "9700"
    assert call["federal_action_obligation"] == "6760.00"
    assert call["action_date"] == "2016-11-01"
    assert call["action_date_fiscal_year"] == "2017"
    assert call["recipient_name"] == call["recipient_name_raw"] == "B.F. SAUL PROPERTY COMPANY"
    assert call["recipient_uei"] == "G4M3KUF95AL3" and call["recipient_parent_uei"] == "WF9TN8AWH8K5"
    assert call["recipient_duns"] == "806585717" and call["recipient_parent_duns"] == "006920342"
    assert call["cage_code"] == "0PW76"
    assert call["primary_place_of_performance_city_name"] == "ANDREWS AFB"
    assert call["primary_place_of_performance_county_name"] == "PRINCE GEORGES"
    assert call["receives_contracts_and_financial_assistance"] == "t"
    assert call["for_profit_organization"] == "t"
    assert call["woman_owned_business"] == "f"
    assert call["last_modified_date"] == "2017-05-16 13:11:27"
    assert call["prime_award_transaction_recipient_cd_original"] == "VA-08"
    assert call["prime_award_transaction_place_of_performance_cd_original"] == "MD-04"
    assert call["prime_award_transaction_recipient_cd_current"] is None  # USAspending's own derivation

    assert idv_row["award_or_idv_flag"] == "IDV"
    assert idv_row["contract_transaction_unique_key"] == "5000_-NONE-_000000000LC3162_0_-NONE-_-NONE-"
    assert idv_row["contract_award_unique_key"] == "CONT_IDV_000000000LC3162_5000"
    assert idv_row["idv_type_code"] == "B" and idv_row["idv_type"] == "IDC"
    assert idv_row["award_type_code"] is None
    assert idv_row["multiple_or_single_award_idv_code"] == "S"
    assert idv_row["transaction_number"] is None
    assert idv_row["action_date"] == "1988-10-15"
    assert idv_row["awarding_sub_agency_code"] is None  # empty element in the record
    assert idv_row["fpds_department_id"] == "5000"
    assert idv_row["fpds_last_modified"] is None and idv_row["last_modified_date"] is None
    assert idv_row["recipient_name_raw"] == "MEAD DATA CENTRAL"
    # country code "0" is not in the broker's country_code_map (pull_fpds_data.py vendor_site_details_values):
    # no state code, the state text as its name; so the district is the bare 2 digits
    assert (idv_row["recipient_state_code"], idv_row["recipient_state_name"]) == (None, "DC")
    assert idv_row["recipient_country_code"] == "0"
    assert idv_row["prime_award_transaction_recipient_cd_original"] == "00"
    assert idv_row["prime_award_transaction_place_of_performance_cd_original"] is None  # IDVs have no place
    assert idv_row["asian_pacific_american_owned_business"] == "t"


# ---------------------------------------------------------------- generated records


@pytest.mark.parametrize("ns", [FPDS, FPDS_LEGACY])
def test_generated_award_both_namespaces(ns):
    links = {"next": "https://x/ATOM?q=a&amp;start=10", "last": "https://x/ATOM?q=a&amp;start=30"}
    page = parse_page(feed(award(), ns=ns, links=links))
    assert page.problems == []
    assert page.next_url == "https://x/ATOM?q=a&start=10"
    assert page.last_start == 30
    (row,) = page.entries
    assert row["contract_transaction_unique_key"] == "7012_-NONE-_70CDCR18P00000001_0_-NONE-_0"
    assert row["contract_award_unique_key"] == "CONT_AWD_70CDCR18P00000001_7012_-NONE-_-NONE-"
    assert row["federal_action_obligation"] == "-1250.50"
    assert row["period_of_performance_start_date"] == "2018-01-16"  # trimmed, then date
    assert row["action_date_fiscal_year"] == "2018"
    assert row["transaction_description"] is None  # blank -> None
    assert row["recipient_name_raw"] == "ACME & SONS"
    assert row["woman_owned_business"] == "t" and row["veteran_owned_business"] == "f"
    assert row["recipient_state_code"] == "ON" and row["recipient_state_name"] == "ONTARIO"  # country USA: as given
    assert row["fpds_department_id"] == "7000"


def test_keys_upper_cased_and_parent_parts():
    page = parse_page(feed(award(piid="70cdcr18f00000042", ref_piid="hshqdc13d00001", ref_agency="7001", txn=None)))
    row = page.entries[0]
    assert row["award_id_piid"] == "70cdcr18f00000042"  # the column keeps the text as written
    assert row["contract_transaction_unique_key"] == "7012_7001_70CDCR18F00000042_0_HSHQDC13D00001_-NONE-"
    assert row["contract_award_unique_key"] == "CONT_AWD_70CDCR18F00000042_7012_HSHQDC13D00001_7001"


def test_generated_idv_prefixed_legacy_namespace():
    page = parse_page(feed(idv(), ns=FPDS_LEGACY))
    (row,) = page.entries
    assert row["award_or_idv_flag"] == "IDV"
    assert row["contract_transaction_unique_key"] == "7012_-NONE-_HSCETC15D00001_P00003_-NONE-_-NONE-"
    assert row["contract_award_unique_key"] == "CONT_IDV_HSCETC15D00001_7012"
    assert row["idv_type_code"] == "E" and row["idv_type"] == "BPA"
    assert row["type_of_idc_code"] == "B"
    assert row["ordering_period_end_date"] == "2022-09-30"
    assert row["parent_award_id_piid"] == "GS35F0001X" and row["parent_award_agency_id"] == "4732"
    assert row["fpds_last_modified"] == "2017-10-03 10:00:00"
    assert row["last_modified_date"] == "2017-10-03 10:00:00"


def test_action_type_written_as_description():
    page = parse_page(feed(award(action_type="<contractActionType>DELIVERY ORDER</contractActionType>")))
    row = page.entries[0]
    assert row["award_type_code"] == "C"
    assert row["award_type"] == "DELIVERY ORDER"


def test_foreign_vendor_state_rule():
    row = parse_page(feed(award(country="CAN"))).entries[0]
    assert row["recipient_country_code"] == "CAN"
    assert row["recipient_state_code"] is None
    assert row["recipient_state_name"] == "ON"


def test_unmappable_entries_go_to_problems():
    other = '<OtherTransactionAward xmlns="{ns}" version="1.5"><PIID>X</PIID></OtherTransactionAward>'
    data = feed(award(piid=None), award(), award(mod=None, agency=None), other, "")
    page = parse_page(data, url=URL)
    assert [r["fpds_entry"] for r in page.entries] == ["2"]
    assert [(p[0]) for p in page.problems] == [1, 3, 4, 5]
    reasons = {pos: reason for pos, reason, _ in page.problems}
    assert "awardID/awardContractID/PIID" in reasons[1]
    assert "agencyID" in reasons[3] and "modNumber" in reasons[3]
    assert "OtherTransactionAward" in reasons[4]
    assert "no <content>" in reasons[5]
    assert all("\n" not in reason for reason in reasons.values())
    raw = page.problems[0][2]
    assert "<" in raw and "70CDCR18P00000001" not in raw and "IMMIGRATION AND CUSTOMS ENFORCEMENT" in raw
    assert announced_total(page, None) == 5  # every entry counts, mapped or not


def test_problem_raw_xml_is_truncated():
    filler = "<descriptionOfContractRequirement>" + "x" * 50_000 + "</descriptionOfContractRequirement>"
    page = parse_page(feed(award(piid=None, extra=f"<contractData>{filler}</contractData>")))
    (_, _, raw), = page.problems
    assert len(raw.encode()) <= 20 << 10


def test_deleted_page_rows_have_keys():
    minimal = """<award xmlns="{ns}"><awardID><awardContractID><agencyID>7012</agencyID><PIID>70CDCR18P00000001</PIID>
      <modNumber>P00001</modNumber><transactionNumber>0</transactionNumber></awardContractID></awardID>
      <transactionInformation><lastModifiedDate>2018-02-01 12:00:00</lastModifiedDate>
      </transactionInformation></award>"""
    page = parse_deleted_page(feed(minimal, idv()))
    deleted_award, deleted_idv = page.entries
    assert deleted_award["contract_transaction_unique_key"] == "7012_-NONE-_70CDCR18P00000001_P00001_-NONE-_0"
    assert deleted_award["fpds_last_modified"] == "2018-02-01 12:00:00"
    assert deleted_award["federal_action_obligation"] is None and deleted_award["action_date"] is None
    assert deleted_idv["contract_award_unique_key"] == "CONT_IDV_HSCETC15D00001_7012"


# ---------------------------------------------------------------- hostile or broken input


def test_xxe_refused_and_file_never_read():
    data = (
        b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>'
    )
    message = refused(data, r"refusing XML with a DTD or entity declaration")
    assert "root:" not in message


def test_billion_laughs_refused():
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{lol}]><lolz>&lol9;</lolz>'.encode()
    refused(data, r"refusing XML with a DTD or entity declaration")


def test_internal_entity_without_doctype_is_not_well_formed():
    refused(b'<feed xmlns="http://www.w3.org/2005/Atom">&undefined;</feed>', r"not well-formed XML \(undefined entity")


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html>\n<html><head><title>FPDS maintenance</title></head><body>down</body></html>",
        b"\n  <html><body><h1>Error 500</h1></body></html>",
        b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
    ],
)
def test_html_refused(data):
    refused(data, r"HTML|<html>")


def test_other_root_refused():
    refused(b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', r"root element is <rss> \(namespace none\)")
    refused(b'<feed xmlns="http://example.com/atom"/>', r"root element is <feed> \(namespace http://example.com/atom\)")


def test_truncated_xml_refused():
    data = sample(GSA_PAGE) if (SAMPLES / GSA_PAGE).is_file() else feed(award(), award())
    refused(data[: len(data) // 2], r"not well-formed XML \(.*line \d+")
    refused(b"", r"not well-formed XML")


def test_oversize_refused():
    data = feed(award())
    message = refused(data, r"over the 1,000-byte limit", max_bytes=1_000)
    assert f"{len(data):,} bytes" in message
    assert parse_page(data, max_bytes=len(data)).entries  # at the limit is fine


def test_last_link_without_start_refused():
    refused(feed(award(), links={"last": "https://x/ATOM?q=a"}), r'link rel="last"> has no numeric start=')


# ---------------------------------------------------------------- queries and URLs


def test_build_query():
    jan = {"last_mod_from": date(2018, 1, 1), "last_mod_to": date(2018, 1, 31)}
    q = build_query(**jan, contracting_agency="7012", contract_type="award")
    assert q == 'LAST_MOD_DATE:[2018/01/01,2018/01/31] CONTRACTING_AGENCY_ID:7012 CONTRACT_TYPE:"AWARD"'
    one_day = build_query(last_mod_from=date(2024, 5, 1), last_mod_to=date(2024, 5, 1))
    assert one_day == "LAST_MOD_DATE:[2024/05/01,2024/05/01]"
    q = build_query(
        last_mod_from=date(2024, 5, 1), last_mod_to=date(2024, 5, 2), contract_type="IDV", extra=' AWARD_TYPE:"IDC" '
    )
    assert q == 'LAST_MOD_DATE:[2024/05/01,2024/05/02] CONTRACT_TYPE:"IDV" AWARD_TYPE:"IDC"'
    with pytest.raises(ValueError):
        build_query(last_mod_from=date(2018, 2, 1), last_mod_to=date(2018, 1, 1))
    with pytest.raises(ValueError):
        build_query(last_mod_from=date(2018, 1, 1), last_mod_to=date(2018, 1, 2), contract_type="GRANT")
    with pytest.raises(ValueError):
        build_query(last_mod_from=date(2018, 1, 1), last_mod_to=date(2018, 1, 2), contracting_agency='7012" OR x')


def test_page_url():
    base = "https://www.fpds.gov/ezsearch/FEEDS/ATOM"
    q = 'LAST_MOD_DATE:[2018/01/01,2018/01/31] CONTRACTING_AGENCY_ID:7012 CONTRACT_TYPE:"AWARD"'
    assert page_url(base, q) == (
        "https://www.fpds.gov/ezsearch/FEEDS/ATOM?FEEDNAME=PUBLIC&templateName=1.5.3"
        "&q=LAST_MOD_DATE%3A%5B2018%2F01%2F01%2C2018%2F01%2F31%5D"
        "+CONTRACTING_AGENCY_ID%3A7012+CONTRACT_TYPE%3A%22AWARD%22"
        "&start=0"
    )
    deleted = page_url(base, q, 40, feed="DELETED")
    assert deleted.startswith(base + "?FEEDNAME=DELETED&templateName=1.5.3&q=") and deleted.endswith("&start=40")
    with pytest.raises(ValueError):
        page_url(base, q, -10)
