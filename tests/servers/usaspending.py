"""A local stand-in for the USAspending API v2 endpoints awardwatch uses (tests only).

Follows /work/shared/reference/award-sources.md section 1: bulk award downloads
(request -> poll status -> fetch ZIP), the Award Data Archive listing and files,
and the agency lists. Stdlib only; binds 127.0.0.1 on an ephemeral port.

Upstream facts it reproduces (fedspendingtransparency/usaspending-api):

- an identical request (same normalised download_request, no data loaded since) returns the cached,
  not failed, job (download/v2/base_download_viewset.py ``_get_cached_download``); ``data_loaded()``
  (or any change in the number of ``transactions``) clears the cache, as a new load date does upstream;
- the status view reads a replica (download/v2/download_status.py): the first ``lagging_polls``
  polls of a new job answer 404 "Download job with filename ... does not exist.";
- a finished status carries ``total_rows`` (api_contracts/contracts/v2/bulk_download/status.md);
- ``last_modified_date`` is a timestamp filtered ``>= start 00:00`` and ``<= end 00:00``, so the end
  day is excluded; ``action_date`` is a date, both ends inclusive (awards/v2/filters/filter_helpers.py);
- ``list_agencies`` answers ``toptier_agency_id`` (download/v2/download_list_agencies.py), the id that
  ``list_monthly_files`` takes (download/v2/list_monthly_downloads.py), which lists the Full files named
  ``FY{fy}_{code}_Contracts_Full_*.zip`` and the Delta files ``FY(All)_{code}_Contracts_Delta_*.zip``;
- deletion rows of Delta files carry a date-only ``last_modified_date`` and are appended at the end
  (download/management/commands/populate_monthly_delta_files.py ``organize_deletion_columns``): ``deletion_row``.

    with FakeUSAspending([row(...), ...], polls_until_finished=3) as api:
        client = Client(base_url=api.url)
        api.fail_next("/api/v2/bulk_download/awards/", 429, retry_after=1)
        ...

Deliberate simplifications: requested ``columns`` and ``file_format`` are echoed,
not applied (CSV with the constructor columns is always served); assistance award
types are accepted but match no row; only the filters listed in
``validate_bulk_request`` are applied.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from awardwatch.schemas.layouts import current_columns

CONTRACT_CODES = ("A", "B", "C", "D")
IDV_CODES = ("IDV_A", "IDV_B", "IDV_B_A", "IDV_B_B", "IDV_B_C", "IDV_C", "IDV_D", "IDV_E")
# Valid for the real endpoint (see the sample request); no row served here is assistance.
ASSISTANCE_CODES = ("02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "-1")
DATE_TYPES = ("action_date", "last_modified_date")
MAX_RANGE_DAYS = 366  # real check: (end - start).days > 366 -> 400
DELTA_COLUMNS = ("correction_delete_ind", "agency_id")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# download/lookups.py CFO_CGACS (the order list_agencies shows the CFO agencies in), first ones
CFO_ORDER = ("012", "013", "097", "091", "089", "075", "070", "086", "015", "1601", "019", "014", "020", "069", "036")

# agency_id: the id /references/toptier_agencies/ answers (of the Agency table); toptier_agency_id: the
# ToptierAgency id of list_agencies and list_monthly_files. Both made up here, and deliberately different.
TOPTIER_AGENCIES = [
    {
        "agency_id": 562,
        "toptier_agency_id": 63,
        "toptier_code": "070",
        "abbreviation": "DHS",
        "agency_name": "Department of Homeland Security",
        "agency_slug": "department-of-homeland-security",
    },
    {
        "agency_id": 17,
        "toptier_agency_id": 20,
        "toptier_code": "015",
        "abbreviation": "DOJ",
        "agency_name": "Department of Justice",
        "agency_slug": "department-of-justice",
    },
]


# --------------------------------------------------------------------------- CSV / ZIP


def csv_bytes(columns: list[str], rows: list[dict]) -> bytes:
    """One CSV file: header then rows (missing values empty), minimal RFC 4180 quoting, '\\n' line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row.get(c) is None else str(row.get(c)) for c in columns)
    return buf.getvalue().encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A deflated ZIP holding the given members in order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def deletion_row(key: str, day: str) -> dict[str, str]:
    """A Delta file's deletion record as upstream writes it: ``D``, the key split into its parts
    (``-NONE-`` parts blank), the whole key, and the date-only ``last_modified_date`` of the
    deletion journal file; every other column blank (populate_monthly_delta_files.py)."""
    key = key.upper()
    parts = ["" if p == "-NONE-" else p for p in key.split("_")]
    names = ("agency_id", "parent_award_agency_id", "award_id_piid", "modification_number", "parent_award_id_piid", "transaction_number")
    return {"correction_delete_ind": "D", **dict(zip(names, parts)), "contract_transaction_unique_key": key, "last_modified_date": day}


