"""A local stand-in for the FPDS ATOM feed (tests only).

Serves ``GET /ezsearch/FEEDS/ATOM?FEEDNAME=PUBLIC|DELETED&q=...&start=N``: the
records whose lastModifiedDate falls in the query's ``LAST_MOD_DATE:[a,b]``, whose
contracting agency matches ``CONTRACTING_AGENCY_ID:x`` (or department
``DEPARTMENT_ID:y``) and whose record type matches ``CONTRACT_TYPE:"AWARD"|"IDV"|...``
and ``AWARD_TYPE:"Delivery Order"|"GWAC"|...`` (the terms the broker's
pull_fpds_data.py writes; a query without them gets every type, other transactions
included, as FPDS does), 10 entries a page, with ``next`` and ``last`` links as
FPDS writes them. Can serve fixed pages instead (real samples), change the data
while a window is being paged (count drift), cap the results, or answer a page
with any bytes (an XXE payload).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

ATOM = "http://www.w3.org/2005/Atom"
FPDS = "https://www.fpds.gov/FPDS"
PATH = "/ezsearch/FEEDS/ATOM"


@dataclass
class Record:
    """One contract action as FPDS publishes it (the fields the tests use)."""

    piid: str
    agency: str = "7012"
    mod: str = "0"
    txn: str = "0"
    amount: str = "1000.00"
    signed: str = "2018-03-05"
    last_modified: str = "2018-03-06 10:00:00"
    vendor: str = "PALANTIR USG INC."
    uei: str = "PALUSG000001"
    description: str = "FALCON OPERATIONS AND MAINTENANCE"
    ref_piid: str | None = None
    ref_agency: str | None = None
    award_type: str = "D"  # contractActionType code; its AWARD_TYPE label is in AWARD_TYPE_LABELS
    department: str = "7000"
    contract_type: str = "AWARD"  # AWARD | IDV | OTHER TRANSACTION AWARD
    location: str = ""  # extra XML inside vendorLocation
    place: str = ""  # XML of placeOfPerformance's content

    def xml(self) -> str:
        if self.contract_type == "IDV":
            return self._idv_xml()
        if self.contract_type == "OTHER TRANSACTION AWARD":
            return self._other_transaction_xml()
        ref = ""
        if self.ref_piid:
            ref = (f"<ns1:referencedIDVID><ns1:agencyID>{self.ref_agency}</ns1:agencyID><ns1:PIID>{self.ref_piid}</ns1:PIID>"
                   "<ns1:modNumber>0</ns1:modNumber></ns1:referencedIDVID>")
        return f"""<ns1:award xmlns:ns1="{FPDS}" version="1.5">
  <ns1:awardID><ns1:awardContractID><ns1:agencyID name="ICE">{self.agency}</ns1:agencyID><ns1:PIID>{self.piid}</ns1:PIID>
    <ns1:modNumber>{self.mod}</ns1:modNumber><ns1:transactionNumber>{self.txn}</ns1:transactionNumber></ns1:awardContractID>{ref}</ns1:awardID>
  <ns1:relevantContractDates><ns1:signedDate>{self.signed} 00:00:00</ns1:signedDate></ns1:relevantContractDates>
  <ns1:dollarValues><ns1:obligatedAmount>{self.amount}</ns1:obligatedAmount></ns1:dollarValues>
  <ns1:purchaserInformation><ns1:contractingOfficeAgencyID name="U.S. IMMIGRATION AND CUSTOMS ENFORCEMENT"
    departmentID="{self.department}" departmentName="HOMELAND SECURITY, DEPARTMENT OF">{self.agency}</ns1:contractingOfficeAgencyID></ns1:purchaserInformation>
  <ns1:contractData><ns1:contractActionType description="{AWARD_TYPE_LABELS["AWARD"].get(self.award_type, "").upper()}">{self.award_type}</ns1:contractActionType>
    <ns1:descriptionOfContractRequirement>{escape(self.description)}</ns1:descriptionOfContractRequirement></ns1:contractData>
  <ns1:productOrServiceInformation><ns1:productOrServiceCode description="IT SERVICES">D302</ns1:productOrServiceCode>
    <ns1:principalNAICSCode description="COMPUTER SYSTEMS DESIGN">541512</ns1:principalNAICSCode></ns1:productOrServiceInformation>
  {f"<ns1:placeOfPerformance>{self.place}</ns1:placeOfPerformance>" if self.place else ""}
  {self._vendor_xml()}
  <ns1:transactionInformation><ns1:lastModifiedDate>{self.last_modified}</ns1:lastModifiedDate></ns1:transactionInformation>
