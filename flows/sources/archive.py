"""USAspending Award Data Archive: monthly Full (per agency and fiscal year) and Delta files.

Listing: POST ``/api/v2/bulk_download/list_monthly_files/`` with the department's
``toptier_agency_id``: upstream looks it up with ``ToptierAgency.objects.filter(toptier_agency_id=...)``
(usaspending_api/download/v2/list_monthly_downloads.py), and that id is what
``POST /api/v2/bulk_download/list_agencies/`` answers (api_contracts/contracts/v2/bulk_download/list_agencies.md,
download/v2/download_list_agencies.py), not the ``agency_id`` of ``/api/v2/references/toptier_agencies/``
(the id of another table). A listed file whose name carries another agency code is refused.
File names carry their generation date: ``FY2018_070_Contracts_Full_20240708.zip``,
``FY(All)_070_Contracts_Delta_20240708.zip``. Delta files start with
``correction_delete_ind`` (blank new or modified, C correction, D deletion) and ``agency_id``;
the file source applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from awardwatch.flows.sources.base import BACKFILL, Feed, Landed, Scope, Window, fiscal_year
from awardwatch.flows.sources.http import Http, HttpError
from awardwatch.schemas.agencies import Agency, toptier_codes
from awardwatch.schemas.errors import InputError

NAME = re.compile(r"FY(?P<fy>\d{4}|\(All\))_(?P<agency>[0-9A-Z]{3,4}|All)_Contracts_(?P<kind>Full|Delta)_(?P<stamp>\d{8})\.zip$")


@dataclass(frozen=True)
class ArchiveFile:
    name: str
    url: str
    kind: str  # Full | Delta
    fiscal_year: int | None
    generated: date
    agency: str = ""  # the toptier code in the name (``All`` for all agencies)


def parse_name(name: str, url: str) -> ArchiveFile | None:
    m = NAME.search(name)
    if not m:
        return None
    fy = None if m["fy"] == "(All)" else int(m["fy"])
    return ArchiveFile(name, url, m["kind"], fy, datetime.strptime(m["stamp"], "%Y%m%d").date(), m["agency"])


def toptier_agency_id(http: Http, toptier_code: str) -> int:
    """The ``toptier_agency_id`` of a department, from ``list_agencies`` (``award_agencies``:
    ``{"agencies": {"cfo_agencies": [...], "other_agencies": [...]}, "sub_agencies": []}``)."""
    answer = http.json("POST", "/api/v2/bulk_download/list_agencies/", json={"type": "award_agencies"})
    groups = answer.get("agencies") if isinstance(answer, dict) else None
    if not isinstance(groups, dict):
        raise HttpError(f"USAspending list_agencies answered without agencies: {str(answer)[:200]}")
    for agency in [*(groups.get("cfo_agencies") or []), *(groups.get("other_agencies") or [])]:
        if isinstance(agency, dict) and agency.get("toptier_code") == toptier_code and agency.get("toptier_agency_id") is not None:
            return agency["toptier_agency_id"]
    raise InputError(f"USAspending list_agencies (award_agencies) names no toptier agency with code {toptier_code!r}")


def listing(http: Http, toptier_code: str, fiscal_year: int) -> list[ArchiveFile]:
    """The Full files of a fiscal year and the Delta files of a department, oldest first."""
    agency = toptier_agency_id(http, toptier_code)
    body = {"agency": agency, "fiscal_year": fiscal_year, "type": "contracts"}
    entries = http.json("POST", "/api/v2/bulk_download/list_monthly_files/", json=body).get("monthly_files")
    if entries is None:
        raise HttpError("USAspending list_monthly_files answered without monthly_files")
    found = [f for f in (parse_name(e.get("file_name", ""), e.get("url", "")) for e in entries) if f]
    if wrong := [f.name for f in found if f.agency != toptier_code]:
        raise InputError(f"USAspending list_monthly_files for agency {toptier_code} (toptier_agency_id {agency}) listed "
                         f"{', '.join(wrong[:3])}, not files of agency {toptier_code}; refusing them (is the agency id right?)")
    return sorted(found, key=lambda f: (f.generated, f.name))


def full_file(files: list[ArchiveFile], fiscal_year: int) -> ArchiveFile | None:
    """The newest Full file of a fiscal year."""
    fulls = [f for f in files if f.kind == "Full" and f.fiscal_year == fiscal_year]
    return fulls[-1] if fulls else None


def deltas_after(files: list[ArchiveFile], after: date | None) -> list[ArchiveFile]:
    """Delta files generated after a date, oldest first (they must be applied in order)."""
    return [f for f in files if f.kind == "Delta" and (after is None or f.generated > after)]


def land(http: Http, files: list[ArchiveFile], into: Path) -> list[Path]:
    return [http.download(f.url, into / f.name) for f in files]


class ArchiveFiles(Feed):
    """The feed: a backfill lands each fiscal year's newest Full file (its generation date becomes the
    department's watermark); a nightly run lands the Delta files generated after the watermark, in order."""

    name = "archive"
    chunk = "fiscal_year"

    def scopes(self, chosen: list[Agency]) -> list[Scope]:
        return [Scope(f"archive:{code}", tuple(chosen), code) for code in toptier_codes(chosen)]

    def backfill_windows(self, start: date, end: date) -> list[Window]:
        return [Window(date(fy - 1, 10, 1), date(fy, 9, 30)) for fy in range(fiscal_year(start), fiscal_year(end) + 1)]

    def nightly_windows(self, scope: Scope, watermark: datetime | None, today: date) -> list[Window] | str:
        if watermark is None:
            return "no Full file loaded yet: run `awardwatch backfill --source archive` first"
        return [Window(watermark.date(), today)]

    def land(self, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
        http = Http.of(self.settings, self.settings.usaspending_url)
        try:
            if mode == BACKFILL:
                found = full_file(listing(http, scope.toptier, window.end.year), window.end.year)
                files = [found] if found else []
            else:
                files = deltas_after(listing(http, scope.toptier, fiscal_year(window.end)), window.start)
            return Landed(land(http, files, into), files[-1].generated if files else None, [f.name for f in files])
        finally:
            http.close()
