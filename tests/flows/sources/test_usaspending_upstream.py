"""The USAspending feeds against what the upstream code does (issue 14 points 1-4, 6, 10, 11's 366 days).

Each test's docstring names the upstream file (fedspendingtransparency/usaspending-api, or the
broker, fedspendingtransparency/data-act-broker-backend) whose behaviour it pins.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.transforms.batch import _deletion_date
from awardwatch.flows.settings import Settings
from awardwatch.flows.sources import archive, usaspending
from awardwatch.flows.sources.base import BACKFILL, Landed, Scope, Window
from awardwatch.flows.sources.http import Http, PermanentHttpError
from awardwatch.flows.sources.usaspending import BulkDownload, DownloadMismatch, EmptyDownload
from awardwatch.schemas.errors import InputError
from awardwatch.schemas import agencies as registry
from tests.paths import ROOT
from tests.factories import row
from tests.servers.usaspending import FakeUSAspending, deletion_row, write_archive_zip, zip_bytes
from awardwatch.warehouse import db, feeds

pytestmark = pytest.mark.timeout(30)
SUBSET = ROOT.parent / "shared" / "reference" / "agency_codes_subset.csv"
AWARDS = "/api/v2/bulk_download/awards"
STATUS = "/api/v2/download/status"


def http(api: FakeUSAspending) -> Http:
    return Http(base_url=api.url, attempts=2, backoff=0.01, timeout=5, sleep=lambda s: None)


def download(api: FakeUSAspending, sleeps: list | None = None) -> BulkDownload:
    return BulkDownload(http(api), poll_every=0, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def posts(api: FakeUSAspending, prefix: str = AWARDS) -> list[dict]:
    return [b for m, p, b in api.requests if m == "POST" and p.startswith(prefix)]


def monthly(name: str, **extra) -> dict:
    return {"file_name": name, **extra}


# ---------------------------------------------------------------- 1. Award Data Archive agency id


def test_archive_lists_by_the_toptier_agency_id_of_list_agencies():
    """usaspending_api/download/v2/list_monthly_downloads.py filters ToptierAgency by toptier_agency_id,
    the id api_contracts/contracts/v2/bulk_download/list_agencies.md answers (download_list_agencies.py),
    not the agency_id of /references/toptier_agencies/."""
    with FakeUSAspending() as api:
        api.monthly_files = [monthly("FY2018_070_Contracts_Full_20240708.zip"), monthly("FY(All)_070_Contracts_Delta_20240808.zip"),
                             monthly("FY2018_015_Contracts_Full_20240708.zip")]
        found = archive.listing(http(api), "070", 2018)
        listed = posts(api, "/api/v2/bulk_download/list_monthly_files")
        asked = posts(api, "/api/v2/bulk_download/list_agencies")
        referenced = [p for _, p, _ in api.requests if p.startswith("/api/v2/references/")]
    assert asked == [{"type": "award_agencies"}]
    assert listed == [{"agency": 63, "fiscal_year": 2018, "type": "contracts"}]  # DHS's toptier_agency_id, not its agency_id 562
    assert referenced == []
    assert [(f.name, f.kind, f.agency) for f in found] == [("FY2018_070_Contracts_Full_20240708.zip", "Full", "070"),
                                                           ("FY(All)_070_Contracts_Delta_20240808.zip", "Delta", "070")]


def test_list_agencies_answers_the_contract_shape():
    """api_contracts/contracts/v2/bulk_download/list_agencies.md and download_list_agencies.py: agencies split into
    cfo_agencies (CFO order, download/lookups.py CFO_CGACS) and other_agencies; an agency id gives its sub_agencies."""
    with FakeUSAspending([row()]) as api:
        top = httpx.post(api.url + "/api/v2/bulk_download/list_agencies/", json={"type": "award_agencies"}).json()
        sub = httpx.post(api.url + "/api/v2/bulk_download/list_agencies/", json={"type": "award_agencies", "agency": 63}).json()
        bad = httpx.post(api.url + "/api/v2/bulk_download/list_agencies/", json={"type": "agencies"})
    assert set(top) == {"agencies", "sub_agencies"} and top["sub_agencies"] == []
    assert [(a["toptier_code"], a["toptier_agency_id"]) for a in top["agencies"]["cfo_agencies"]] == [("070", 63), ("015", 20)]
    assert set(top["agencies"]["cfo_agencies"][0]) == {"name", "toptier_agency_id", "toptier_code"}
    assert sub["sub_agencies"] == [{"subtier_agency_name": "U.S. Immigration and Customs Enforcement"}]
    assert bad.status_code == 400


def test_archive_refuses_a_listed_file_of_another_agency():
    """list_monthly_downloads.py names files FY{fy}_{toptier_code}_Contracts_Full_*.zip: a listed file whose
    code is not the agency asked for (as the wrong id once gave) is refused, not loaded."""
    with FakeUSAspending() as api:
        api.monthly_files = [monthly("FY2018_070_Contracts_Full_20240708.zip"),
                             monthly("FY2018_015_Contracts_Full_20240708.zip", listed_for=63)]
        with pytest.raises(InputError, match=r"listed FY2018_015_Contracts_Full_20240708\.zip, not files of agency 070; refusing") as info:
            archive.listing(http(api), "070", 2018)
    assert "\n" not in str(info.value)


def test_an_unknown_toptier_code_is_a_clear_error():
    """download_list_agencies.py lists only agencies with user-selectable subtiers: a code it does not name is an error."""
    with FakeUSAspending() as api:
        with pytest.raises(InputError, match=r"list_agencies \(award_agencies\) names no toptier agency with code '097'"):
            archive.listing(http(api), "097", 2018)


# ---------------------------------------------------------------- 2. agency names


def test_every_registry_name_is_the_exact_name_of_the_brokers_agency_codes():
    """The broker's dataactvalidator/config/agency_codes.csv (SUBTIER NAME, AGENCY NAME) is where USAspending's
    agency names come from, and the bulk-download filter matches names exactly. Checked against the subset of
    that file in shared/reference (every registry agency is in it; the broker file itself is not in CI)."""
    if not SUBSET.exists():
        pytest.skip(f"{SUBSET} not present")
    with open(SUBSET, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    subtiers = {r["SUBTIER CODE"]: r for r in rows}
    toptiers = {r["CGAC AGENCY CODE"]: r["AGENCY NAME"] for r in rows}
    for a in registry.AGENCIES.values():
        if a.tier == "toptier":
            assert toptiers.get(a.code) == a.name, f"{a.abbreviation} {a.code}: {a.name!r} is not the AGENCY NAME {toptiers.get(a.code)!r}"
            continue
        assert a.code in subtiers, f"{a.abbreviation} {a.code} is not in {SUBSET.name}: add its line from the broker's agency_codes.csv"
        line = subtiers[a.code]
        assert (a.name, a.toptier_name) == (line["SUBTIER NAME"], line["AGENCY NAME"]), f"{a.abbreviation} {a.code}"
        assert line["USER SELECTABLE ON USASPENDING.GOV"] == "TRUE", f"{a.abbreviation} is not selectable on USAspending"
    assert registry.AGENCIES["ATF"].name == "Bureau of Alcohol, Tobacco, Firearms and Explosives Acquisition and Property Management Division"
    assert {a for a, x in registry.AGENCIES.items() if x.toptier_name == "General Services Administration"} == {"FAS", "PBS"}


def _empty_zip(path: Path) -> Path:
    path.write_bytes(zip_bytes({"a_1.csv": b"award_id_piid,last_modified_date\n"}))
    return path


def test_zero_rows_where_the_previous_chunk_had_rows_is_an_error(tmp_path):
    """agency_codes.csv names are exact-match filters: a name that stops matching gives a finished download of 0 rows.
    After a chunk of the same scope with rows, that is an error naming both windows (the chunk is not loaded)."""
    s = Settings(home=tmp_path, warehouse=tmp_path / "w.duckdb")
    con = db.connect(s.warehouse)
    feeds.chunk_done(con, "bf", "usaspending", "awarding:ATF", date(2019, 1, 1), date(2019, 1, 31), "run-jan", 42)
    con.close()
    empty = _empty_zip(tmp_path / "All_PrimeTransactions_x.zip")
    assert not usaspending.has_rows(empty)
    with pytest.raises(EmptyDownload, match=r"holds 0 rows, but the previous window 2019-01-01..2019-01-31 \(run run-jan\) had 42") as info:
        check_not_empty(s, "awarding:ATF", Window(date(2019, 2, 1), date(2019, 2, 28)), empty)
    assert "\n" not in str(info.value) and "AGENCIES" in str(info.value)
    # another scope, or no window before: 0 rows is fine
    check_not_empty(s, "awarding:ICE", Window(date(2019, 2, 1), date(2019, 2, 28)), empty)
    check_not_empty(s, "awarding:ATF", Window(date(2018, 12, 1), date(2018, 12, 31)), empty)
    # a user who knows the agency is quiet says so (AWARDWATCH_ALLOW_EMPTY)
    check_not_empty(s.but(allow_empty=True), "awarding:ATF", Window(date(2019, 2, 1), date(2019, 2, 28)), empty)


# ---------------------------------------------------------------- 3. replica lag, cached jobs


def test_a_first_status_404_is_polled_again_in_place(tmp_path):
    """usaspending_api/download/v2/download_status.py reads a read replica that can lag the job table: a new
    job's first polls may answer 404. They are retried in place with a short backoff, without a new request."""
    with FakeUSAspending([row(last_modified_date="2019-03-02 10:00:00")], lagging_polls=3, polls_until_finished=1) as api:
        sleeps: list[float] = []
        job = download(api, sleeps)
        job.fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path)
        polled = [p for m, p, _ in api.requests if p.startswith(STATUS)]
    assert len(posts(api)) == 1
    assert sleeps[:3] == list(usaspending.LAG_WAITS[:3]) and len(polled) == 5


