"""USAspending Award Data Archive: monthly Full (per agency and fiscal year) and Delta files.

Listing: POST ``/api/v2/bulk_download/list_monthly_files/`` with the toptier
agency's internal id (from ``/api/v2/references/toptier_agencies/``). File names
carry their generation date: ``FY2018_070_Contracts_Full_20240708.zip``,
``FY(All)_070_Contracts_Delta_20240708.zip``. Delta files start with
``correction_delete_ind`` (blank new, C correction, D deletion) and ``agency_id``;
the file source applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from flows.sources.http import Http, HttpError
from schemas.errors import InputError

NAME = re.compile(r"FY(?P<fy>\d{4}|\(All\))_(?P<agency>[0-9A-Z]{3,4}|All)_Contracts_(?P<kind>Full|Delta)_(?P<stamp>\d{8})\.zip$")


@dataclass(frozen=True)
class ArchiveFile:
    name: str
    url: str
    kind: str  # Full | Delta
    fiscal_year: int | None
    generated: date


def parse_name(name: str, url: str) -> ArchiveFile | None:
    m = NAME.search(name)
    if not m:
        return None
    fy = None if m["fy"] == "(All)" else int(m["fy"])
    return ArchiveFile(name, url, m["kind"], fy, datetime.strptime(m["stamp"], "%Y%m%d").date())


def agency_id(http: Http, toptier_code: str) -> int:
    """USAspending's internal id of a toptier agency (what list_monthly_files wants)."""
    for agency in http.json("GET", "/api/v2/references/toptier_agencies/").get("results", []):
        if agency.get("toptier_code") == toptier_code:
            return agency["agency_id"]
    raise InputError(f"USAspending lists no toptier agency with code {toptier_code!r}")


def listing(http: Http, toptier_code: str, fiscal_year: int) -> list[ArchiveFile]:
    body = {"agency": agency_id(http, toptier_code), "fiscal_year": fiscal_year, "type": "contracts"}
    entries = http.json("POST", "/api/v2/bulk_download/list_monthly_files/", json=body).get("monthly_files")
    if entries is None:
        raise HttpError("USAspending list_monthly_files answered without monthly_files")
    found = [parse_name(e.get("file_name", ""), e.get("url", "")) for e in entries]
    return sorted((f for f in found if f), key=lambda f: (f.generated, f.name))


def full_file(files: list[ArchiveFile], fiscal_year: int) -> ArchiveFile | None:
    """The newest Full file of a fiscal year."""
    fulls = [f for f in files if f.kind == "Full" and f.fiscal_year == fiscal_year]
    return fulls[-1] if fulls else None


def deltas_after(files: list[ArchiveFile], after: date | None) -> list[ArchiveFile]:
    """Delta files generated after a date, oldest first (they must be applied in order)."""
    return [f for f in files if f.kind == "Delta" and (after is None or f.generated > after)]


def land(http: Http, files: list[ArchiveFile], into: Path) -> list[Path]:
    return [http.download(f.url, into / f.name) for f in files]