def write_archive_zip(
    rows: list[dict],
    *,
    delta: bool = False,
    columns: list[str] | None = None,
    member: str = "FY2018_070_Contracts_Full_20240708_1.csv",
) -> bytes:
    """An Award Data Archive ZIP: Full = the current columns; Delta = correction_delete_ind, agency_id + them."""
    cols = list(columns or current_columns())
    if delta:
        cols = [*DELTA_COLUMNS, *cols]
    return zip_bytes({member: csv_bytes(cols, rows)})


# --------------------------------------------------------------------------- requests / replies


class BadRequest(Exception):
    """Answered as HTTP 400 {"detail": ...}."""


@dataclass
class Request:
    method: str
    path: str  # without query
    query: dict[str, str]
    body: Any  # parsed JSON (None when absent)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode())


def error(status: int, detail: str) -> Reply:
    return json_reply(status, {"detail": detail})


# --------------------------------------------------------------------------- bulk download filters


def _date(value: Any, key: str) -> date:
    if not isinstance(value, str) or not DATE_RE.fullmatch(value):
        raise BadRequest(f"Invalid Parameter: {key} must be a date formatted YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"Invalid Parameter: {key} is not a valid date: {value!r}") from None


def _agency(item: Any) -> dict:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise BadRequest(f"Invalid Parameter: agencies entries need a name: {item!r}")
    if item.get("type") not in ("awarding", "funding"):
        raise BadRequest(f"Invalid Parameter: agency type must be 'awarding' or 'funding': {item!r}")
    if item.get("tier") not in ("toptier", "subtier"):
        raise BadRequest(f"Invalid Parameter: agency tier must be 'toptier' or 'subtier': {item!r}")
    return item


def validate_bulk_request(body: Any) -> tuple[dict, dict]:
    """Check a bulk_download/awards body; return (filters used to pick rows, normalised download_request)."""
    if not isinstance(body, dict) or not isinstance(body.get("filters"), dict):
        raise BadRequest("Missing one or more required body parameters: filters")
    f = body["filters"]
    agencies = f.get("agencies")
    if not isinstance(agencies, list) or not agencies:
        raise BadRequest("Missing one or more required body parameters: agencies")
    agencies = [_agency(a) for a in agencies]
    rng = f.get("date_range")
    if not isinstance(rng, dict):
        raise BadRequest("Missing one or more required body parameters: date_range")
    start, end = _date(rng.get("start_date"), "start_date"), _date(rng.get("end_date"), "end_date")
    if start > end:
        raise BadRequest(f"Invalid Parameter: start_date {start} is after end_date {end}")
    if (end - start).days > MAX_RANGE_DAYS:
        raise BadRequest(
            f"Invalid Parameter: date_range total days must be within a year (at most {MAX_RANGE_DAYS} days)"
        )
    date_type = f.get("date_type", "action_date")  # the real validator defaults it
    if date_type not in DATE_TYPES:
        raise BadRequest(f"Invalid Parameter: date_type must be one of {list(DATE_TYPES)}, got {date_type!r}")
    types = f.get("prime_award_types")
    if not isinstance(types, list) or not types:
        raise BadRequest("Missing one or more required body parameters: prime_award_types or sub_award_types")
    unknown = [t for t in types if t not in CONTRACT_CODES + IDV_CODES + ASSISTANCE_CODES]
    if unknown:
        raise BadRequest(f"Invalid Parameter: prime_award_types contains invalid award types {unknown}")
    named = [a for a in agencies if a["name"].lower() != "all"]  # the real API drops "All" entries
    time_period = {"date_type": date_type, "end_date": str(end), "start_date": str(start)}
    download_request = {
        "columns": body.get("columns") or [],
        "download_types": ["prime_awards"],
        "file_format": str(body.get("file_format", "csv")).lower(),
        "filters": {
            "agencies": named,
            "prime_and_sub_award_types": {"prime_awards": types, "sub_awards": f.get("sub_award_types") or []},
            "time_period": [time_period],
        },
        "request_type": "award",
    }
    filters = {"agencies": named, "date_type": date_type, "start": str(start), "end": str(end), "types": types}
    return filters, download_request


def _agency_matches(row: dict, agencies: list[dict]) -> bool:
    if not agencies:  # only "All" was asked for
        return True
    for a in agencies:
        prefix = a["type"]  # awarding | funding
        if a["tier"] == "toptier":
            if row.get(f"{prefix}_agency_name") == a["name"]:
                return True
        elif row.get(f"{prefix}_sub_agency_name") == a["name"] and (
            not a.get("toptier_name") or row.get(f"{prefix}_agency_name") == a["toptier_name"]
        ):
            return True
    return False


def _type_matches(row: dict, codes: list[str]) -> bool:
    for code in codes:
        if code in CONTRACT_CODES and row.get("award_type_code") == code:
            return True
        if (
            code in IDV_CODES
            and str(row.get("award_or_idv_flag", "")).upper() == "IDV"
            and row.get("idv_type_code") == code.split("_")[1]
        ):
            return True
    return False


def _in_range(value: str, start: str, end: str, date_type: str) -> bool:
    """action_date: a date, both ends inclusive. last_modified_date: a timestamp compared with the
    dates as midnight, ``start 00:00 <= value <= end 00:00`` (filter_helpers.py): the end day is out."""
    if date_type != "last_modified_date":
        return start <= value[:10] <= end
    stamp = value[:19] if len(value) > 10 else f"{value[:10]} 00:00:00"
    return f"{start} 00:00:00" <= stamp <= f"{end} 00:00:00"


def row_matches(row: dict, filters: dict) -> bool:
    """Date range (as upstream applies it to the date type), agency names, award type."""
    value = str(row.get(filters["date_type"]) or "")
    return (
        bool(value)
        and _in_range(value, filters["start"], filters["end"], filters["date_type"])
        and _agency_matches(row, filters["agencies"])
        and _type_matches(row, filters["types"])
    )


# --------------------------------------------------------------------------- jobs and faults


@dataclass
class Job:
    name: str
    filters: dict
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    status: str = "ready"
    message: str | None = None
    data: bytes | None = None  # the ZIP, once finished
    total_rows: int | None = None
    elapsed: float | None = None
    hidden: int = 0  # status polls still to answer 404 (the replica has not seen the job yet)
    cache_key: str = ""
    download_request: dict = field(default_factory=dict)


# Shown on polls 1, 2, 3 ... while a job runs; "queued" is an unlisted state clients must treat as running.
RUNNING_STATES = ("ready", "running", "queued")


@dataclass
class Fault:
    prefix: str
    times: int
    status: int | None = None  # an error reply ...
    hang: float | None = None  # ... or a delay before the normal reply
    retry_after: float | None = None
    body: bytes | None = None
    content_type: str = "application/json"

    def reply(self) -> Reply:
        headers = {}
        if self.retry_after is not None:
            ra = self.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        body = self.body if self.body is not None else b'{"detail": "injected"}'
        return Reply(self.status, body, self.content_type, headers)


# --------------------------------------------------------------------------- the server


# (method, path without trailing slash) -> handler method name
ROUTES = {
    ("POST", "/api/v2/bulk_download/awards"): "_bulk_download_awards",
    ("GET", "/api/v2/download/status"): "_download_status",
    ("GET", "/api/v2/bulk_download/status"): "_download_status",
    ("POST", "/api/v2/bulk_download/list_monthly_files"): "_list_monthly_files",
    ("POST", "/api/v2/bulk_download/list_agencies"): "_list_agencies",
    ("GET", "/api/v2/references/toptier_agencies"): "_toptier_agencies",
}
# (method, path prefix) -> handler method name, called with the rest of the path
FILE_ROUTES = {
    ("GET", "/generated_downloads/"): "_generated_download",
    ("GET", "/award_data_archive/"): "_archive_file",
}


class FakeUSAspending:
    """The fake API; a context manager serving on ``url`` = http://127.0.0.1:<ephemeral port>.

    Tests may change ``transactions``, ``archive_files``, ``monthly_files`` and ``toptier_agencies``
    between requests; rows are picked when a job ends. A new job answers its first ``lagging_polls``
    status polls with 404, then ``polls_until_finished`` polls with ready, running, queued, running...
    (0: finished at once), then finished (or failed). ``rows_per_part`` is where the served CSVs are
    split (USAspending: 1,000,000). ``monthly_files`` are the archive bucket's objects (``file_name``,
    optional ``url``); one with ``listed_for: <toptier_agency_id>`` is listed for that id whatever its
    name (a planted wrong listing). ``misreport_rows`` is added to the next finished job's total_rows.
    ``hang_download`` holds the file downloads of the jobs of one start date (none by default).
    """

    def __init__(
        self,
        transactions: list[dict[str, str]] | None = None,
        *,
        columns: list[str] | None = None,
        polls_until_finished: int = 2,
        lagging_polls: int = 1,
        rows_per_part: int = 1_000_000,
        search_plants: list | None = None,  # usaspending_search.Plant: differences planted in the search answers
    ):
        self.transactions: list[dict] = list(transactions or [])
        self.columns: list[str] = list(columns or current_columns())
        self.polls_until_finished = polls_until_finished
        self.lagging_polls = lagging_polls
        self.misreport_rows = 0
        self._loads = 0
        self.rows_per_part = rows_per_part
        self.search_plants: list = list(search_plants or [])
        self.archive_files: dict[str, bytes] = {}
        self.monthly_files: list[dict] = []
        self.toptier_agencies: list[dict] = [dict(a) for a in TOPTIER_AGENCIES]
        self.requests: list[tuple[str, str, dict | None]] = []
        self.url = ""
        self._jobs: dict[str, Job] = {}
        self._faults: list[Fault] = []
        self._job_failures: list[str] = []
        self._held_downloads: dict[str, float] = {}  # a job's start date -> seconds its file download waits
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def __enter__(self) -> FakeUSAspending:
        self._stopping.clear()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-usaspending", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    # ---- test controls

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        """The next `times` requests whose path starts with `path_prefix` get this error reply."""
        with self._lock:
            self._faults.append(Fault(path_prefix, times, status, None, retry_after, body, content_type))

    def hang_next(self, path_prefix: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` matching requests wait `seconds` (less if the server stops), then are answered."""
        with self._lock:
            self._faults.append(Fault(path_prefix, times, hang=seconds))

    def hang_download(self, start_date: str, seconds: float) -> None:
        """The file downloads of jobs whose date range starts on `start_date` (YYYY-MM-DD) wait `seconds`
        (less if the server stops) before they are answered; other jobs are served as usual."""
        with self._lock:
            self._held_downloads[start_date] = seconds

    def fail_job(self, message: str = "Download failed") -> None:
        """The next download job to reach its end reports status "failed" with this message."""
        with self._lock:
            self._job_failures.append(message)

    def data_loaded(self) -> None:
        """A new upstream data load: identical requests no longer return the cached jobs."""
        with self._lock:
            self._loads += 1

    def archive_url(self, file_name: str) -> str:
        """Where `archive_files[file_name]` is served."""
        return f"{self.url}/award_data_archive/{file_name}"

    # ---- dispatch

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def handle(self, method: str, target: str, raw: bytes) -> Reply:
        """Record the request, apply a queued fault, then route it."""
        parts = urlsplit(target)
        body, bad_json = None, False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        with self._lock:
            self.requests.append((method, target, body))
        fault = self._take_fault(parts.path)
        if fault is not None and fault.status is not None:
            return fault.reply()
        if fault is not None:
            self._stopping.wait(fault.hang)
        if method == "POST" and (bad_json or not raw):
            return error(400, "JSON parse error - request body must be a JSON object")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        request = Request(method, parts.path, query, body)
        try:
            return self._route(request)
        except BadRequest as exc:
            return error(400, str(exc))
        except Exception as exc:  # surface fake bugs to the test instead of a dropped connection
            return error(500, f"{type(exc).__name__}: {exc}")

    def _route(self, req: Request) -> Reply:
        from tests.servers import usaspending_search  # the search endpoints (reconciliation)

        if req.method == "POST" and (found := usaspending_search.answer(req.path, self.transactions, req.body, self.search_plants)):
            return json_reply(200, found)
        name = ROUTES.get((req.method, req.path.rstrip("/")))
        if name:
            return getattr(self, name)(req)
        for (method, prefix), name in FILE_ROUTES.items():
            if req.method == method and req.path.startswith(prefix) and len(req.path) > len(prefix):
                return getattr(self, name)(unquote(req.path[len(prefix) :]))
        return error(404, f"Not found: {req.method} {req.path}")

    # ---- endpoints

    def _bulk_download_awards(self, req: Request) -> Reply:
        filters, download_request = validate_bulk_request(req.body)
        key = json.dumps([download_request, self._loads, len(self.transactions)], sort_keys=True)
        with self._lock:
            cached = [j for j in self._jobs.values() if j.cache_key == key and j.status != "failed"]
            if cached:  # base_download_viewset.py: the newest job of an identical request, unless failed
                job = cached[-1]
            else:
                name = self._new_job_name(filters["agencies"])
                job = self._jobs[name] = Job(name, filters, hidden=self.lagging_polls, cache_key=key,
                                             download_request=download_request)
        return json_reply(
            200,
            {
                "status_url": f"{self.url}/api/v2/download/status?file_name={job.name}",
                "file_name": job.name,
                "file_url": f"{self.url}/generated_downloads/{job.name}",
                "download_request": job.download_request,
            },
        )

    def _new_job_name(self, agencies: list[dict]) -> str:
        prefix = "All"
        if len(agencies) == 1 and agencies[0]["tier"] == "toptier":
            codes = [a["toptier_code"] for a in self.toptier_agencies if a["agency_name"] == agencies[0]["name"]]
            prefix = codes[0] if codes else prefix
        now = datetime.now()
        while True:
            name = f"{prefix}_PrimeTransactions_{now:%Y-%m-%d}_H{now:%H}M{now:%M}S{now:%S%f}.zip"
            if name not in self._jobs:
                return name
            now += timedelta(microseconds=1)

    def _download_status(self, req: Request) -> Reply:
        name = req.query.get("file_name")
        if not name:
            raise BadRequest("Missing one or more required query parameters: file_name")
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.hidden > 0:  # the replica has not seen it yet
                job.hidden -= 1
                job = None
            if job is None:
                return error(404, f"Download job with filename {name} does not exist.")
            self._advance(job)
            return json_reply(200, self._status_payload(job))

    def _advance(self, job: Job) -> None:
        """One poll: ready, running, queued, running ... for `polls_until_finished` polls, then the end state."""
        job.polls += 1
        if job.status in ("finished", "failed"):
            return
        if job.polls <= self.polls_until_finished:
            job.status = RUNNING_STATES[job.polls - 1] if job.polls <= len(RUNNING_STATES) else "running"
            return
        if self._job_failures:
            job.status, job.message = "failed", self._job_failures.pop(0)
        else:
            rows = [r for r in self.transactions if row_matches(r, job.filters)]
            job.data, job.total_rows, job.status = self._job_zip(job.name, rows), len(rows) + self.misreport_rows, "finished"
            self.misreport_rows = 0
        job.elapsed = time.monotonic() - job.started

    def _job_zip(self, name: str, rows: list[dict]) -> bytes:
        """`<agency>_Contracts_PrimeTransactions_<date>_H..M..S.._<n>.csv` parts of at most rows_per_part rows."""
        agency, stamp = name.removesuffix(".zip").split("_PrimeTransactions_")
        base = f"{agency}_Contracts_PrimeTransactions_{stamp[:-6]}"  # members carry no microseconds
        n = self.rows_per_part
        parts = [rows[i : i + n] for i in range(0, len(rows), n)] or [[]]
        return zip_bytes({f"{base}_{i}.csv": csv_bytes(self.columns, part) for i, part in enumerate(parts, 1)})

    def _status_payload(self, job: Job) -> dict:
        done = job.status == "finished"
        elapsed = job.elapsed if job.elapsed is not None else time.monotonic() - job.started
        return {
            "status": job.status,
            "message": job.message,
            "file_name": job.name,
            "file_url": f"{self.url}/generated_downloads/{job.name}",
            "total_size": round(len(job.data) / 1024, 3) if done else None,
            "total_columns": len(self.columns) if done else None,
            "total_rows": job.total_rows if done else None,
            "seconds_elapsed": f"{elapsed:.6f}",
        }

    def _generated_download(self, name: str) -> Reply:
        with self._lock:
            job = self._jobs.get(name)
            data = job.data if job is not None and job.status == "finished" else None
            held = self._held_downloads.get(job.filters["start"], 0.0) if data is not None else 0.0
        if held:
            self._stopping.wait(held)
        if data is None:
            return error(404, f"File {name} not found (unknown or not finished)")
        return Reply(200, data, "application/zip")

    def _list_monthly_files(self, req: Request) -> Reply:
        """list_monthly_downloads.py: the agency by toptier_agency_id, its files by name."""
        body = req.body if isinstance(req.body, dict) else {}
        for key in ("agency", "fiscal_year", "type"):
            if body.get(key) is None:
                raise BadRequest(f"Missing one or more required body parameters: {key}")
        agency, fiscal_year, kind = body["agency"], body["fiscal_year"], body["type"]
        if agency != "all" and (not isinstance(agency, int) or isinstance(agency, bool)):
            raise BadRequest(f"Invalid Parameter: agency must be an integer or 'all', got {agency!r}")
        if not isinstance(fiscal_year, int) or isinstance(fiscal_year, bool):
            raise BadRequest(f"Invalid Parameter: fiscal_year must be an integer, got {fiscal_year!r}")
        if kind not in ("contracts", "assistance"):
            raise BadRequest(f"Invalid Parameter: type must be 'contracts' or 'assistance', got {kind!r}")
        with self._lock:
            if agency == "all":
                found = {"toptier_code": "All", "agency_name": "All", "abbreviation": None}
            else:
                found = next((a for a in self.toptier_agencies if a.get("toptier_agency_id") == agency), None)
                if found is None:
                    raise BadRequest(f"{agency} agency not found")
            code, kind_name = found["toptier_code"], kind.capitalize()
            full = re.compile(rf"^FY{fiscal_year}_{re.escape(code)}_{kind_name}_Full_.*\.zip$")
            delta = re.compile(rf"^FY\(All\)_{re.escape(code)}_{kind_name}_Delta_.*\.zip$")
            names = {m["file_name"]: m for m in self.monthly_files}
            planted = [n for n, m in names.items() if m.get("listed_for") == agency]
            fulls = sorted(n for n in names if full.search(n)) + [n for n in planted if not full.search(n)]
            deltas = sorted(n for n in names if delta.search(n))
        files = []
        for name, is_delta in [*((n, False) for n in fulls), *((n, True) for n in deltas)]:
            stamp = re.findall(r"_(\d{8})\.zip$", name)
            stamp = stamp[0] if stamp else "00000000"
            files.append({
                "fiscal_year": None if is_delta else fiscal_year,
                "agency_name": found["agency_name"],
                "agency_acronym": found["abbreviation"],
                "type": kind,
                "updated_date": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}",
                "file_name": name,
                "url": names[name].get("url") or self.archive_url(name),
            })
        return json_reply(200, {"monthly_files": files})

    def _list_agencies(self, req: Request) -> Reply:
        """download_list_agencies.py: toptier agencies (CFO ones first, in CFO order) or one's sub-agencies."""
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("type") not in ("account_agencies", "award_agencies"):
            raise BadRequest("type must be one of: ('account_agencies', 'award_agencies')")
        with self._lock:
            tops = [{"name": a["agency_name"], "toptier_agency_id": a["toptier_agency_id"], "toptier_code": a["toptier_code"]}
                    for a in self.toptier_agencies]
            subs = sorted({r.get("awarding_sub_agency_name") for r in self.transactions if r.get("awarding_sub_agency_name")
                           and any(a["toptier_agency_id"] == body.get("agency") and a["agency_name"] == r.get("awarding_agency_name")
                                   for a in self.toptier_agencies)})
        if not body.get("agency"):
            cfo = sorted((a for a in tops if a["toptier_code"] in CFO_ORDER), key=lambda a: CFO_ORDER.index(a["toptier_code"]))
            other = sorted((a for a in tops if a["toptier_code"] not in CFO_ORDER), key=lambda a: a["name"])
            return json_reply(200, {"agencies": {"cfo_agencies": cfo, "other_agencies": other}, "sub_agencies": []})
        if not any(a["toptier_agency_id"] == body["agency"] for a in tops):
            raise BadRequest("Agency ID not found")
        return json_reply(200, {"agencies": [], "sub_agencies": [{"subtier_agency_name": n} for n in subs]})

    def _archive_file(self, name: str) -> Reply:
        data = self.archive_files.get(name)
        if data is None:
            return error(404, f"File {name} not found")
        return Reply(200, data, "application/zip")

    def _toptier_agencies(self, req: Request) -> Reply:
        return json_reply(200, {"results": [dict(a) for a in self.toptier_agencies]})


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for handler threads

    def __init__(self, fake: FakeUSAspending):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown
    timeout = 5  # a silent client cannot hold a handler thread longer than this
    server: _Server

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.fake.handle(self.command, self.path, raw)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            view = memoryview(reply.body)
            for i in range(0, len(view), 1 << 16):
                self.wfile.write(view[i : i + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts in hang tests)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass
