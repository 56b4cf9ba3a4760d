"""FPDS ATOM feed pages -> canonical contract-transaction rows (pure parsing, no I/O).

A feed page (award-sources.md, section 3) is an Atom ``feed`` of up to 10 ``entry``
elements, each holding one FPDS ``award`` (award feed) or ``IDV`` record in its
``content``. ``parse_page`` turns the bytes of one page into a ``FeedPage``: one
row per record, with every canonical column (``schemas/columns.csv``) as a key,
plus the paging links. Entries that cannot be mapped are kept in
``FeedPage.problems`` with their raw XML, never dropped.

The XML is parsed with defusedxml and any DTD or entity declaration is refused.
Elements are found by namespace URI, never by prefix: the FPDS namespace is
``https://www.fpds.gov/FPDS`` (or the legacy ``http://www.fpdsng.com/FPDS``).

Mapping (``fpds_paths.csv`` beside this module, generated from the reference
``contract_transaction_columns.csv``): one row per column that the feed carries,
``award_path`` / ``idv_path`` relative to the ``award`` / ``IDV`` element;
``X@attr`` is attribute ``attr`` of element ``X``; ``a | b`` means the first of
``a``, ``b`` that has a value. Additions to the reference file, on purpose:

* ``recipient_name`` / ``recipient_name_raw``: ``vendor/vendorHeader/vendorName``,
  falling back to ``vendor/contractorName`` (older records leave ``vendorHeader``
  empty); ``recipient_name`` further to the UEI legal business name.
* ``recipient_parent_name`` / ``_raw``: ``ultimateParentUEIName``, falling back to
  the legacy ``globalParentDUNSName``.
* Locations follow the broker (data-act-broker-backend
  ``dataactcore/scripts/pipeline/pull_fpds_data.py``: ``country_code_map``,
  ``vendor_site_details_values``, ``calculate_legal_entity_fields``,
  ``calculate_ppop_fields``): a vendor country code not in ``COUNTRY_CODE_MAP`` (foreign,
  missing, or legacy junk such as ``0``) gives no state code and the state text as the
  state name; a territory country code (PRI, GUM, VIR, ...) becomes country USA /
  UNITED STATES with the territory as state (recipient and place of performance); a
  state name missing for a US state code is filled from ``STATE_NAMES``. The place of
  performance state is otherwise kept as written, whatever its country.
* ``prime_award_transaction_*_cd_original``: ``vendorLocation/congressionalDistrictCode``
  and ``placeOfPerformanceCongressionalDistrict`` in the form of today's USAspending
  download (``STATE-CD``, or the bare 2-digit district when there is no state code);
  ``_cd_current`` is USAspending's own derivation and stays None.

Filled in code: ``award_or_idv_flag``; ``award_type_code`` / ``idv_type_code`` from a
description when the feed writes one instead of the letter; the two unique keys
(award-sources.md 2.1); ``action_date_fiscal_year`` from ``action_date``.
``awarding_agency_code`` and ``funding_agency_code`` (3-digit toptier codes) are not
in the feed and stay None. Extra, non-canonical keys on every row:
``fpds_agency_id`` (the key's agency id: awardContractID/agencyID or IDVID/agencyID),
``fpds_department_id`` (contractingOfficeAgencyID@departmentID, a 4-digit FPDS
department code such as 4700 or 9700), ``fpds_last_modified``
(transactionInformation/lastModifiedDate as written) and ``fpds_entry`` (1-based
position of the entry on the page).

Values are trimmed text, empty -> None; booleans ``true``/``false`` -> ``t``/``f``;
dates ``YYYY-MM-DD``; timestamps ``YYYY-MM-DD HH:MM:SS``; amounts as written. A value
of an unexpected shape is kept as written, for validation to report.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from awardwatch.schemas.errors import InputError
from awardwatch.schemas.layouts import current_columns

ATOM = "http://www.w3.org/2005/Atom"
FPDS_NAMESPACES = ("https://www.fpds.gov/FPDS", "http://www.fpdsng.com/FPDS")
NONE = "-NONE-"
MAX_BYTES = 20 << 20  # a real page of 10 records is about 200 kB
RAW_XML_BYTES = 20 << 10  # raw XML kept per problem entry
AWARD, IDV = "award", "IDV"

# Where the parts of the unique keys live, per record kind.
KEY_PATHS = {
    AWARD: {
        "agency_id": "awardID/awardContractID/agencyID",
        "piid": "awardID/awardContractID/PIID",
        "mod": "awardID/awardContractID/modNumber",
        "transaction_number": "awardID/awardContractID/transactionNumber",
        "ref_agency_id": "awardID/referencedIDVID/agencyID",
        "ref_piid": "awardID/referencedIDVID/PIID",
    },
    IDV: {
        "agency_id": "contractID/IDVID/agencyID",
        "piid": "contractID/IDVID/PIID",
        "mod": "contractID/IDVID/modNumber",
    },
}
REQUIRED_KEY_PARTS = ("piid", "agency_id", "mod")
DEPARTMENT_PATH = ("purchaserInformation/contractingOfficeAgencyID", "departmentID")
LAST_MODIFIED_PATH = "transactionInformation/lastModifiedDate"

# The record types awardwatch loads, as the broker asks for them (pull_fpds_data.py main(): award_types_idv,
# award_types_award; the query writes CONTRACT_TYPE upper-cased and AWARD_TYPE as here).
AWARD_TYPES = {
    "IDV": ("GWAC", "BOA", "BPA", "FSS", "IDC"),
    "AWARD": ("Delivery Order", "BPA Call", "Definitive Contract", "Purchase Order"),
}
# contractActionType descriptions -> codes, for feeds that write the label instead of the letter.
AWARD_TYPE_CODES = {"BPA CALL": "A", "PURCHASE ORDER": "B", "DELIVERY ORDER": "C", "DEFINITIVE CONTRACT": "D"}
IDV_TYPE_CODES = {"GWAC": "A", "IDC": "B", "FSS": "C", "BOA": "D", "BPA": "E"}
# pull_fpds_data.py country_code_map: the country codes the broker treats as the US, and the state each becomes.
# (load_country_codes.py's TERRITORY_LIST also has XNV, Navassa Island; the FPDS load does not map it.)
COUNTRY_CODE_MAP = {
    "USA": "US", "ASM": "AS", "GUM": "GU", "MNP": "MP", "PRI": "PR", "VIR": "VI", "FSM": "FM", "MHL": "MH",
    "PLW": "PW", "XBK": "UM", "XHO": "UM", "XJV": "UM", "XJA": "UM", "XKR": "UM", "XPL": "UM", "XMW": "UM",
    "XWK": "UM",
}
# State code -> upper-cased name, standing in for the broker's States table (create_lookups: upper(state_name));
# that table is loaded from USAspending's reference state_list.csv, which is in neither repository. Names as
# USAspending's usaspending_api/data/CensusStateData.csv spells them, plus UM (Census). FM, MH, PW are in no
# such list: their name stays as FPDS wrote it.
STATE_NAMES = {
    "AL": "ALABAMA", "AK": "ALASKA", "AZ": "ARIZONA", "AR": "ARKANSAS", "CA": "CALIFORNIA", "CO": "COLORADO",
    "CT": "CONNECTICUT", "DE": "DELAWARE", "DC": "DISTRICT OF COLUMBIA", "FL": "FLORIDA", "GA": "GEORGIA",
    "HI": "HAWAII", "ID": "IDAHO", "IL": "ILLINOIS", "IN": "INDIANA", "IA": "IOWA", "KS": "KANSAS",
    "KY": "KENTUCKY", "LA": "LOUISIANA", "ME": "MAINE", "MD": "MARYLAND", "MA": "MASSACHUSETTS",
    "MI": "MICHIGAN", "MN": "MINNESOTA", "MS": "MISSISSIPPI", "MO": "MISSOURI", "MT": "MONTANA",
    "NE": "NEBRASKA", "NV": "NEVADA", "NH": "NEW HAMPSHIRE", "NJ": "NEW JERSEY", "NM": "NEW MEXICO",
    "NY": "NEW YORK", "NC": "NORTH CAROLINA", "ND": "NORTH DAKOTA", "OH": "OHIO", "OK": "OKLAHOMA",
    "OR": "OREGON", "PA": "PENNSYLVANIA", "RI": "RHODE ISLAND", "SC": "SOUTH CAROLINA", "SD": "SOUTH DAKOTA",
    "TN": "TENNESSEE", "TX": "TEXAS", "UT": "UTAH", "VT": "VERMONT", "VA": "VIRGINIA", "WA": "WASHINGTON",
    "WV": "WEST VIRGINIA", "WI": "WISCONSIN", "WY": "WYOMING", "AS": "AMERICAN SAMOA", "GU": "GUAM",
    "MP": "NORTHERN MARIANA ISLANDS", "PR": "PUERTO RICO", "VI": "U.S. VIRGIN ISLANDS",
    "UM": "U.S. MINOR OUTLYING ISLANDS",
}
# usaspending-api search/delta_models/dataframes/abstract_search.py extract_numbers_as_string (Java regex, ASCII \d)
_DISTRICT = re.compile(r"[A-Z]*([0-9]+)(?:.[0-9]+)?")
RECIPIENT = ("recipient_country_code", "recipient_country_name", "recipient_state_code", "recipient_state_name",
             "prime_award_transaction_recipient_cd_original")
PLACE = ("primary_place_of_performance_country_code", "primary_place_of_performance_country_name",
         "primary_place_of_performance_state_code", "primary_place_of_performance_state_name",
         "prime_award_transaction_place_of_performance_cd_original")

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?)?")
_HTML = re.compile(rb"\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>/]", re.I | re.S)

Ref = tuple[str, str | None]  # (element path, attribute or None for the text)


class FeedError(InputError):
    """A feed response that cannot be read as an FPDS ATOM page."""


@dataclass(frozen=True)
class FeedPage:
    entries: list[dict[str, str | None]]  # one row per mapped entry: canonical columns + fpds_* extras
    problems: list[tuple[int, str, str]]  # (entry position 1-based, reason, raw entry XML <= 20 kB)
    next_url: str | None  # href of <link rel="next">
    last_start: int | None  # start= of <link rel="last">; None when there is no last link (single page)
    title: str | None


# ---------------------------------------------------------------- mapping table


def _refs(spec: str) -> tuple[Ref, ...]:
    refs = []
    for alternative in filter(None, (part.strip() for part in spec.split("|"))):
        path, _, attr = alternative.partition("@")
        refs.append((path, attr or None))
    return tuple(refs)


@cache
def mapping() -> dict[str, dict[str, tuple[Ref, ...]]]:
    """Record kind ("award"/"IDV") -> canonical column -> where to read it (first with a value wins)."""
    columns = current_columns()
    table: dict[str, dict[str, tuple[Ref, ...]]] = {AWARD: {}, IDV: {}}
    with open(Path(__file__).with_name("fpds_paths.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["name"] not in columns:
                raise RuntimeError(f"fpds_paths.csv: {row['name']!r} is not a canonical column")
            for kind, spec in ((AWARD, row["award_path"]), (IDV, row["idv_path"])):
                if refs := _refs(spec):
                    table[kind][row["name"]] = refs
    return table


# ---------------------------------------------------------------- values


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def _as_date(text: str) -> str:
    m = _DATE.fullmatch(text)
    return m.group(1) if m else text


def _as_timestamp(text: str) -> str:
    m = _DATE.fullmatch(text)
    return f"{m.group(1)} {m.group(2) or '00:00:00'}" if m else text


def _as_bool(text: str) -> str:
    return {"true": "t", "false": "f"}.get(text.lower(), text)


CONVERT = {"date": _as_date, "timestamp": _as_timestamp, "bool": _as_bool}


def _local(tag: str) -> tuple[str, str]:
    """'{uri}name' -> (uri, name)."""
    if tag.startswith("{"):
        uri, _, name = tag[1:].partition("}")
        return uri, name
    return "", tag


def _index(record: ET.Element) -> dict[str, ET.Element]:
    """Every element below ``record`` in its namespace by path of local names ('a/b/c');
    the first occurrence wins for repeated elements."""
    ns = _local(record.tag)[0]
    found: dict[str, ET.Element] = {}
    stack = [(record, "")]
    while stack:
        element, prefix = stack.pop()
        for child in reversed(element):  # reversed + stack pop = document order
            if not isinstance(child.tag, str):  # comments, processing instructions
                continue
            uri, name = _local(child.tag)
            if uri != ns:
                continue
            path = prefix + name
            found.setdefault(path, child)
            stack.append((child, path + "/"))
    return found


def _read(index: dict[str, ET.Element], path: str, attr: str | None = None) -> str | None:
    element = index.get(path)
    if element is None:
        return None
    return _clean(element.get(attr) if attr else element.text)


# ---------------------------------------------------------------- records


def _type_code(row: dict[str, str | None], code_col: str, label_col: str, codes: dict[str, str]) -> None:
    """Keeps a known letter; otherwise takes the letter from a description in the text or label."""
    code = row[code_col]
    if code is not None and code.upper() in codes.values():
        row[code_col] = code.upper()
        return
    for text in (code, row[label_col]):
        if text is not None and text.upper() in codes:
            row[label_col] = row[label_col] or text
            row[code_col] = codes[text.upper()]
            return


def _us_location(row: dict[str, str | None], country: str, country_name: str, state: str, state_name: str,
                 district: str) -> None:
    """calculate_legal_entity_fields / calculate_ppop_fields (pull_fpds_data.py): a territory country code becomes
    USA with the territory as state; a US state code gets its name when FPDS wrote none. Then the district in
    the download's form (usaspending-api download_annotation_functions.py congressional_district_display_name)."""
    if row[country] in COUNTRY_CODE_MAP:
        if row[country] != "USA":
            row[state] = COUNTRY_CODE_MAP[row[country]]
            row[state_name] = STATE_NAMES.get(row[state], row[state_name])
            row[country], row[country_name] = "USA", "UNITED STATES"
        if row[state] and not row[state_name] and row[state] in STATE_NAMES:
            row[state_name] = STATE_NAMES[row[state]]
    row[district] = _district(row[state], row[district])


