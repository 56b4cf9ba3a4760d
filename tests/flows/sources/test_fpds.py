"""FPDS ATOM source against a local feed server: paging, counts, deletions, hostile XML, one row per action."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from awardwatch.flows import settings as config
from awardwatch.flows.sources.base import NIGHTLY, Window
from awardwatch.flows.sources.fpds import AtomFeed
from awardwatch.schemas import agencies as registry
from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.sources import fpds
from awardwatch.flows.sources.http import Http
from awardwatch.schemas.errors import InputError
from tests.paths import SHARED
from tests.factories import row, write_csv
from tests.servers.fpds import FakeFPDS, Record

SAMPLES = SHARED / "samples" / "fpds_atom"
DAY = date(2018, 3, 6)


def settings(api: FakeFPDS, tmp_path: Path) -> config.Settings:
    return config.load({}).but(warehouse=tmp_path / "w.duckdb", fpds_url=api.url, http_backoff=0.0, http_attempts=2)


def window(start: date = DAY, end: date = DAY) -> Window:
    return Window(start, end)


def records(n: int, day: date = DAY, prefix: str = "70CMSD18C") -> list[Record]:
    return [Record(piid=f"{prefix}{i:08d}", amount=f"{100 + i}.00", last_modified=f"{day} 10:00:00") for i in range(n)]


def test_a_multi_page_window_loads_completely(tmp_path, sql):
    with FakeFPDS(records(25) + records(3, prefix="70B04C18C") ) as api:
        path = extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "landing")
        public = [r for r in api.requests if "FEEDNAME=PUBLIC" in r]
    assert sum("start=10" in r for r in public) == 1 and sum("start=20" in r for r in public) == 1
    result = ingest([path], warehouse=tmp_path / "wh" / "awardwatch.duckdb", source="fpds")
    assert (result.counts.read, result.counts.inserted, result.counts.reconciled) == (28, 28, True)
    assert sql("SELECT count(*), sum(federal_action_obligation), min(source) FROM transactions") == [(28, sum(100 + i for i in range(25)) + sum(100 + i for i in range(3)), "fpds")]
    (file, entry), = sql("SELECT source_file, source_row FROM transactions WHERE award_id_piid = '70CMSD18C00000012'")
    assert "FEEDNAME=PUBLIC" in file and "start=10" in file and entry == 3


def test_deleted_feed_removes_the_action(tmp_path, sql):
    wh = tmp_path / "wh" / "awardwatch.duckdb"
    with FakeFPDS(records(3)) as api:
        ingest([extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "l1")], warehouse=wh, source="fpds")
        api.records = []
        gone = records(1)[0]
        gone.last_modified = f"{DAY + timedelta(days=1)} 08:00:00"
        api.deleted = [gone]
        path = extract_fpds(settings(api, tmp_path), ["ICE"], window(DAY, DAY + timedelta(days=1)), tmp_path / "l2")
    result = ingest([path], warehouse=wh, source="fpds")
    assert (result.counts.read, result.counts.deleted, result.counts.reconciled) == (1, 1, True)
    assert sql("SELECT count(*) FROM transactions") == [(2,)]
    (key, applied, file), = sql("SELECT contract_transaction_unique_key, applied, source_file FROM deletions")
    assert key == "7012_-NONE-_70CMSD18C00000000_0_-NONE-_0" and applied and "FEEDNAME=DELETED" in file


def test_a_count_that_moves_while_paging_fails_the_window(tmp_path):
    with FakeFPDS(records(20), drift=Record(piid="70CMSD18C99999999", last_modified=f"{DAY} 11:00:00")) as api:
        with pytest.raises(fpds.CountMismatch, match=r"last page moved from start=10 to 20 while paging; run again"):
            extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "landing")


def test_entries_that_disappear_while_paging_fail_the_count(tmp_path):
    with FakeFPDS(records(25)) as api:
        s = settings(api, tmp_path)
        api.payloads[10] = __import__("tests.servers.fpds", fromlist=["page_xml"]).page_xml(records(4), {})
        with pytest.raises(fpds.CountMismatch, match=r"read 19 entries but the feed announced 25"):
            extract_fpds(s, ["ICE"], window(), tmp_path / "landing")


def test_a_window_over_the_cap_is_split(tmp_path):
    rows = records(15, DAY) + records(15, DAY + timedelta(days=1), prefix="70CMSD18F")
    with FakeFPDS(rows, cap=20) as api:
        feed = fpds.FpdsFeed(Http(base_url=api.url, backoff=0, attempts=1), api.url, cap=20)
        pages, total = feed.query("CONTRACTING_AGENCY_ID:7012", "AWARD", "Definitive Contract", DAY, DAY + timedelta(days=1),
                                  tmp_path / "l")
    assert total == 30 and len(pages) == 4


def test_an_xxe_payload_is_refused(tmp_path):
    evil = b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>'
    with FakeFPDS(records(2)) as api:
        api.payloads[0] = evil
        with pytest.raises(InputError, match="refusing XML with a DTD or entity declaration") as info:
            extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "landing")
    assert "root:" not in str(info.value)


def test_an_unmappable_entry_is_quarantined_with_page_and_position(tmp_path, sql):
    broken = records(2)
    broken[1].piid = ""
    with FakeFPDS(broken) as api:
        path = extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "landing")
    result = ingest([path], warehouse=tmp_path / "wh" / "awardwatch.duckdb", source="fpds", max_rejected_share=1)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    (file, entry, reasons), = sql("SELECT source_file, source_row, reasons FROM quarantine")
    assert "FEEDNAME=PUBLIC" in file and entry == 2
    assert reasons[0].startswith("FPDS entry:") and "PIID" in reasons[0]


def test_the_same_action_from_fpds_then_usaspending_is_one_row(tmp_path, sql):
    wh = tmp_path / "wh" / "awardwatch.duckdb"
    action = Record(piid="70CMSD18C00000077", amount="39000000.00", last_modified="2018-03-06 10:00:00")
    with FakeFPDS([action]) as api:
        ingest([extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "l")], warehouse=wh, source="fpds")
    later = row(piid="70CMSD18C00000077", amount="39000000.00", last_modified_date="2018-03-09 00:00:00")
    result = ingest([write_csv(tmp_path / "usaspending.csv", [later])], warehouse=wh)
    assert (result.counts.inserted, result.counts.updated) == (0, 1)
    assert sql("SELECT count(*), min(source) FROM transactions") == [(1, "file")]


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared/samples not beside the clone")
def test_real_sample_pages_load(tmp_path, sql):
    full = (SAMPLES / "fpds_pkg_full_response_gsa4740_page.xml").read_bytes()
    last = (SAMPLES / "fpds_pkg_truncated_response_gsa4740.xml").read_bytes()
    with FakeFPDS(fixed_pages={0: full, 10: full, 20: last}, fixed_for='AWARD_TYPE:"Definitive Contract"') as api:
        path = extract_fpds(settings(api, tmp_path), ["ICE"], window(), tmp_path / "landing")
    result = ingest([path], warehouse=tmp_path / "wh" / "awardwatch.duckdb", source="fpds", max_rejected_share=1)
    assert result.counts.read == 21  # one query's 21 entries; the other 8 PUBLIC and 2 DELETED queries are empty
    assert result.counts.reconciled


def extract_fpds(s: config.Settings, agencies: list[str], window: Window, into: Path) -> Path:
    """One nightly window of the FPDS feed, landed (``AtomFeed.land``)."""
    feed = AtomFeed(s)
    (scope,) = feed.scopes(registry.resolve(agencies))
    (path,) = feed.land(scope, window, into, NIGHTLY).paths
    return path
