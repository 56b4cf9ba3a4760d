"""USAspending.gov API v2: bulk downloads of contract transactions, and agencies.

A download is asynchronous: POST ``/api/v2/bulk_download/awards/`` with the
filters, poll ``/api/v2/download/status/`` until the job is ``finished``
(unknown states count as still running), then stream the ZIP from its
``file_url``. A date range may span at most 366 days, so longer ranges are
split. The ZIP is landed on disk and loaded by the file source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from flows.sources.http import Http, HttpError
from schemas.errors import InputError

DEFAULT_URL = "https://api.usaspending.gov"
MAX_DAYS = 366
CONTRACT_TYPES = ("A", "B", "C", "D")
IDV_TYPES = ("IDV_A", "IDV_B", "IDV_B_A", "IDV_B_B", "IDV_B_C", "IDV_C", "IDV_D", "IDV_E")
DHS = "Department of Homeland Security"
DOJ = "Department of Justice"


@dataclass(frozen=True)
class Agency:
    """An agency filter as the API takes it: matched by name, not by code."""

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
        Agency("ATF", "1560", "Bureau of Alcohol, Tobacco, Firearms and Explosives", "subtier", DOJ),
    )
}


def agencies(names: list[str] | None) -> list[Agency]:
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


def scope(chosen: list[Agency]) -> str:
    """The watermark scope of a set of agencies, e.g. ``awarding:CBP,ICE``."""
    return "awarding:" + ",".join(sorted(a.abbreviation for a in chosen))


def windows(start: date, end: date, days: int = MAX_DAYS) -> list[tuple[date, date]]:
    """Inclusive ranges covering start..end, none longer than ``days`` days."""
    if end < start:
        raise InputError(f"end {end} is before start {start}")
    found = []
    while start <= end:
        stop = min(start + timedelta(days=days - 1), end)
        found.append((start, stop))
        start = stop + timedelta(days=1)
    return found


def months(start: date, end: date) -> list[tuple[date, date]]:
    """Calendar-month chunks covering start..end (the first and last may be partial)."""
    found = []
    while start <= end:
        next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
        stop = min(next_month - timedelta(days=1), end)
        found.append((start, stop))
        start = stop + timedelta(days=1)
    return found


@dataclass
class BulkDownload:
    """One bulk download job of contract and IDV transactions."""

    http: Http
    poll_every: float = 10.0
    poll_timeout: float = 4 * 3600
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    on_status: Callable[[str], None] = field(default=lambda status: None)

    def request(self, chosen: list[Agency], start: date, end: date, date_type: str) -> dict:
        if (end - start).days + 1 > MAX_DAYS:
            raise InputError(f"a download covers at most {MAX_DAYS} days; {start}..{end} is longer")
        body = {
            "filters": {
                "prime_award_types": [*CONTRACT_TYPES, *IDV_TYPES],
                "date_type": date_type,
                "date_range": {"start_date": start.isoformat(), "end_date": end.isoformat()},
                "agencies": [a.as_filter() for a in chosen],
            },
            "file_format": "csv",
        }
        job = self.http.json("POST", "/api/v2/bulk_download/awards/", json=body)
        if not job.get("file_name"):
            raise HttpError(f"USAspending answered a download request without a file_name: {str(job)[:200]}")
        return job

    def wait(self, job: dict) -> dict:
        """Polls until finished; a failed job or the time limit is an error naming the job."""
        deadline = self.clock() + self.poll_timeout
        name = job["file_name"]
        while True:
            status = self.http.json("GET", "/api/v2/download/status/", params={"file_name": name})
            state = str(status.get("status", "")).lower()
            self.on_status(state)
            if state == "finished":
                return status
            if state == "failed":
                raise HttpError(f"USAspending download job {name} failed: {status.get('message') or 'no message'}; retry later or narrow the dates")
            if self.clock() > deadline:
                raise HttpError(f"USAspending download job {name} still {state or 'unknown'} after {self.poll_timeout:.0f} s; retry later")
            self.sleep(self.poll_every)

    def fetch(self, chosen: list[Agency], start: date, end: date, into: Path, *, date_type: str = "last_modified_date") -> Path:
        """Requests, waits for and lands one download; returns the ZIP's path."""
        job = self.request(chosen, start, end, date_type)
        status = self.wait(job)
        url = status.get("file_url") or job.get("file_url")
        if not url:
            raise HttpError(f"USAspending download job {job['file_name']} finished without a file_url")
        return self.http.download(url, into / job["file_name"])
