"""The local USAspending fake (tests/servers/usaspending.py) honours the API contract awardwatch relies on."""

from __future__ import annotations

import csv
import io
import threading
import time
import zipfile

import httpx
import pytest

from awardwatch.schemas.layouts import current_columns
from tests.factories import row
from tests.servers.usaspending import FakeUSAspending, write_archive_zip

pytestmark = pytest.mark.timeout(10)

ICE = "U.S. Immigration and Customs Enforcement"
CBP = "U.S. Customs and Border Protection"
DHS = "Department of Homeland Security"
DOJ = "Department of Justice"
AWARDS = "/api/v2/bulk_download/awards/"
STATUS = "/api/v2/download/status/"


def doj_row(piid: str, **values: str) -> dict[str, str]:
    return row(
        piid,
        awarding_agency_name=DOJ,
        awarding_sub_agency_name="Federal Bureau of Investigation",
        funding_agency_name=DOJ,
        funding_sub_agency_name="Federal Bureau of Investigation",
        **values,
    )


ROWS = [
    row("ICE1", action_date="2018-03-05", last_modified_date="2018-03-06 10:00:00"),
    row("ICE2", action_date="2017-10-01", last_modified_date="2018-09-30 23:59:59"),  # both range edges
    row("ICE3", action_date="2018-10-01", last_modified_date="2018-10-02 00:00:00"),  # FY2019
    row("CBP1", awarding_sub_agency_name=CBP, funding_agency_name=DHS, funding_sub_agency_name=ICE),
    row("IDV1", award_or_idv_flag="IDV", award_type_code="", idv_type_code="B"),
    doj_row("FBI1"),
]


ALL_IN_FY18 = ["ICE1", "ICE2", "CBP1", "FBI1"]  # contracts with an FY2018 action_date


def bulk_body(
    *,
    start: str = "2017-10-01",
    end: str = "2018-09-30",
    date_type: str = "action_date",
    types: list[str] | None = None,
    agencies: list[dict] | None = None,
) -> dict:
    return {
        "filters": {
            "prime_award_types": types if types is not None else ["A", "B", "C", "D"],
            "date_type": date_type,
            "date_range": {"start_date": start, "end_date": end},
            "agencies": agencies
            if agencies is not None
            else [{"type": "awarding", "tier": "subtier", "name": ICE, "toptier_name": DHS}],
        },
        "file_format": "csv",
    }


@pytest.fixture
def fake_factory():
    """Starts fakes on demand; afterwards checks that each stopped and left no thread behind."""
    before = set(threading.enumerate())
    started: list[FakeUSAspending] = []

    def start(*args, **kwargs) -> FakeUSAspending:
        fake = FakeUSAspending(*args, **kwargs)
        started.append(fake.__enter__())
        return fake

    yield start
    for fake in started:
        fake.__exit__(None, None, None)
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []


@pytest.fixture
def api(fake_factory) -> FakeUSAspending:
    return fake_factory(ROWS, polls_until_finished=1)


def run_job(client: httpx.Client, body: dict) -> tuple[dict, dict]:
    """Request a download and poll it to its end (a new job's first poll answers 404); returns
    (request reply, last status)."""
    started = client.post(AWARDS, json=body)
    assert started.status_code == 200, started.text
    for _ in range(20):
        reply = client.get(started.json()["status_url"])
        if reply.status_code == 404:
            continue
        status = reply.json()
        if status["status"] in ("finished", "failed"):
            return started.json(), status
    raise AssertionError("job never ended")


def read_zip(data: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: list(csv.reader(io.StringIO(zf.read(n).decode("utf-8")))) for n in zf.namelist()}


