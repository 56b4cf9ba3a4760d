"""The agencies awardwatch knows: one registry, used by every feed, report and check.

A person names an agency by abbreviation (ICE), code (7012 subtier, 070 toptier) or full name, in any case
and punctuation, with or without "U.S." ("immigration and customs enforcement"); an unknown name is an error
suggesting the closest known agencies. The API filters take the exact names (``Agency.as_filter``), reports
a code (``AgencyRef``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from awardwatch.schemas.errors import InputError


DHS = "Department of Homeland Security"


DOJ = "Department of Justice"


GSA = "General Services Administration"


@dataclass(frozen=True)
class Agency:
    """An agency filter as the API takes it: matched by name, exactly, not by code."""

    abbreviation: str
    code: str  # toptier CGAC code or subtier code
    name: str
    tier: str  # toptier | subtier
    toptier_name: str | None = None

    def as_filter(self, kind: str = "awarding") -> dict:
        f = {"type": kind, "tier": self.tier, "name": self.name}
        if self.toptier_name:
            f["toptier_name"] = self.toptier_name
        return f


# Names exactly as SUBTIER NAME / AGENCY NAME of the broker's dataactvalidator/config/agency_codes.csv
# (USAspending loads its agency names from it; tests/flows/sources/test_usaspending_upstream.py checks each one).
AGENCIES = {
    a.abbreviation: a
    for a in (
        Agency("DHS", "070", DHS, "toptier"),
        Agency("ICE", "7012", "U.S. Immigration and Customs Enforcement", "subtier", DHS),
        Agency("CBP", "7014", "U.S. Customs and Border Protection", "subtier", DHS),
        Agency("USCIS", "7003", "U.S. Citizenship and Immigration Services", "subtier", DHS),
        Agency("TSA", "7013", "Transportation Security Administration", "subtier", DHS),
        Agency("FEMA", "7022", "Federal Emergency Management Agency", "subtier", DHS),
        Agency("USCG", "7008", "U.S. Coast Guard", "subtier", DHS),
        Agency("USSS", "7009", "U.S. Secret Service", "subtier", DHS),
        Agency("OPO", "7001", "Office of Procurement Operations", "subtier", DHS),
        Agency("CISA", "7061", "Cybersecurity and Infrastructure Security Agency", "subtier", DHS),
        Agency("FLETC", "7015", "Federal Law Enforcement Training Center", "subtier", DHS),
        Agency("DOJ", "015", DOJ, "toptier"),
        Agency("BOP", "1540", "Federal Prison System / Bureau of Prisons", "subtier", DOJ),
        Agency("FBI", "1549", "Federal Bureau of Investigation", "subtier", DOJ),
        Agency("DEA", "1524", "Drug Enforcement Administration", "subtier", DOJ),
        Agency("USMS", "1544", "U.S. Marshals Service", "subtier", DOJ),
        Agency("ATF", "1560", "Bureau of Alcohol, Tobacco, Firearms and Explosives Acquisition and Property Management Division",
               "subtier", DOJ),
        Agency("GSA", "047", GSA, "toptier"),
        Agency("FAS", "4732", "Federal Acquisition Service", "subtier", GSA),
        Agency("PBS", "4740", "Public Buildings Service", "subtier", GSA),
    )
}


def _key(text: str) -> str:
    """A name as it is compared: lower case, words only, "&" as "and", without a leading "the" or "U.S."."""
    words = re.sub(r"[^0-9a-z]+", " ", text.lower().replace("&", " and ")).split()
    for prefix in (["the"], ["u", "s"], ["us"], ["united", "states"]):
        if words[:len(prefix)] == prefix:
            words = words[len(prefix):]
    return " ".join(words)


BY_CODE = {a.code: a for a in AGENCIES.values()}
BY_NAME = {_key(a.name): a for a in AGENCIES.values()}


def find(text: str) -> Agency | None:
    """The agency of an abbreviation, code or full name (any case and punctuation, with or without "U.S.")."""
    value = (text or "").strip()
    return AGENCIES.get(value.upper()) or BY_CODE.get(value.upper()) or BY_NAME.get(_key(value))


def suggestions(text: str, n: int = 3) -> list[Agency]:
    """The known agencies closest to ``text``, closest first: names holding it as whole words ("customs"), then
    difflib over names and, for a short word (a mistyped abbreviation), over abbreviations."""
    key = _key(text)
    within = [a for k, a in BY_NAME.items() if len(key) > 3 and f" {key} " in f" {k} "]
    short = len(key) <= 6 and " " not in key
    pool = BY_NAME | ({a.abbreviation.lower(): a for a in AGENCIES.values()} if short else {})
    close = [pool[c] for c in difflib.get_close_matches(key, list(pool), n=n)]
    return list(dict.fromkeys(within + close))[:n]


def _unknown(text: str, otherwise: str) -> InputError:
    """One line: the closest known agencies if any are close, else ``otherwise`` (what is accepted)."""
    if close := suggestions(text):
        named = " or ".join(f"{a.abbreviation} ({a.name})" for a in close)
        return InputError(f"unknown agency {text!r}; did you mean {named}?")
    return InputError(f"unknown agency {text!r}; {otherwise}")


def resolve(names: list[str] | None) -> list[Agency]:
    """Agencies by abbreviation, code or full name (default: all of DHS)."""
    chosen = []
    for name in names or ["DHS"]:
        agency = find(name)
        if agency is None:
            raise _unknown(name, f"known: {', '.join(AGENCIES)} (or their codes or full names)")
        chosen.append(agency)
    return chosen


def toptier_codes(chosen: list[Agency]) -> list[str]:
    """CGAC codes of the departments of the chosen agencies (archive files are per department)."""
    by_name = {a.name: a.code for a in AGENCIES.values() if a.tier == "toptier"}
    return sorted({a.code if a.tier == "toptier" else by_name[a.toptier_name] for a in chosen})


@dataclass(frozen=True)
class AgencyRef:
    """An awarding agency filter: a toptier (``awarding_agency_code``) or subtier (``awarding_sub_agency_code``) code."""

    code: str
    tier: str  # toptier | subtier
    label: str  # abbreviation or code

    @property
    def column(self) -> str:
        return "awarding_agency_code" if self.tier == "toptier" else "awarding_sub_agency_code"


def agency_ref(text: str) -> AgencyRef:
    """ICE, cbp, 7012, 070, "Immigration and Customs Enforcement" -> the agency filter; any other 3-digit
    (toptier) or 4-character (subtier) code as given; else an error suggesting the closest known agencies."""
    value = (text or "").strip()
    known = find(value)
    if known is not None:
        return AgencyRef(known.code, known.tier, known.abbreviation)
    if re.fullmatch(r"\d{3}", value):
        return AgencyRef(value, "toptier", value)
    if re.fullmatch(r"[0-9A-Za-z]{4}", value) and any(c.isdigit() for c in value):
        return AgencyRef(value.upper(), "subtier", value.upper())
    raise _unknown(text, f"use an abbreviation ({', '.join(AGENCIES)}), a full name, "
                         "a toptier code like 070 or a subtier code like 7012")


ABBREVIATIONS = {a.code: a.abbreviation for a in AGENCIES.values() if a.tier == "subtier"}
