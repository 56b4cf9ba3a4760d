"""The nightly and backfill flows when USAspending answers as upstream does (issue 14 points 2, 3, 4, 10)."""

from __future__ import annotations

from datetime import date

import pytest

from awardwatch.warehouse import runs
from awardwatch.flows.sources.usaspending import DownloadMismatch, EmptyDownload
from tests.factories import row
from tests.servers.usaspending import FakeUSAspending

pytestmark = pytest.mark.prefect


@pytest.fixture
def env(tmp_path, monkeypatch, prefect_harness):
    for name, value in {"AWARDWATCH_HOME": str(tmp_path / "home"), "AWARDWATCH_POLL_SECONDS": "0.01", "AWARDWATCH_HTTP_BACKOFF": "0.01",
                        "AWARDWATCH_TASK_RETRIES": "2", "AWARDWATCH_AGENCIES": "ATF"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWARDWATCH_WAREHOUSE", raising=False)
    monkeypatch.delenv("AWARDWATCH_SNAPSHOT_URL", raising=False)
    return tmp_path / "home" / "awardwatch.duckdb"


ATF = {"awarding_agency_code": "015", "awarding_agency_name": "Department of Justice", "awarding_sub_agency_code": "1560",
       "awarding_sub_agency_name": "Bureau of Alcohol, Tobacco, Firearms and Explosives Acquisition and Property Management Division"}


def test_nightly_of_an_agency_that_suddenly_has_no_rows_fails_and_keeps_the_watermark(env, monkeypatch, sql_at):
    """The broker's dataactvalidator/config/agency_codes.csv names are exact-match filters (a wrong one gives 0 rows,
    no error). Rows modified today are read (filter_helpers.py: the request ends a day later); then a night with
    0 rows after a night with rows fails, and the watermark stays. A first poll's 404 (download_status.py) is absorbed."""
    from awardwatch.flows.nightly import nightly

    today = runs.now().date()
    with FakeUSAspending([row(piid=f"15B10{i}", last_modified_date=f"{today} 06:00:00", **ATF) for i in range(3)]) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        first = nightly()
        api.transactions.clear()
        with pytest.raises(EmptyDownload, match=r"holds 0 rows, but the previous window .* had 3"):
            nightly()
    assert first["counts"]["inserted"] == 3
    assert sql_at(env, "SELECT value::DATE, run_id FROM watermarks") == [(today, first["runs"][0])]
    assert sql_at(env, "SELECT count(*) FROM runs WHERE status = 'succeeded' AND command = 'run'") == [(1,)]


def test_a_chunk_whose_rows_differ_from_total_rows_is_not_loaded_and_is_fetched_again(env, monkeypatch, sql_at):
    """api_contracts/contracts/v2/bulk_download/status.md total_rows: a chunk whose landed rows differ fails with both
    numbers, loads nothing and is not marked done; identical requests get the cached job (base_download_viewset.py)
    until data is loaded upstream, then the re-run fetches and loads it. The error is not retried by Prefect."""
    from awardwatch.flows.backfill import backfill

    rows = [row(piid=f"15B1{m}{i}", action_date=f"2019-0{m}-1{i}", **ATF) for m in (1, 2) for i in range(2)]
    with FakeUSAspending(rows) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        api.misreport_rows = 1  # the January job's status announces one row too many
        with pytest.raises(DownloadMismatch, match=r"hold 2 data rows but the download status announced total_rows 3"):
            backfill(start=date(2019, 1, 1), end=date(2019, 2, 28), concurrency=1)
        january = [b for m, p, b in api.requests if p.startswith("/api/v2/bulk_download/awards")]
        assert sql_at(env, "SELECT count(*) FROM transactions") == [(0,)]
        assert sql_at(env, "SELECT count(*) FROM backfill_chunks WHERE status = 'done'") == [(0,)]
        api.data_loaded()
        again = backfill(start=date(2019, 1, 1), end=date(2019, 2, 28), concurrency=1)
    assert len(january) == 1  # no Prefect task retry of a permanent error
    assert again["counts"]["inserted"] == 4
    done = sql_at(env, "SELECT chunk_start, rows_read FROM backfill_chunks WHERE status = 'done' ORDER BY 1")
    assert done == [(date(2019, 1, 1), 2), (date(2019, 2, 1), 2)]