def test_a_404_that_lasts_is_one_permanent_error_after_about_a_minute(tmp_path):
    """download_status.py: NotFound "Download job with filename ... does not exist." Past the bounded wait (about
    60 s in all) it is one line, and permanent: a Prefect task retry would only wait longer for the same answer."""
    with FakeUSAspending([row()], lagging_polls=1000) as api:
        sleeps: list[float] = []
        with pytest.raises(PermanentHttpError, match=r"still answers 404 \(job not found\) \d+ s after the request") as info:
            download(api, sleeps).fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path)
    assert 50 <= sum(sleeps) <= 70 and len(sleeps) == len(usaspending.LAG_WAITS)
    assert "\n" not in str(info.value)


def test_an_identical_request_returns_the_cached_job():
    """usaspending_api/download/v2/base_download_viewset.py (_get_cached_download): the same normalised request,
    with no data loaded since, returns the newest job that did not fail."""
    body = {"filters": {"prime_award_types": ["A"], "date_type": "action_date", "date_range": {"start_date": "2019-01-01", "end_date": "2019-01-31"},
                        "agencies": [{"type": "awarding", "tier": "toptier", "name": "Department of Homeland Security"}]}}
    with FakeUSAspending([row()]) as api, httpx.Client(base_url=api.url) as client:
        first, again = (client.post(AWARDS + "/", json=body).json()["file_name"] for _ in range(2))
        other = client.post(AWARDS + "/", json={**body, "filters": {**body["filters"], "prime_award_types": ["A", "B"]}}).json()["file_name"]
        api.data_loaded()
        after_load = client.post(AWARDS + "/", json=body).json()["file_name"]
    assert first == again and other != first and after_load != first