def piids(members: dict[str, list[list[str]]]) -> list[str]:
    col = list(current_columns()).index("award_id_piid")
    return [r[col] for rows in members.values() for r in rows[1:]]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (bulk_body(start="2017-10-01", end="2018-10-03"), "366"),
        (bulk_body(types=["A", "IDV_F"]), "IDV_F"),
        (bulk_body(types=["A", "ZZ"]), "ZZ"),
        (bulk_body(types=[]), "prime_award_types"),
        (bulk_body(agencies=[]), "agencies"),
        ({"filters": {k: v for k, v in bulk_body()["filters"].items() if k != "agencies"}}, "agencies"),
        ({"filters": {k: v for k, v in bulk_body()["filters"].items() if k != "date_range"}}, "date_range"),
        (bulk_body(agencies=[{"type": "spending", "tier": "toptier", "name": DHS}]), "type"),
        (bulk_body(start="2018/01/01"), "start_date"),
        (bulk_body(end="2018-02-30"), "end_date"),
        (bulk_body(start="2018-09-30", end="2018-01-01"), "after"),
        (bulk_body(date_type="date_signed"), "date_type"),
        ({"file_format": "csv"}, "filters"),
    ],
)
def test_bulk_download_rejects_bad_requests(api, body, needle):
    reply = httpx.post(api.url + AWARDS, json=body)
    assert reply.status_code == 400
    assert needle in reply.json()["detail"]


