"""USAspending.gov API v2: bulk downloads of contract transactions, and agencies.

A download is asynchronous: POST ``/api/v2/bulk_download/awards/`` with the
filters, poll ``/api/v2/download/status/`` until the job is ``finished``
(unknown states count as still running), then stream the ZIP from its
``file_url``. The ZIP is landed on disk and loaded by the file source.

What this relies on upstream (fedspendingtransparency/usaspending-api):

- an identical request returns the cached job of the day (download/v2/base_download_viewset.py,
  ``_get_cached_download``), and the status view reads a replica that may not know a new job yet
  (download/v2/download_status.py): a 404 before the first answered poll is retried in place, briefly;
- a finished status names ``total_rows`` (api_contracts/contracts/v2/bulk_download/status.md,
  counted with csv.reader in common/csv_helpers.py): the landed CSVs must hold exactly that many rows;
- a date range is refused when ``(end - start).days > 366`` (download/v2/request_validations.py,
  download/helpers/request_validations_helpers.py ``get_date_range_length``);
- ``last_modified_date`` is a timestamp and the end date is applied as ``<= end 00:00``
  (awards/v2/filters/filter_helpers.py ``date_list_to_queryset``), so the end day itself is
  excluded: a window by last-modified date asks for one day more than it covers;
- agency names are exact-match filters on the names loaded from the broker's
  dataactvalidator/config/agency_codes.csv (SUBTIER NAME, AGENCY NAME).
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from awardwatch.flows.sources.base import BACKFILL, NIGHTLY, Feed, Landed, Scope, Window
from awardwatch.flows.sources.http import Http, HttpError, PermanentHttpError
from awardwatch.schemas.agencies import Agency
from awardwatch.schemas.errors import InputError, PermanentError

DEFAULT_URL = "https://api.usaspending.gov"
MAX_SPAN = 366  # upstream refuses (end - start).days > 366 (request_validations.py)
# Waits between status polls that answer 404 before the job was ever seen (replica lag), ~60 s in all.
LAG_WAITS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 15.0, 20.0)
CONTRACT_TYPES = ("A", "B", "C", "D")
IDV_TYPES = ("IDV_A", "IDV_B", "IDV_B_A", "IDV_B_B", "IDV_B_C", "IDV_C", "IDV_D", "IDV_E")


class DownloadMismatch(InputError, PermanentError):
    """A landed download that does not hold the rows its status announced (re-fetched by the next run)."""


class EmptyDownload(InputError, PermanentError):
    """A download of a named agency with no row where the previous window of the same scope had rows."""


def scope(chosen: list[Agency]) -> str:
    """The watermark scope of a set of agencies, e.g. ``awarding:CBP,ICE``."""
    return "awarding:" + ",".join(sorted(a.abbreviation for a in chosen))


def request_range(start: date, end: date, date_type: str) -> tuple[date, date]:
    """The dates to ask for so that the download covers the days start..end inclusive: by
    ``last_modified_date`` (a timestamp upstream filters with ``<= end 00:00``) the end is a day later."""
    return start, end + timedelta(days=1) if date_type == "last_modified_date" else end


def windows(start: date, end: date, days: int | None = None, *, date_type: str = "last_modified_date") -> list[tuple[date, date]]:
    """Inclusive ranges covering start..end, each one request upstream accepts (by default the
    longest: 366 days by last-modified date, whose request ends a day later; 367 by action date)."""
    days = days or MAX_SPAN + 1 - (date_type == "last_modified_date")
    if end < start:
        raise InputError(f"end {end} is before start {start}")
    found = []
    while start <= end:
        stop = min(start + timedelta(days=days - 1), end)
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
        """Asks for the days start..end inclusive (see ``request_range``)."""
        first, last = request_range(start, end, date_type)
        if (last - first).days > MAX_SPAN:
            raise InputError(f"a download by {date_type} spans at most {MAX_SPAN} days from start to end date "
                             f"(upstream refuses (end - start).days > {MAX_SPAN}); {first}..{last} is longer: split it with windows()")
        body = {
            "filters": {
                "prime_award_types": [*CONTRACT_TYPES, *IDV_TYPES],
                "date_type": date_type,
                "date_range": {"start_date": first.isoformat(), "end_date": last.isoformat()},
                "agencies": [a.as_filter() for a in chosen],
            },
            "file_format": "csv",
        }
        job = self.http.json("POST", "/api/v2/bulk_download/awards/", json=body)
        if not job.get("file_name"):
            raise HttpError(f"USAspending answered a download request without a file_name: {str(job)[:200]}")
        return job

    def wait(self, job: dict) -> dict:
        """Polls until finished; a failed job or the time limit is an error naming the job. A 404 before
        the job was first seen is replica lag: polled again after ``LAG_WAITS``, in place."""
        deadline = self.clock() + self.poll_timeout
        name = job["file_name"]
        lag = iter(LAG_WAITS)
        seen = False
        while True:
            try:
                status = self.http.json("GET", "/api/v2/download/status/", params={"file_name": name})
            except PermanentHttpError as exc:
                if exc.status != 404 or seen:
                    raise
                pause = next(lag, None)
                if pause is None:
                    raise PermanentHttpError(f"USAspending download job {name}: the status still answers 404 (job not found) "
                                             f"{sum(LAG_WAITS):.0f} s after the request; retry later", 404) from None
                self.sleep(pause)
                continue
            seen = True
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
        path = self.http.download(url, into / job["file_name"])
        check_total_rows(path, status)
        return path


def check_total_rows(path: Path, status: dict) -> int:
    """The data rows of the landed ZIP's CSVs must equal the status's ``total_rows``; if not, the ZIP
    is removed (nothing of it is loaded) and the error names both numbers."""
    expected = status.get("total_rows")
    if not isinstance(expected, int) or isinstance(expected, bool):
        path.unlink(missing_ok=True)
        raise DownloadMismatch(f"USAspending download job {status.get('file_name') or path.name} finished without a total_rows "
                               f"(got {expected!r}); cannot check the download is whole; retry later")
    found = zip_rows(path)
    if found != expected:
        path.unlink(missing_ok=True)
        raise DownloadMismatch(f"{path.name}: the landed CSVs hold {found:,} data rows but the download status announced "
                               f"total_rows {expected:,}; nothing of it was loaded; the next run fetches it again")
    return found


def _members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith(".csv")]


def zip_rows(path: Path) -> int:
    """Data rows (CSV records less one header per member) of the CSV members of a ZIP, as upstream
    counts them with csv.reader: a newline inside a quoted field does not end a record. Streams in
    4 MiB chunks; quotes are found by ``bytes.split`` (``""`` escapes toggle twice)."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for member in _members(zf):
                with zf.open(member) as f:
                    total += max(_records(f) - 1, 0)
            return total
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path.name}: not a readable ZIP file ({exc}); download it again") from None