def _district(state: str | None, code: str | None) -> str | None:
    """A congressional district as today's download writes it: ``STATE-CD``, or the bare 2-digit district
    when there is no state code; None when the code has no digits."""
    m = _DISTRICT.fullmatch(code or "")
    if m is None or int(m.group(1)) > 32767:  # cast(ShortType): out of range -> null
        return None
    digits = str(int(m.group(1))).rjust(2, "0")[:2]  # lpad(.., 2, "0") also cuts to 2
    return f"{state}-{digits}" if state else digits


def _fiscal_year(action_date: str | None) -> str | None:
    try:
        day = date.fromisoformat(action_date or "")
    except ValueError:
        return None
    return str(day.year + (day.month >= 10))


def _row(record: ET.Element, kind: str, position: int) -> dict[str, str | None] | str:
    """One canonical row, or the reason the record cannot be mapped."""
    index = _index(record)
    parts = {part: _read(index, path) for part, path in KEY_PATHS[kind].items()}
    missing = [KEY_PATHS[kind][part] for part in REQUIRED_KEY_PARTS if parts[part] is None]
    if missing:
        return f"{kind} record lacks {', '.join(missing)}"

    kinds = current_columns()
    row: dict[str, str | None] = dict.fromkeys(kinds)
    for column, refs in mapping()[kind].items():
        value = next((v for v in (_read(index, path, attr) for path, attr in refs) if v is not None), None)
        if value is not None and kinds[column] in CONVERT:
            value = CONVERT[kinds[column]](value)
        row[column] = value

    if row["recipient_country_code"] not in COUNTRY_CODE_MAP:  # vendor_site_details_values: not a US state
        row["recipient_state_name"] = row["recipient_state_code"]
        row["recipient_state_code"] = None
    for columns in (RECIPIENT, PLACE):
        _us_location(row, *columns)

    agency, piid, mod = parts["agency_id"], parts["piid"], parts["mod"]
    if kind == AWARD:
        row["award_or_idv_flag"] = "AWARD"
        _type_code(row, "award_type_code", "award_type", AWARD_TYPE_CODES)
        ref_agency, ref_piid = parts["ref_agency_id"] or NONE, parts["ref_piid"] or NONE
        txn_key = [agency, ref_agency, piid, mod, ref_piid, parts["transaction_number"] or NONE]
        award_key = ["CONT_AWD", piid, agency, ref_piid, ref_agency]
    else:
        row["award_or_idv_flag"] = "IDV"
        _type_code(row, "idv_type_code", "idv_type", IDV_TYPE_CODES)
        txn_key = [agency, NONE, piid, mod, NONE, NONE]
        award_key = ["CONT_IDV", piid, agency]
    row["contract_transaction_unique_key"] = "_".join(txn_key).upper()
    row["contract_award_unique_key"] = "_".join(award_key).upper()
    row["action_date_fiscal_year"] = row["action_date_fiscal_year"] or _fiscal_year(row["action_date"])

    row["fpds_agency_id"] = agency
    row["fpds_department_id"] = _read(index, *DEPARTMENT_PATH)
    row["fpds_last_modified"] = _read(index, LAST_MODIFIED_PATH)
    row["fpds_entry"] = str(position)
    return row


