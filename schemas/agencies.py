"""The agencies awardwatch knows by abbreviation: one registry, used by every feed, report and check.

An agency is named by abbreviation (ICE), by code (7012 subtier, 070 toptier), as USAspending's API
filters take them (exact names), or as a report filter (``AgencyRef``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.errors import InputError


DHS = "Department of Homeland Security"


DOJ = "Department of Justice"


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
    )
}


def resolve(names: list[str] | None) -> list[Agency]:
    """Agencies by abbreviation or code (default: all of DHS)."""
    by_code = {a.code: a for a in AGENCIES.values()}
    chosen = []
    for name in names or ["DHS"]:
        agency = AGENCIES.get(name.strip().upper()) or by_code.get(name.strip())
        if agency is None:
            raise InputError(f"unknown agency {name!r}; known: {', '.join(AGENCIES)} (or their codes)")
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
    """ICE, cbp, 7012, 070 -> the agency filter; unknown abbreviations are an error naming the known ones."""
    value = (text or "").strip()
    known = AGENCIES.get(value.upper())
    if known is None:
        known = next((a for a in AGENCIES.values() if a.code == value.upper()), None)
    if known is not None:
        return AgencyRef(known.code, known.tier, known.abbreviation)
    if re.fullmatch(r"\d{3}", value):
        return AgencyRef(value, "toptier", value)
    if re.fullmatch(r"[0-9A-Za-z]{4}", value) and any(c.isdigit() for c in value):
        return AgencyRef(value.upper(), "subtier", value.upper())
    raise InputError(f"unknown agency {text!r}; use an abbreviation ({', '.join(AGENCIES)}), "
                     "a toptier code like 070 or a subtier code like 7012")


ABBREVIATIONS = {a.code: a.abbreviation for a in AGENCIES.values() if a.tier == "subtier"}