def test_non_json_post_is_400(api):
    reply = httpx.post(api.url + AWARDS, content=b"filters=1", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert "detail" in reply.json()


def test_range_limit_counts_days_between_dates_like_the_real_api(api):
    # real check is (end - start).days > 366: a leap fiscal year plus one day still passes
    assert httpx.post(api.url + AWARDS, json=bulk_body(start="2019-10-01", end="2020-10-01")).status_code == 200
    assert httpx.post(api.url + AWARDS, json=bulk_body(start="2019-10-01", end="2020-10-02")).status_code == 400


def test_request_reply_matches_the_sample_shape(api):
    body = bulk_body(types=["A", "B", "C", "D", "IDV_B_B", "02"])  # assistance codes are valid, as in the sample
    reply = httpx.post(api.url + AWARDS, json=body)
    assert reply.status_code == 200
    out = reply.json()
    name = out["file_name"]
    assert name.startswith("All_PrimeTransactions_") and name.endswith(".zip")
    assert out["status_url"] == f"{api.url}/api/v2/download/status?file_name={name}"
    assert out["file_url"] == f"{api.url}/generated_downloads/{name}"
    req = out["download_request"]
    assert req["request_type"] == "award" and req["download_types"] == ["prime_awards"]
    assert req["filters"]["prime_and_sub_award_types"]["prime_awards"] == body["filters"]["prime_award_types"]
    assert req["filters"]["time_period"] == [
        {"date_type": "action_date", "end_date": "2018-09-30", "start_date": "2017-10-01"}
    ]
    assert req["filters"]["agencies"] == body["filters"]["agencies"]


def test_file_names_are_unique_and_carry_the_toptier_code(api):
    # different requests: identical ones return the cached job (tests/flows/sources/test_usaspending_upstream.py)
    bodies = [bulk_body(end=f"2018-09-{d}", agencies=[{"type": "awarding", "tier": "toptier", "name": DHS}]) for d in range(20, 25)]
    names = {httpx.post(api.url + AWARDS, json=body).json()["file_name"] for body in bodies}
    assert len(names) == 5
    assert all(n.startswith("070_PrimeTransactions_") for n in names)


# ---------------------------------------------------------------- job lifecycle


def test_job_walks_ready_running_queued_running_finished(fake_factory):
    api = fake_factory(ROWS, polls_until_finished=4)
    with httpx.Client(base_url=api.url) as client:
        started = client.post(AWARDS, json=bulk_body()).json()
        name = started["file_name"]
        assert client.get(STATUS, params={"file_name": name}).status_code == 404  # the replica lags
        seen = []
        for _ in range(5):
            status = client.get(STATUS, params={"file_name": name}).json()
            seen.append(status["status"])
            if status["status"] != "finished":
                assert status["total_size"] is None
                assert client.get(f"/generated_downloads/{name}").status_code == 404
        assert seen == ["ready", "running", "queued", "running", "finished"]
        assert set(status) == {
            "status", "message", "file_name", "file_url", "total_size", "total_columns", "total_rows",
            "seconds_elapsed",
        }  # fmt: skip
        assert status["message"] is None
        assert status["file_url"] == started["file_url"]
        assert status["total_rows"] == 2 and status["total_columns"] == 297
        assert isinstance(status["total_size"], float) and isinstance(status["seconds_elapsed"], str)
        # the bulk_download alias answers too, and a finished job stays finished
        again = client.get("/api/v2/bulk_download/status/", params={"file_name": name}).json()
        assert again["status"] == "finished"
        download = client.get(status["file_url"])
        assert download.status_code == 200
        assert download.headers["content-length"] == str(len(download.content))
        assert round(len(download.content) / 1024, 3) == status["total_size"]


def test_zip_is_split_in_parts_each_with_a_header(fake_factory):
    rows = [row(f"ICE{i}", action_date=f"2018-01-0{i}") for i in range(1, 6)]
    api = fake_factory(rows, polls_until_finished=0, rows_per_part=2)
    with httpx.Client(base_url=api.url) as client:
        started, status = run_job(client, bulk_body())
        members = read_zip(client.get(status["file_url"]).content)
    stamp = started["file_name"].removeprefix("All_PrimeTransactions_").removesuffix(".zip")[:-6]
    assert list(members) == [f"All_Contracts_PrimeTransactions_{stamp}_{i}.csv" for i in (1, 2, 3)]
    assert all(m[0] == list(current_columns()) for m in members.values())
    assert [len(m) - 1 for m in members.values()] == [2, 2, 1]
    assert piids(members) == ["ICE1", "ICE2", "ICE3", "ICE4", "ICE5"]
    assert status["total_rows"] == 5


def test_csv_quotes_and_blank_missing_values(fake_factory):
    api = fake_factory([row("Q1", transaction_description='A "B", C\nD')], columns=None, polls_until_finished=0)
    with httpx.Client(base_url=api.url) as client:
        _, status = run_job(client, bulk_body())
        data = client.get(status["file_url"]).content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read(zf.namelist()[0]).decode("utf-8")
    assert '"A ""B"", C\nD"' in text and "\r\n" not in text
    header, record = list(csv.reader(io.StringIO(text)))
    assert record[header.index("recipient_parent_uei")] == ""
    assert record[header.index("transaction_description")] == 'A "B", C\nD'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (bulk_body(), ["ICE1", "ICE2"]),
        (bulk_body(date_type="last_modified_date", start="2018-09-30", end="2018-10-01"), ["ICE2"]),
        (bulk_body(start="2018-10-01", end="2018-10-31"), ["ICE3"]),
        (bulk_body(agencies=[{"type": "awarding", "tier": "toptier", "name": DHS}]), ["ICE1", "ICE2", "CBP1"]),
        (bulk_body(agencies=[{"type": "funding", "tier": "subtier", "name": ICE}]), ["CBP1"]),
        (bulk_body(agencies=[{"type": "awarding", "tier": "subtier", "name": ICE, "toptier_name": DOJ}]), []),
        (bulk_body(agencies=[{"type": "awarding", "tier": "toptier", "name": "All"}]), [*ALL_IN_FY18]),
        (bulk_body(types=["IDV_B_B"]), ["IDV1"]),
        (bulk_body(types=["IDV_A", "IDV_C"]), []),
        (bulk_body(types=["A", "B", "C"]), []),
    ],
)
def test_jobs_filter_rows(fake_factory, body, expected):
    api = fake_factory(ROWS, polls_until_finished=0)
    with httpx.Client(base_url=api.url) as client:
        _, status = run_job(client, body)
        members = read_zip(client.get(status["file_url"]).content)
    assert sorted(piids(members)) == sorted(expected)
    assert status["total_rows"] == len(expected)
    assert len(members) == 1  # an empty result is still one CSV with a header


