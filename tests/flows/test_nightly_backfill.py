"""Prefect flows (nightly, backfill, ingest) under one Prefect test harness, against local servers."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
import yaml

from awardwatch.flows.sources import usaspending
from awardwatch.warehouse import runs
from awardwatch.schemas.errors import AwardwatchError
from tests.paths import ROOT
from tests.factories import row, write_csv
from tests.servers.usaspending import FakeUSAspending

pytestmark = pytest.mark.prefect


@pytest.fixture
def env(tmp_path, monkeypatch, prefect_harness):
    """Settings for a flow run: a temporary warehouse and snapshot folder, no waiting between polls."""
    for name, value in {
        "AWARDWATCH_HOME": str(tmp_path / "home"),
        "AWARDWATCH_POLL_SECONDS": "0",
        "AWARDWATCH_HTTP_BACKOFF": "0",
        "AWARDWATCH_TASK_RETRIES": "0",
        "AWARDWATCH_AGENCIES": "ICE,CBP",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWARDWATCH_WAREHOUSE", raising=False)
    monkeypatch.delenv("AWARDWATCH_SNAPSHOT_URL", raising=False)
    return tmp_path / "home"


def changed_today(n: int, prefix: str = "70CMSD20C") -> list[dict]:
    today = runs.now().date()
    return [row(piid=f"{prefix}{i:08d}", amount=f"{100 + i}.00", action_date="2020-01-15", last_modified_date=f"{today} 06:00:00") for i in range(n)]


def test_nightly_loads_advances_the_watermark_and_publishes(env, monkeypatch, sql_at):
    from awardwatch.flows.nightly import nightly

    with FakeUSAspending(changed_today(5)) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        first = nightly()
        second = nightly()
    assert first["counts"]["inserted"] == 5 and first["counts"]["reconciled"]
    assert first["sources"]["usaspending"]["watermark"] == runs.now().date().isoformat()
    assert first["snapshot_id"]
    assert (second["counts"]["inserted"], second["counts"]["updated"], second["counts"]["unchanged"]) == (0, 0, 5)
    assert "nothing changed" in second["snapshot"]
    wh = env / "awardwatch.duckdb"
    assert sql_at(wh, "SELECT source, scope, value::DATE FROM watermarks") == [("usaspending", "awarding:CBP,ICE", runs.now().date())]
    assert sql_at(wh, "SELECT count(*), count(DISTINCT source_file) FROM transactions") == [(5, 1)]
    assert sql_at(wh, "SELECT snapshot_id FROM runs WHERE command = 'run' ORDER BY started_at") == [(first["snapshot_id"],), (None,)]
    assert not (env / "landing" / "usaspending").exists() or not any((env / "landing" / "usaspending").iterdir())


def test_a_first_nightly_logs_counts_makes_a_table_artifact_and_says_to_backfill(env, monkeypatch):
    """The flow run's log carries the stages and each file's counts; the counts are a table artifact; a scope
    with no watermark gets a note (in the result and the summary artifact) naming the backfill to run."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId

    from awardwatch.flows.nightly import nightly

    with FakeUSAspending(changed_today(4)) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        state = nightly(return_state=True)
    result = state.result()
    assert len(result["notes"]) == 1 and "awardwatch backfill --source usaspending --agency ICE --agency CBP" in result["notes"][0]

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
            keys = ["nightly-counts", "nightly-summary"]
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)), sort="CREATED_DESC")
            return [entry.message for entry in logs], {a.key: a for a in reversed(found)}

    messages, artifacts = asyncio.run(read())
    for _ in range(100):  # logs reach the API in batches, in the background: until the flow's last lines are there
        if any("had no watermark" in m for m in messages):
            break
        time.sleep(0.2)
        messages, artifacts = asyncio.run(read())
    assert any(m.startswith("landing usaspending awarding:CBP,ICE ") for m in messages), messages
    assert any(": read 4 = inserted 4 + updated 0 + unchanged 0 + duplicates 0 + quarantined 0 + deleted 0" in m for m in messages), messages
    assert any("had no watermark" in m for m in messages)
    table = artifacts["nightly-counts"]
    assert table.type == "table" and '"inserted": 4' in str(table.data)
    assert "**Note:**" in artifacts["nightly-summary"].data and "awardwatch backfill" in artifacts["nightly-summary"].data