</ns1:award>"""

    def _vendor_xml(self) -> str:
        location = f"<ns1:vendorLocation>{self.location}</ns1:vendorLocation>" if self.location else ""
        return f"""<ns1:vendor><ns1:vendorHeader><ns1:vendorName>{escape(self.vendor)}</ns1:vendorName></ns1:vendorHeader>
    <ns1:vendorSiteDetails><ns1:entityIdentifiers><ns1:vendorUEIInformation><ns1:UEI>{self.uei}</ns1:UEI></ns1:vendorUEIInformation>
    </ns1:entityIdentifiers>{location}</ns1:vendorSiteDetails></ns1:vendor>"""

    def _idv_xml(self) -> str:
        return f"""<ns1:IDV xmlns:ns1="{FPDS}" version="1.5">
  <ns1:contractID><ns1:IDVID><ns1:agencyID name="ICE">{self.agency}</ns1:agencyID><ns1:PIID>{self.piid}</ns1:PIID>
    <ns1:modNumber>{self.mod}</ns1:modNumber></ns1:IDVID></ns1:contractID>
  <ns1:relevantContractDates><ns1:signedDate>{self.signed} 00:00:00</ns1:signedDate></ns1:relevantContractDates>
  <ns1:dollarValues><ns1:obligatedAmount>{self.amount}</ns1:obligatedAmount></ns1:dollarValues>
  <ns1:purchaserInformation><ns1:contractingOfficeAgencyID name="U.S. IMMIGRATION AND CUSTOMS ENFORCEMENT"
    departmentID="{self.department}">{self.agency}</ns1:contractingOfficeAgencyID></ns1:purchaserInformation>
  <ns1:contractData><ns1:contractActionType>{self.award_type}</ns1:contractActionType>
    <ns1:descriptionOfContractRequirement>{escape(self.description)}</ns1:descriptionOfContractRequirement></ns1:contractData>
  {self._vendor_xml()}
  <ns1:transactionInformation><ns1:lastModifiedDate>{self.last_modified}</ns1:lastModifiedDate></ns1:transactionInformation>
</ns1:IDV>"""

    def _other_transaction_xml(self) -> str:
        """The shape FPDS gives an other transaction (OtherTransactionAwardID/OtherTransactionAwardContractID)."""
        return f"""<ns1:OtherTransactionAward xmlns:ns1="{FPDS}" version="1.5">
  <ns1:OtherTransactionAwardID><ns1:OtherTransactionAwardContractID><ns1:agencyID>{self.agency}</ns1:agencyID>
    <ns1:PIID>{self.piid}</ns1:PIID><ns1:modNumber>{self.mod}</ns1:modNumber></ns1:OtherTransactionAwardContractID>
  </ns1:OtherTransactionAwardID>
  <ns1:contractDetail><ns1:dollarValues><ns1:obligatedAmount>{self.amount}</ns1:obligatedAmount></ns1:dollarValues>
    <ns1:purchaserInformation><ns1:contractingOfficeAgencyID departmentID="{self.department}">{self.agency}</ns1:contractingOfficeAgencyID>
    </ns1:purchaserInformation></ns1:contractDetail>
  <ns1:transactionInformation><ns1:lastModifiedDate>{self.last_modified}</ns1:lastModifiedDate></ns1:transactionInformation>
</ns1:OtherTransactionAward>"""


# contractActionType code -> the AWARD_TYPE value of FPDS queries (pull_fpds_data.py award_types_award/_idv)
AWARD_TYPE_LABELS = {
    "AWARD": {"A": "BPA Call", "B": "Purchase Order", "C": "Delivery Order", "D": "Definitive Contract"},
    "IDV": {"A": "GWAC", "B": "IDC", "C": "FSS", "D": "BOA", "E": "BPA"},
}


def page_xml(records: list[Record], links: dict[str, str]) -> bytes:
    link_xml = "".join(f'<link rel="{rel}" type="text/html" href="{escape(href)}"/>' for rel, href in links.items())
    entries = "".join(f"<entry><title>{escape(r.piid)}</title><modified>{r.last_modified}</modified>"
                      f'<content type="application/xml">{r.xml()}</content></entry>' for r in records)
    return f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><title>FPDS-NG search results</title>{link_xml}{entries}</feed>'.encode()


def _matches(record: Record, query: str) -> bool:
    m = re.search(r"LAST_MOD_DATE:\[(\d{4}/\d{2}/\d{2}),(\d{4}/\d{2}/\d{2})\]", query)
    if m:
        low, high = (datetime.strptime(x, "%Y/%m/%d").date() for x in m.groups())
        if not low <= date.fromisoformat(record.last_modified[:10]) <= high:
            return False
    if (a := re.search(r"CONTRACTING_AGENCY_ID:(\w+)", query)) and a.group(1) != record.agency:
        return False
    if (d := re.search(r"DEPARTMENT_ID:(\w+)", query)) and d.group(1) != record.department:
        return False
    if (c := re.search(r'CONTRACT_TYPE:"([^"]*)"', query)) and c.group(1).upper() != record.contract_type.upper():
        return False
    if t := re.search(r'AWARD_TYPE:"([^"]*)"', query):
        label = AWARD_TYPE_LABELS.get(record.contract_type, {}).get(record.award_type, "")
        if t.group(1).upper() != label.upper():
            return False
    return True


@dataclass
class FakeFPDS:
    records: list[Record] = field(default_factory=list)
    deleted: list[Record] = field(default_factory=list)
    fixed_pages: dict[int, bytes] = field(default_factory=dict)  # start -> bytes, served for any query when set
    fixed_for: str = ""  # when set, fixed pages are served only to queries containing this text
    payloads: dict[int, bytes] = field(default_factory=dict)  # start -> bytes served instead of the page
    drift: Record | None = None  # added to the records once the first page of a query that matches it was served
    cap: int = 400_000
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def __enter__(self) -> "FakeFPDS":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                status, body = fake.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/atom+xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, target: str) -> tuple[int, bytes]:
        parts = urlsplit(target)
        if parts.path != PATH:
            return 404, b"not found"
        args = {k: v[0] for k, v in parse_qs(parts.query).items()}
        start = int(args.get("start", "0"))
        with self._lock:
            self.requests.append(target)
            if start in self.payloads:
                return 200, self.payloads[start]
            query = args.get("q", "")
            if self.fixed_pages and self.fixed_for in query:
                return (200, self.fixed_pages[start]) if start in self.fixed_pages else (404, b"no such page")
            pool = self.deleted if args.get("FEEDNAME") == "DELETED" else self.records
            found = [r for r in pool if _matches(r, query)]
            if start == 0 and self.drift is not None and args.get("FEEDNAME") != "DELETED" and _matches(self.drift, query):
                self.records.append(self.drift)
                self.drift = None
        last = max(0, (len(found) - 1) // 10 * 10)
        links = {"alternate": "https://www.fpds.gov/ezsearch/search.do"}
        base = f"{self.url}?" + urlencode({k: v for k, v in args.items() if k != "start"})
        if last > 0:
            links["last"] = f"{base}&start={last}"
        if start + 10 <= last:
            links["next"] = f"{base}&start={start + 10}"
        served = found[start : start + 10] if start < self.cap else []  # FPDS announces all, serves up to its cap
        return 200, page_xml(served, links)