def _record(entry: ET.Element) -> tuple[ET.Element, str] | str:
    """The entry's award/IDV element and its kind, or why there is none."""
    content = entry.find(f"{{{ATOM}}}content")
    if content is None:
        return "entry has no <content>"
    children = [c for c in content if isinstance(c.tag, str)]
    for child in children:
        uri, name = _local(child.tag)
        if name in (AWARD, IDV) and uri in FPDS_NAMESPACES:
            return child, name
    if not children:
        return "entry <content> is empty"
    uri, name = _local(children[0].tag)
    return f"entry <content> holds <{name}> (namespace {uri or 'none'}), not an FPDS award or IDV"


def _raw_xml(entry: ET.Element) -> str:
    text = ET.tostring(entry, encoding="unicode")
    return text.encode("utf-8")[:RAW_XML_BYTES].decode("utf-8", "ignore")


# ---------------------------------------------------------------- pages


def _parse_root(data: bytes, where: str, max_bytes: int) -> ET.Element:
    if len(data) > max_bytes:
        raise FeedError(f"{where}: response is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    if _HTML.match(data[:4096].removeprefix(b"\xef\xbb\xbf")):
        raise FeedError(f"{where}: got an HTML page (root <html>), not an Atom feed (error or maintenance page?)")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise FeedError(f"{where}: refusing XML with a DTD or entity declaration") from None
    except (ET.ParseError, LookupError) as exc:
        raise FeedError(f"{where}: not well-formed XML ({_one_line(exc)})") from None
    uri, name = _local(root.tag)
    if (uri, name) != (ATOM, "feed"):
        what = "an HTML page" if name.lower() == "html" else "not an Atom feed"
        raise FeedError(f"{where}: root element is <{name}> (namespace {uri or 'none'}), {what}")
    return root


def _links(root: ET.Element, where: str) -> tuple[str | None, int | None]:
    hrefs: dict[str, str] = {}
    for link in root.findall(f"{{{ATOM}}}link"):
        rel, href = link.get("rel"), _clean(link.get("href"))
        if rel in ("next", "last") and href and rel not in hrefs:
            hrefs[rel] = href
    last_start = None
    if "last" in hrefs:
        starts = parse_qs(urlsplit(hrefs["last"]).query).get("start", [])
        if not starts or not starts[-1].strip().isdigit():
            href = _one_line(hrefs["last"])[:300]
            raise FeedError(f'{where}: <link rel="last"> has no numeric start= value: {href}')
        last_start = int(starts[-1])
    return hrefs.get("next"), last_start


def parse_page(data: bytes, *, url: str = "", max_bytes: int = MAX_BYTES) -> FeedPage:
    """One FPDS ATOM feed page (PUBLIC feed, award or IDV records) -> rows, problems and paging links.

    Raises FeedError (one line, naming ``url``) for oversize data, a DTD or entity
    declaration, XML that is not well-formed, HTML, or a root other than an Atom feed."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    where = url or "FPDS feed page"
    root = _parse_root(bytes(data), where, max_bytes)
    next_url, last_start = _links(root, where)
    title = root.find(f"{{{ATOM}}}title")

    entries: list[dict[str, str | None]] = []
    problems: list[tuple[int, str, str]] = []
    for position, entry in enumerate(root.findall(f"{{{ATOM}}}entry"), start=1):
        found = _record(entry)
        result = _row(*found, position) if isinstance(found, tuple) else found
        if isinstance(result, dict):
            entries.append(result)
        else:
            problems.append((position, _one_line(result), _raw_xml(entry)))
    return FeedPage(
        entries=entries,
        problems=problems,
        next_url=next_url,
        last_start=last_start,
        title=_clean(_one_line(title.text or "")) if title is not None else None,
    )


def parse_deleted_page(data: bytes, *, url: str = "", max_bytes: int = MAX_BYTES) -> FeedPage:
    """A DELETED-feed page. Its entries have the same ``content/award|IDV`` shape as the
    PUBLIC feed (key fields and transactionInformation/lastModifiedDate), so the rows are
    built the same way: keys filled, most other columns None. A stored row is deleted
    only when ``fpds_last_modified`` of the delete is later than the stored row's."""
    return parse_page(data, url=url, max_bytes=max_bytes)


def _entry_count(page: FeedPage) -> int:
    return len(page.entries) + len(page.problems)


def announced_total(first_page: FeedPage, last_page: FeedPage | None) -> int:
    """Records the query announces: start= of the last link + entries on the last page
    (single page: its entry count). Entries counted include those in ``problems``, since
    every feed entry counts. ``last_page`` may be None only for a single page."""
    if first_page.last_start is None:
        return _entry_count(first_page)
    if last_page is None:
        if first_page.last_start == 0:
            return _entry_count(first_page)
        raise ValueError(f"need the last page (start={first_page.last_start}) to count the entries")
    return first_page.last_start + _entry_count(last_page)


# ---------------------------------------------------------------- queries


def build_query(
    *,
    last_mod_from: date,
    last_mod_to: date,
    contracting_agency: str | None = None,
    contract_type: str | None = None,
    award_type: str | None = None,
    extra: str = "",
) -> str:
    """An FPDS ``q=`` value, e.g. ``LAST_MOD_DATE:[2018/01/01,2018/01/31] CONTRACTING_AGENCY_ID:7012
    CONTRACT_TYPE:"AWARD" AWARD_TYPE:"Delivery Order"``; ``extra`` terms are appended as written.
    Type terms are written as the broker writes them (pull_fpds_data.py ``get_data``, ``get_delete_data``);
    ``award_type`` is one of ``AWARD_TYPES[contract_type]`` and needs ``contract_type``."""
    if last_mod_from > last_mod_to:
        raise ValueError(f"last_mod_from {last_mod_from} is after last_mod_to {last_mod_to}")
    terms = [f"LAST_MOD_DATE:[{last_mod_from:%Y/%m/%d},{last_mod_to:%Y/%m/%d}]"]
    if contracting_agency:
        agency = contracting_agency.strip()
        if not re.fullmatch(r"[A-Za-z0-9]+", agency):
            raise ValueError(f"contracting agency id must be letters and digits, got {contracting_agency!r}")
        terms.append(f"CONTRACTING_AGENCY_ID:{agency}")
    if contract_type:
        kind = contract_type.strip().upper()
        if kind not in ("AWARD", "IDV"):
            raise ValueError(f"contract type must be AWARD or IDV, got {contract_type!r}")
        terms.append(f'CONTRACT_TYPE:"{kind}"')
        if award_type is not None:
            if award_type not in AWARD_TYPES[kind]:
                raise ValueError(f"award type for {kind} must be one of {', '.join(AWARD_TYPES[kind])}, got {award_type!r}")
            terms.append(f'AWARD_TYPE:"{award_type}"')
    elif award_type is not None:
        raise ValueError("an award type needs a contract type")
    if extra.strip():
        terms.append(_one_line(extra))
    return " ".join(terms)


def page_url(base_url: str, query: str, start: int = 0, *, feed: str = "PUBLIC", template: str = "1.5.3") -> str:
    """URL of one feed page: ``base_url`` like ``https://www.fpds.gov/ezsearch/FEEDS/ATOM``,
    ``feed`` PUBLIC or DELETED, ``start`` a multiple of 10."""
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    return (
        f"{base_url}?FEEDNAME={quote_plus(feed)}&templateName={quote_plus(template)}"
        f"&q={quote_plus(query, safe='')}&start={int(start)}"
    )