# ---------------------------------------------------------------- 4. total_rows


def test_rows_landed_must_equal_total_rows(tmp_path):
    """api_contracts/contracts/v2/bulk_download/status.md: a finished status announces total_rows (counted with
    csv.reader, common/csv_helpers.py). A landed ZIP with another count is refused, naming both, and removed."""
    rows = [row(piid=f"P{i}", last_modified_date="2019-03-02 10:00:00", transaction_description="two\nlines") for i in range(3)]
    with FakeUSAspending(rows, polls_until_finished=0) as api:
        assert download(api).fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path / "ok").exists()
        api.data_loaded()  # not the cached job
        api.misreport_rows = 2
        with pytest.raises(DownloadMismatch, match=r"hold 3 data rows but the download status announced total_rows 5; nothing of it was loaded"):
            download(api).fetch(registry.resolve(["ICE"]), date(2019, 3, 1), date(2019, 3, 31), tmp_path / "bad")
    assert not any((tmp_path / "bad").iterdir())


class _Trickle(io.BytesIO):
    def read(self, n: int = -1) -> bytes:  # a few bytes at a time: quotes and newlines straddle chunks
        return super().read(3)


@pytest.mark.parametrize("text", [
    'a,b\n1,"x\ny"\n2,"say ""hi""\n"\n',
    'a,b\r\n1,2\r\n3,"4\r\n5"\r\n',
    'a,b\n1,2',  # no line end after the last record
    'a,b\n',
    '',
])
def test_zip_rows_counts_records_as_csv_reader_does(tmp_path, text):
    """usaspending_api/common/csv_helpers.py count_rows_in_delimited_file: csv.reader records less the header."""
    expected = max(sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1, 0)
    assert max(usaspending._records(_Trickle(text.encode())) - 1, 0) == expected
    path = tmp_path / "z.zip"
    path.write_bytes(zip_bytes({"p_1.csv": text.encode(), "p_2.csv": text.encode(), "Data_Dictionary.xlsx": b"\n\n\n"}))
    assert usaspending.zip_rows(path) == 2 * expected