def test_rows_are_read_when_the_job_runs(fake_factory):
    api = fake_factory([], polls_until_finished=1)
    with httpx.Client(base_url=api.url) as client:
        started = client.post(AWARDS, json=bulk_body()).json()
        api.transactions.append(row("LATE1"))
        assert client.get(started["status_url"]).status_code == 404
        assert client.get(started["status_url"]).json()["status"] == "ready"
        assert client.get(started["status_url"]).json()["total_rows"] == 1


def test_fail_job(api):
    api.fail_job("Query timed out")
    with httpx.Client(base_url=api.url) as client:
        _, status = run_job(client, bulk_body())
        assert status["status"] == "failed"
        assert status["message"] == "Query timed out"
        assert client.get(status["file_url"]).status_code == 404
        _, status = run_job(client, bulk_body())  # only one job fails
        assert status["status"] == "finished"


# ---------------------------------------------------------------- 404s and other endpoints


def test_not_found_and_missing_parameters(api):
    with httpx.Client(base_url=api.url) as client:
        missing = client.get(STATUS, params={"file_name": "nope.zip"})
        assert missing.status_code == 404
        assert missing.json()["detail"] == "Download job with filename nope.zip does not exist."
        assert client.get(STATUS).status_code == 400
        assert client.get("/generated_downloads/nope.zip").status_code == 404
        assert client.get("/award_data_archive/nope.zip").status_code == 404
        unknown = client.get("/api/v2/search/spending_by_award/")
        assert unknown.status_code == 404 and "detail" in unknown.json()
        assert client.get(AWARDS).status_code == 404  # wrong method


def test_toptier_agencies(api):
    results = httpx.get(api.url + "/api/v2/references/toptier_agencies/").json()["results"]
    by_abbrev = {a["abbreviation"]: a for a in results}
    assert by_abbrev["DHS"]["agency_id"] == 562 and by_abbrev["DHS"]["toptier_code"] == "070"
    assert by_abbrev["DOJ"]["agency_id"] == 17 and by_abbrev["DOJ"]["agency_name"] == DOJ


def monthly(agency_id: int, acronym: str, code: str, fiscal_year: int | None, stamp: str = "20240708") -> dict:
    kind = f"FY{fiscal_year}_{code}_Contracts_Full" if fiscal_year else f"FY(All)_{code}_Contracts_Delta"
    return {
        "agency_name": DHS if acronym == "DHS" else DOJ,
        "agency_acronym": acronym,
        "agency_id": agency_id,
        "file_name": f"{kind}_{stamp}.zip",
        "fiscal_year": fiscal_year,
        "type": "contracts",
        "updated_date": f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}",
        "url": f"/award_data_archive/{kind}_{stamp}.zip",
    }


def test_list_monthly_files_and_archive(api):
    api.monthly_files = [
        monthly(562, "DHS", "070", 2018),
        monthly(562, "DHS", "070", 2019),
        monthly(562, "DHS", "070", None),
        monthly(17, "DOJ", "015", 2018),
        monthly(0, "All", "All", 2018),
    ]
    full = write_archive_zip([row("ICE1")])
    delta = write_archive_zip(
        [{**row("ICE1"), "correction_delete_ind": "C", "agency_id": "7012"}],
        delta=True,
        member="FY(All)_070_Contracts_Delta_20240708_1.csv",
    )
    api.archive_files = {
        "FY2018_070_Contracts_Full_20240708.zip": full,
        "FY(All)_070_Contracts_Delta_20240708.zip": delta,
    }
    url = api.url + "/api/v2/bulk_download/list_monthly_files/"

    def names(body: dict) -> list[str]:
        reply = httpx.post(url, json=body)
        assert reply.status_code == 200, reply.text
        return [m["file_name"] for m in reply.json()["monthly_files"]]

    # the agency is its toptier_agency_id (list_agencies), DHS 63 here; 562 is its references agency_id
    assert names({"agency": 63, "fiscal_year": 2018, "type": "contracts"}) == [
        "FY2018_070_Contracts_Full_20240708.zip",
        "FY(All)_070_Contracts_Delta_20240708.zip",
    ]
    # "all" lists the files named for all agencies (list_monthly_downloads.py: toptier_code "All")
    assert names({"agency": "all", "fiscal_year": 2018, "type": "contracts"}) == ["FY2018_All_Contracts_Full_20240708.zip"]
    assert names({"agency": 20, "fiscal_year": 2020, "type": "contracts"}) == []
    bad_bodies = [
        {"agency": 63, "type": "contracts"},  # no fiscal_year
        {"agency": "63", "fiscal_year": 2018, "type": "contracts"},  # agency id as a string
        {"agency": 63, "fiscal_year": 2018, "type": "grants"},
        {"agency": 562, "fiscal_year": 2018, "type": "contracts"},  # the references agency_id: not a toptier_agency_id
    ]
    for bad in bad_bodies:
        assert httpx.post(url, json=bad).status_code == 400

    got = httpx.get(api.archive_url("FY2018_070_Contracts_Full_20240708.zip"))
    assert got.status_code == 200 and got.content == full
    [(member, rows)] = read_zip(got.content).items()
    assert member == "FY2018_070_Contracts_Full_20240708_1.csv" and rows[0] == list(current_columns())
    [rows] = read_zip(httpx.get(api.archive_url("FY(All)_070_Contracts_Delta_20240708.zip")).content).values()
    assert rows[0] == ["correction_delete_ind", "agency_id", *current_columns()]
    assert rows[1][:2] == ["C", "7012"] and len(rows[1]) == 299