def test_failed_nightly_leaves_the_watermark_where_it_was(env, monkeypatch, sql_at):
    from awardwatch.flows.nightly import nightly

    with FakeUSAspending(changed_today(3)) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        nightly()
        api.transactions.extend(changed_today(2, prefix="70CMSD20F"))
        api.fail_job("Database timeout")
        with pytest.raises(AwardwatchError, match="Database timeout"):
            nightly()
    wh = env / "awardwatch.duckdb"
    assert sql_at(wh, "SELECT count(*) FROM transactions") == [(3,)]
    assert sql_at(wh, "SELECT value::DATE, run_id = (SELECT min(run_id) FROM runs) FROM watermarks") == [(runs.now().date(), True)]


def months_of_rows() -> list[dict]:
    rows = []
    for month in (1, 2, 3):
        for i in range(4):
            rows.append(row(piid=f"70CMSD19C{month:02d}{i:06d}", amount=f"{month}{i}.50", action_date=f"2019-{month:02d}-{10 + i}",
                            last_modified_date=f"2019-{month:02d}-{20 + i} 08:00:00"))
    return rows


def test_interrupted_backfill_resumes_without_reloading_finished_chunks(env, monkeypatch, sql_at, tmp_path):
    from awardwatch.flows.backfill import backfill

    real = usaspending.BulkDownloads.land

    def crash_in_march(self, scope, window, into, mode):
        if window.start.month == 3:
            raise AwardwatchError("injected: the machine went down during the March chunk")
        return real(self, scope, window, into, mode)

    with FakeUSAspending(months_of_rows()) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        monkeypatch.setattr(usaspending.BulkDownloads, "land", crash_in_march)
        with pytest.raises(AwardwatchError, match="March chunk"):
            backfill(start=date(2019, 1, 1), end=date(2019, 3, 31), concurrency=1)
        monkeypatch.setattr(usaspending.BulkDownloads, "land", real)
        asked_before = len(api.requests)
        result = backfill(start=date(2019, 1, 1), end=date(2019, 3, 31), concurrency=2)
        ranges = [b["filters"]["date_range"] for _, p, b in api.requests[asked_before:] if p.startswith("/api/v2/bulk_download/awards")]
        # an uninterrupted run of the same backfill into another warehouse
        monkeypatch.setenv("AWARDWATCH_HOME", str(tmp_path / "clean"))
        clean = backfill(start=date(2019, 1, 1), end=date(2019, 3, 31))
    assert ranges == [{"start_date": "2019-03-01", "end_date": "2019-03-31"}]
    assert result["sources"]["usaspending"]["skipped"] == ["2019-01-01..2019-01-31", "2019-02-01..2019-02-28"]
    query = "SELECT contract_transaction_unique_key, federal_action_obligation FROM transactions ORDER BY 1"
    resumed = sql_at(env / "awardwatch.duckdb", query)
    assert len(resumed) == 12
    assert resumed == sql_at(tmp_path / "clean" / "awardwatch.duckdb", query)
    assert clean["counts"]["inserted"] == 12
    assert sql_at(env / "awardwatch.duckdb", "SELECT count(*) FROM backfill_chunks") == [(3,)]