# ---------------------------------------------------------------- 6. Delta deletions


def test_delta_deletions_are_dated_by_day_and_remove_only_older_rows(tmp_path, sql_at):
    """populate_monthly_delta_files.py (organize_deletion_columns) writes a date-only last_modified_date on D rows;
    the broker (dataactcore/scripts/pipeline/pull_fpds_data.py get_delete_data) deletes only when the deletion is
    newer than the stored row. Date-only counts as midnight: rows modified before that day go, on or after it stay."""
    stored = {"OLD": "2024-08-07 23:59:59", "SAME": "2024-08-08 10:00:00", "MIDNIGHT": "2024-08-08 00:00:00", "NEWER": "2024-08-09 08:00:00"}
    full = [row(piid=p, last_modified_date=lmd) for p, lmd in stored.items()]
    delta = [deletion_row(f"7012_-NONE-_{p}_0_-NONE-_0", "2024-08-08") for p in stored]
    wh = tmp_path / "w.duckdb"
    for stem, rows, is_delta in [("FY2024_070_Contracts_Full_20240801", full, False), ("FY(All)_070_Contracts_Delta_20240808", delta, True)]:
        path = tmp_path / f"{stem}.zip"
        path.write_bytes(write_archive_zip(rows, delta=is_delta, member=f"{stem}_1.csv"))
        ingest([path], warehouse=wh, source="archive")
    assert sorted(p for (p,) in sql_at(wh, "SELECT award_id_piid FROM transactions")) == ["MIDNIGHT", "NEWER", "SAME"]
    logged = sql_at(wh, "SELECT split_part(contract_transaction_unique_key, '_', 3), applied, last_modified_date FROM deletions ORDER BY 1")
    assert logged == [("MIDNIGHT", False, datetime(2024, 8, 8)), ("NEWER", False, datetime(2024, 8, 8)),
                      ("OLD", True, datetime(2024, 8, 8)), ("SAME", False, datetime(2024, 8, 8))]


def test_delta_deletion_dates_parse_in_both_forms():
    """populate_monthly_delta_files.py writes '%Y-%m-%d'; older Delta files carry '%Y-%m-%d %H:%M:%S'."""
    import polars as pl

    got = pl.DataFrame({"d": ["2024-08-08", "2024-08-08 10:11:12", "", "2024/08/08"]}).select(_deletion_date(pl.col("d"))).to_series()
    assert got.to_list() == [datetime(2024, 8, 8), datetime(2024, 8, 8, 10, 11, 12), None, None]


# ---------------------------------------------------------------- 10. last_modified_date windows end at midnight