# ---------------------------------------------------------------- faults


def test_fail_next_with_retry_after_then_success(api):
    api.fail_next(AWARDS, 429, retry_after=3)
    api.fail_next("/api/v2/download/status", 500, times=2)
    with httpx.Client(base_url=api.url) as client:
        limited = client.post(AWARDS, json=bulk_body())
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert limited.json() == {"detail": "injected"}
        started = client.post(AWARDS, json=bulk_body()).json()
        assert [client.get(started["status_url"]).status_code for _ in range(4)] == [500, 500, 404, 200]


def test_fail_next_custom_body_and_prefix_only(api):
    api.fail_next("/generated_downloads/", 503, body=b"<html>busy</html>", content_type="text/html", retry_after=0.5)
    with httpx.Client(base_url=api.url) as client:
        assert client.post(AWARDS, json=bulk_body()).status_code == 200  # other paths unaffected
        busy = client.get("/generated_downloads/x.zip")
        assert busy.status_code == 503 and busy.text == "<html>busy</html>"
        assert busy.headers["content-type"] == "text/html" and busy.headers["retry-after"] == "0.5"
        assert client.get("/generated_downloads/x.zip").status_code == 404


def test_hang_next_delays_then_answers(api):
    api.hang_next("/api/v2/references/", 0.5)
    with httpx.Client(base_url=api.url) as client:
        t0 = time.monotonic()
        assert client.get("/api/v2/references/toptier_agencies/").status_code == 200
        assert 0.45 <= time.monotonic() - t0 < 1.5
        t0 = time.monotonic()
        assert client.get("/api/v2/references/toptier_agencies/").status_code == 200
        assert time.monotonic() - t0 < 0.3


def test_hang_lets_a_client_time_out_and_does_not_delay_shutdown(fake_factory):
    api = fake_factory(ROWS)
    api.hang_next(AWARDS, 30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(api.url + AWARDS, json=bulk_body(), timeout=0.2)
    t0 = time.monotonic()
    api.__exit__(None, None, None)
    assert time.monotonic() - t0 < 1.0


def test_requests_are_recorded(api):
    with httpx.Client(base_url=api.url) as client:
        client.post(AWARDS, json=bulk_body())
        client.get(STATUS, params={"file_name": "x.zip"})
    assert api.requests == [
        ("POST", AWARDS, bulk_body()),
        ("GET", f"{STATUS}?file_name=x.zip", None),
    ]


def test_server_stops_cleanly():
    with FakeUSAspending() as api:
        url = api.url
        thread = api._thread
        assert httpx.get(url + "/api/v2/references/toptier_agencies/").status_code == 200
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/v2/references/toptier_agencies/", timeout=1)