def test_ingest_flow_publishes_an_artifact(env, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("AWARDWATCH_MAX_REJECTED", "1")
    from awardwatch.flows.ingest import ingest_flow

    f = write_csv(tmp_path / "a.csv", [row(), row(piid="BAD", action_date="x")])
    out = ingest_flow([str(f)], warehouse=str(tmp_path / "w.duckdb"))
    assert (out["read"], out["inserted"], out["quarantined"], out["reconciled"]) == (2, 1, 1, True)

    async def latest_artifact():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-summary"])))
            return found[-1].data

    import asyncio

    assert "Reconciliation" in asyncio.run(latest_artifact())


def test_prefect_yaml_deployments_load_and_point_at_flows():
    from prefect.flows import Flow, load_flow_from_entrypoint

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"]: d for d in config["deployments"]}
    assert set(names) == {"nightly", "backfill", "backfill-dask"}
    for d in config["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        assert isinstance(flow, Flow)
        assert d["concurrency_limit"]["limit"] == 1
        assert d["work_pool"]["name"] == "awardwatch"
    schedule = names["nightly"]["schedules"][0]
    assert schedule["timezone"] == "America/New_York"
    hour = int(schedule["cron"].split()[1])
    assert not 2 <= hour < 3  # outside the daylight-saving gap
    assert config["pull"], "explicit pull steps"
    for name in ("backfill", "backfill-dask"):
        flow = load_flow_from_entrypoint(str(ROOT / names[name]["entrypoint"]))
        assert set(names[name]["parameters"]) <= set(flow.parameters.properties)
    assert set(names["backfill-dask"]["job_variables"]["env"]) == {"AWARDWATCH_DASK_ADDRESS", "AWARDWATCH_STAGING_URL"}


def test_archive_full_backfill_then_nightly_delta_applies_corrections_and_deletions(env, monkeypatch, sql_at):
    from awardwatch.flows.backfill import backfill
    from awardwatch.flows.nightly import nightly
    from tests.servers.usaspending import write_archive_zip

    full = [row(piid=f"HSCEMD18C{i:05d}", amount="100.00", action_date="2018-01-15") for i in range(4)]
    key = "7012_-NONE-_HSCEMD18C{:05d}_0_-NONE-_0"
    delta = [
        {"correction_delete_ind": "D", "agency_id": "7012", "award_id_piid": "HSCEMD18C00000", "modification_number": "0",
         "transaction_number": "0", "contract_transaction_unique_key": key.format(0), "last_modified_date": "2024-08-08 00:00:00"},
        {**row(piid="HSCEMD18C00001", amount="175.00", action_date="2018-01-15", last_modified_date="2024-08-01 00:00:00"),
         "correction_delete_ind": "C", "agency_id": "7012"},
        {**row(piid="HSCEMD18C00009", amount="50.00", action_date="2018-02-01"), "correction_delete_ind": "", "agency_id": "7012"},
    ]
    with FakeUSAspending([]) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        files = {"FY2018_070_Contracts_Full_20240708.zip": (write_archive_zip(full, member="FY2018_070_Contracts_Full_20240708_1.csv"), 2018),
                 "FY(All)_070_Contracts_Delta_20240808.zip": (write_archive_zip(delta, delta=True, member="FY(All)_070_Contracts_Delta_20240808_1.csv"), None)}
        for name, (data, fy) in files.items():
            api.archive_files[name] = data
            api.monthly_files.append({"agency_name": "Department of Homeland Security", "agency_acronym": "DHS", "agency_id": 562,
                                      "file_name": name, "fiscal_year": fy, "type": "contracts", "updated_date": "2024-08-08",
                                      "url": api.archive_url(name)})
        first = backfill(start=date(2017, 10, 1), end=date(2018, 9, 30), agencies=["DHS"], source="archive")
        second = nightly(sources=["archive"], agencies=["DHS"])
        third = nightly(sources=["archive"], agencies=["DHS"])
    wh = env / "awardwatch.duckdb"
    assert first["counts"]["inserted"] == 4
    assert first["sources"]["archive"]["watermark"] == "2024-07-08"
    c = second["counts"]
    assert (c["read"], c["deleted"], c["updated"], c["inserted"], c["reconciled"]) == (3, 1, 1, 1, True)
    assert second["sources"]["archive"]["watermark"] == "2024-08-08"
    assert third["runs"] == []  # no Delta file newer than the watermark
    assert sql_at(wh, "SELECT count(*) FROM transactions") == [(4,)]
    assert sql_at(wh, "SELECT federal_action_obligation FROM transactions WHERE award_id_piid = 'HSCEMD18C00001'")[0][0] == 175
    assert sql_at(wh, "SELECT contract_transaction_unique_key, applied, source FROM deletions") == [(key.format(0), True, "archive")]
    assert sql_at(wh, "SELECT count(*) FROM awards WHERE award_id_piid = 'HSCEMD18C00000'") == [(0,)]


def test_nightly_fpds_loads_pages_applies_deletions_and_advances_the_watermark(env, monkeypatch, sql_at):
    from awardwatch.flows.nightly import nightly
    from tests.servers.fpds import FakeFPDS, Record

    today = runs.now().date()
    actions = [Record(piid=f"70CMSD20C{i:08d}", last_modified=f"{today} 07:00:00") for i in range(23)]
    with FakeFPDS(actions) as feed:
        monkeypatch.setenv("AWARDWATCH_FPDS_URL", feed.url)
        first = nightly(sources=["fpds"], agencies=["ICE"])
        feed.deleted = [Record(piid="70CMSD20C00000000", last_modified=f"{today} 09:00:00")]
        second = nightly(sources=["fpds"], agencies=["ICE"])
    wh = env / "awardwatch.duckdb"
    assert (first["counts"]["inserted"], first["counts"]["reconciled"]) == (23, True)
    assert first["sources"]["fpds"]["watermark"] == today.isoformat()
    assert (second["counts"]["deleted"], second["counts"]["unchanged"]) == (1, 23)
    assert sql_at(wh, "SELECT count(*) FROM transactions") == [(22,)]
    assert sql_at(wh, "SELECT source, scope, value::DATE FROM watermarks") == [("fpds", "contracting:ICE", today)]


def test_nightly_reconciles_before_publishing_and_says_what_differs(env, monkeypatch, sql_at):
    """Issue 15.3: the nightly compares the agencies it loaded with USAspending's published totals
    (api_contracts/contracts/v2/search/spending_over_time.md, spending_by_transaction_count.md); a
    mismatch does not block the publish, but the run, the summary and the manifest carry it."""
    from awardwatch.flows.nightly import nightly
    from tests.servers.usaspending_search import Plant

    plant = Plant("U.S. Immigration and Customs Enforcement", 2020, obligations=250.0)
    with FakeUSAspending(changed_today(3), search_plants=[plant]) as api:
        monkeypatch.setenv("AWARDWATCH_USASPENDING_URL", api.url)
        result = nightly()
    assert result["snapshot_id"]
    checked = result["reconciliation"]
    assert checked["ok"] is False and "1 of 1 agency-years differ" in checked["summary"]
    (bad,) = [r for r in checked["rows"] if r["status"] == "mismatch"]
    assert (bad["agency_code"], bad["fiscal_year"], str(bad["obligations_difference"])) == ("7012", 2020, "-250.00")
    wh = env / "awardwatch.duckdb"
    assert sql_at(wh, "SELECT reconciliation FROM runs WHERE command = 'run'") == [(checked["verdict"],)]
    manifest = json.loads(next((env / "snapshots" / "snapshots").glob("*/manifest.json")).read_text())
    assert manifest["reconciliation"]["ok"] is False
    assert [(r["agency_code"], r["fiscal_year"], r["status"]) for r in manifest["reconciliation"]["rows"]] == [("7012", 2020, "mismatch")]
    assert result["status"]["problems"] and any(p["kind"] == "reconciliation" for p in result["status"]["problems"])