def _piids(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return {r["award_id_piid"] for n in zf.namelist() for r in csv.DictReader(io.StringIO(zf.read(n).decode()))}


def test_the_fake_excludes_the_end_day_of_a_last_modified_range():
    """usaspending_api/awards/v2/filters/filter_helpers.py: last_modified_date (a timestamp) <= end date, i.e. end 00:00."""
    rows = [row(piid="MIDNIGHT", last_modified_date="2019-03-31 00:00:00"), row(piid="MORNING", last_modified_date="2019-03-31 06:00:00"),
            row(piid="FIRST", last_modified_date="2019-03-01 00:00:00"), row(piid="ACTION", action_date="2019-03-31")]
    body = {"filters": {"prime_award_types": ["D"], "date_type": "last_modified_date",
                        "date_range": {"start_date": "2019-03-01", "end_date": "2019-03-31"},
                        "agencies": [{"type": "awarding", "tier": "toptier", "name": "Department of Homeland Security"}]}}
    with FakeUSAspending(rows, polls_until_finished=0, lagging_polls=0) as api, httpx.Client(base_url=api.url) as client:
        name = client.post(AWARDS + "/", json=body).json()["file_name"]
        assert client.get(STATUS + "/", params={"file_name": name}).json()["total_rows"] == 2  # FIRST, MIDNIGHT
        by_action = {**body, "filters": {**body["filters"], "date_type": "action_date"}}
        name = client.post(AWARDS + "/", json=by_action).json()["file_name"]
        assert client.get(STATUS + "/", params={"file_name": name}).json()["total_rows"] == 1  # ACTION: dates are inclusive


def test_split_last_modified_windows_miss_nothing_on_their_last_days(tmp_path):
    """filter_helpers.py excludes the end day after midnight, so each window by last_modified_date asks for one day
    more than it covers: a catch-up split into windows reads every row modified on an inner window's last day."""
    days = [date(2019, 3, d) for d in range(1, 11)]
    rows = [row(piid=f"D{d.day:02d}", last_modified_date=f"{d} 18:00:00") for d in days]
    with FakeUSAspending(rows, polls_until_finished=0) as api:
        spans = usaspending.windows(days[0], days[-1], 3)
        got = set()
        for i, (a, b) in enumerate(spans):
            got |= _piids(download(api).fetch(registry.resolve(["ICE"]), a, b, tmp_path / str(i)))
        asked = [b["filters"]["date_range"] for b in posts(api)]
    assert got == {r["award_id_piid"] for r in rows}
    assert asked[0] == {"start_date": "2019-03-01", "end_date": "2019-03-04"} and len(spans) == 4


# ---------------------------------------------------------------- 11. 366 days


def test_the_range_limit_counts_as_upstream():
    """usaspending_api/download/v2/request_validations.py with request_validations_helpers.get_date_range_length:
    (end - start).days > 366 is refused, so by action date a window may hold 367 days (ends inclusive), and by
    last-modified date 366 (its request ends a day later)."""
    by_action = usaspending.windows(date(2019, 10, 1), date(2021, 9, 30), date_type="action_date")
    by_lmd = usaspending.windows(date(2019, 10, 1), date(2021, 9, 30))
    assert by_action[0] == (date(2019, 10, 1), date(2020, 10, 1)) and (by_action[0][1] - by_action[0][0]).days == 366
    assert (by_lmd[0][1] - by_lmd[0][0]).days == 365
    with FakeUSAspending([]) as api:
        job = download(api)
        for a, b in by_action:
            job.request(registry.resolve(["ICE"]), a, b, "action_date")  # each accepted by the fake (same rule)
        for a, b in by_lmd:
            job.request(registry.resolve(["ICE"]), a, b, "last_modified_date")
        sent = len(posts(api))
        with pytest.raises(InputError, match=r"\(end - start\)\.days > 366"):
            job.request(registry.resolve(["ICE"]), date(2019, 10, 1), date(2020, 10, 2), "action_date")
        with pytest.raises(InputError, match="2019-10-01..2020-10-02 is longer"):
            job.request(registry.resolve(["ICE"]), date(2019, 10, 1), date(2020, 10, 1), "last_modified_date")
        assert len(posts(api)) == sent == len(by_action) + len(by_lmd)


def check_not_empty(s: Settings, scope: str, window: Window, path: Path) -> None:
    """``BulkDownloads.check`` of one landed backfill chunk, on a connection of its own."""
    con = db.connect(s.warehouse)
    try:
        usaspending.BulkDownloads(s).check(con, Scope(scope), window, Landed([path]), BACKFILL)
    finally:
        con.close()