def _records(f) -> int:
    inside, records, last = False, 0, b"\n"
    while chunk := f.read(4 << 20):
        parts = chunk.split(b'"')
        records += b"".join(parts[1 if inside else 0 :: 2]).count(b"\n")
        inside ^= len(parts) % 2 == 0  # an odd number of quotes in the chunk
        last = chunk[-1:]
    return records + (last != b"\n")  # a last record without a line end


def has_rows(path: Path) -> bool:
    """Does any CSV member of the ZIP hold a line after its header? (Reads the start of each member.)"""
    with zipfile.ZipFile(path) as zf:
        for member in _members(zf):
            with zf.open(member) as f:
                head = f.read(1 << 20)
            _, _, rest = head.partition(b"\n")
            if rest.strip():
                return True
    return False


def nightly_windows(watermark: datetime | None, today: date, lookback_days: int) -> list[Window]:
    """From the watermark (or today) less the look-back to today, in the longest windows upstream accepts by
    last-modified date (the FPDS feed reads the same windows)."""
    start = (watermark.date() if watermark else today) - timedelta(days=lookback_days)
    return [Window(a, b) for a, b in windows(start, today)]


class BulkDownloads(Feed):
    """The feed: one bulk download per window, by action date in a backfill (a month per chunk) and by
    last-modified date at night (the longest window upstream accepts, from the watermark less the look-back)."""

    name = "usaspending"

    def scopes(self, chosen: list[Agency]) -> list[Scope]:
        return [Scope(scope(chosen), tuple(chosen))]

    def nightly_windows(self, scope: Scope, watermark: datetime | None, today: date) -> list[Window]:
        return nightly_windows(watermark, today, self.settings.lookback_days)

    def land(self, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
        date_type = "action_date" if mode == BACKFILL else "last_modified_date"
        http = Http.of(self.settings, self.settings.usaspending_url)
        try:
            job = BulkDownload(http, poll_every=self.settings.poll_every, poll_timeout=self.settings.poll_timeout)
            path = job.fetch(list(scope.agencies), window.start, window.end, into, date_type=date_type)
        finally:
            http.close()
        return Landed([path], window.end if mode == NIGHTLY else None, [path.name])

    def check(self, con, scope: Scope, window: Window, landed: Landed, mode: str) -> None:
        """A download of named agencies with no row, where the previous window of the same scope had rows,
        is an error (agency names are exact-match filters: a name that stopped matching gives 0 rows, not
        an error): nothing is loaded, the chunk is not done, the watermark does not move."""
        from awardwatch.warehouse import feeds

        for path in landed.paths:
            if self.settings.allow_empty or (landed.rows if landed.rows is not None else has_rows(path)):
                continue
            before = feeds.previous_window(con, self.name, scope.name, window.start, by_action_date=mode == BACKFILL)
            if before and before[2] > 0:
                raise EmptyDownload(
                    f"USAspending download {path.name} for {scope.name} {window} holds 0 rows, but the previous window "
                    f"{before[0] or '(nightly)'} (run {before[1]}) had {before[2]:,}; an agency name that no longer matches "
                    "exactly gives 0 rows: check the names in schemas/agencies.py AGENCIES against the broker's "
                    "agency_codes.csv; nothing was loaded (AWARDWATCH_ALLOW_EMPTY=true accepts it for a quiet agency)")
