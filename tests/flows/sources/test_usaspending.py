"""USAspending source and HTTP behaviour against a local server implementing the API contract."""

from __future__ import annotations

from datetime import date

import pytest

from awardwatch.flows.sources import usaspending
from awardwatch.flows.sources.base import months
from awardwatch.flows.sources.http import Http, HttpError
from awardwatch.flows.sources.usaspending import BulkDownload
from awardwatch.schemas import agencies as registry
from tests.factories import row
from tests.servers.usaspending import FakeUSAspending

ICE = row(piid="70CMSD19C00000001", last_modified_date="2019-03-02 10:00:00")
CBP = row(piid="70B04C19F00000002", awarding_sub_agency_code="7014", awarding_sub_agency_name="U.S. Customs and Border Protection",
          last_modified_date="2019-03-03 10:00:00")
OLD = row(piid="HSCETC15C00000003", last_modified_date="2015-01-01 10:00:00")


def http(api: FakeUSAspending, sleeps: list | None = None, attempts: int = 3) -> Http:
    return Http(base_url=api.url, attempts=attempts, backoff=0.01, timeout=5, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_windows_never_exceed_366_days():
    spans = usaspending.windows(date(2015, 1, 1), date(2018, 6, 30))
    assert spans[0] == (date(2015, 1, 1), date(2016, 1, 1))
    assert all((b - a).days + 1 <= 366 for a, b in spans)
    assert spans[-1][1] == date(2018, 6, 30)
    assert all(b2 == a1 or (a1 - b2).days == 1 for (_, b2), (a1, _) in zip(spans, spans[1:]))


def test_months():
    assert months(date(2018, 1, 15), date(2018, 3, 10)) == [
        (date(2018, 1, 15), date(2018, 1, 31)), (date(2018, 2, 1), date(2018, 2, 28)), (date(2018, 3, 1), date(2018, 3, 10))]


def test_unknown_agency_is_a_clear_error():
    with pytest.raises(usaspending.InputError, match="unknown agency 'NASA'; known: DHS, ICE"):
        registry.resolve(["NASA"])


def test_bulk_download_lands_the_zip_of_the_requested_agencies_and_window(tmp_path):
    with FakeUSAspending([ICE, CBP, OLD], polls_until_finished=3) as api:
        states = []
        job = BulkDownload(http(api), poll_every=0, sleep=lambda s: None, on_status=states.append)
        path = job.fetch(registry.resolve(["ICE", "CBP"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path)
        body = next(b for m, p, b in api.requests if p.startswith("/api/v2/bulk_download/awards"))
    assert states[-1] == "finished" and "queued" in states
    assert body["filters"]["date_type"] == "last_modified_date"
    assert body["filters"]["agencies"][0] == {"type": "awarding", "tier": "subtier", "name": "U.S. Immigration and Customs Enforcement",
                                              "toptier_name": "Department of Homeland Security"}
    assert set(body["filters"]["prime_award_types"]) == {"A", "B", "C", "D", "IDV_A", "IDV_B", "IDV_B_A", "IDV_B_B", "IDV_B_C", "IDV_C", "IDV_D", "IDV_E"}
    import zipfile

    with zipfile.ZipFile(path) as z:
        text = b"".join(z.read(n) for n in z.namelist()).decode()
    assert "70CMSD19C00000001" in text and "70B04C19F00000002" in text and "HSCETC15C00000003" not in text


def test_a_failed_job_is_a_clear_error(tmp_path):
    with FakeUSAspending([ICE]) as api:
        api.fail_job("Database timeout")
        job = BulkDownload(http(api), poll_every=0, sleep=lambda s: None)
        with pytest.raises(HttpError, match=r"download job .*\.zip failed: Database timeout; retry later or narrow the dates"):
            job.fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path)


def test_a_job_that_never_finishes_times_out(tmp_path):
    ticks = iter(range(0, 10_000, 100))
    with FakeUSAspending([ICE], polls_until_finished=50) as api:
        job = BulkDownload(http(api), poll_every=0, poll_timeout=250, sleep=lambda s: None, clock=lambda: next(ticks))
        with pytest.raises(HttpError, match=r"still (running|queued|ready) after 250 s"):
            job.fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path)


def test_429_and_5xx_are_retried_honouring_retry_after(tmp_path):
    with FakeUSAspending([ICE]) as api:
        api.fail_next("/api/v2/bulk_download/awards", 429, retry_after=7)
        api.fail_next("/api/v2/download/status", 503)
        sleeps: list[float] = []
        job = BulkDownload(http(api, sleeps), poll_every=0, sleep=lambda s: None)
        assert job.fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path).exists()
    assert sleeps[0] == 7.0
    assert len(sleeps) == 2


def test_after_the_last_retry_one_error_names_url_status_and_attempts():
    with FakeUSAspending([]) as api:
        api.fail_next("/api/v2/bulk_download/awards", 500, times=5)
        with pytest.raises(HttpError) as info:
            BulkDownload(http(api, attempts=3)).request(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 2), "last_modified_date")
    message = str(info.value)
    assert message.startswith(f"POST {api.url}/api/v2/bulk_download/awards/ failed after 3 attempts (HTTP 500")
    assert "\n" not in message


def test_a_400_is_not_retried_and_says_why():
    with FakeUSAspending([]) as api:
        client = http(api)
        too_long = {"filters": {"prime_award_types": ["A"], "date_type": "action_date", "agencies": [{"type": "awarding", "tier": "toptier", "name": "Department of Homeland Security"}],
                                "date_range": {"start_date": "2017-01-01", "end_date": "2018-06-01"}}}
        with pytest.raises(HttpError, match=r"failed: HTTP 400: .*366") as info:
            client.json("POST", "/api/v2/bulk_download/awards/", json=too_long)
        assert info.value.status == 400
        assert sum(p.startswith("/api/v2/bulk_download/awards") for _, p, _ in api.requests) == 1


def test_html_instead_of_json_is_named():
    with FakeUSAspending([]) as api:
        api.fail_next("/api/v2/references/toptier_agencies", 200, body=b"<html><body>maintenance</body></html>", content_type="text/html")
        with pytest.raises(HttpError, match="answered HTML instead of JSON"):
            http(api).json("GET", "/api/v2/references/toptier_agencies/")


def test_a_slow_answer_times_out_and_is_retried():
    with FakeUSAspending([]) as api:
        api.hang_next("/api/v2/references/toptier_agencies", 2.0)
        client = Http(base_url=api.url, attempts=2, timeout=0.3, backoff=0.01, sleep=lambda s: None)
        assert client.json("GET", "/api/v2/references/toptier_agencies/")["results"]


def test_requests_carry_an_awardwatch_user_agent():
    import httpx

    with FakeUSAspending([]) as api:
        response = http(api).request("GET", "/api/v2/references/toptier_agencies/")
    assert response.request.headers["user-agent"].startswith("awardwatch/")
    assert isinstance(response, httpx.Response)
