"""awardwatch.flows.core.feeds: one loop for nightly and backfill over the registered feeds, on one connection, without Prefect."""

from __future__ import annotations

import sys
import textwrap
from datetime import date

import pytest

from awardwatch.flows import settings as config
from awardwatch.flows import sources
from awardwatch.flows.core import connect
from awardwatch.flows.core.feeds import run_feeds
from awardwatch.flows.core.jobs import check_job
from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.sources.base import BACKFILL, NIGHTLY
from awardwatch.flows.sources.sample import write_transactions
from awardwatch.schemas.errors import UsageError

TABLES = ("transactions", "awards", "recipients", "brand_mentions", "company_agency_fiscal_year")


def job(s, mode, names, **kw):
    con = connect(s)
    try:
        return run_feeds(con, s, mode, names, **kw)
    finally:
        con.close()


def rows_of(sql_at, wh, table):
    return sql_at(wh, f"SELECT * EXCLUDE (source, source_file, run_id, loaded_at) FROM {table} ORDER BY ALL"
                  if table == "transactions" else f"SELECT * FROM {table} ORDER BY ALL")


def test_a_sample_backfill_loads_each_month_once_and_equals_ingesting_the_same_files(tmp_path, sql_at):
    s = config.load({}).but(warehouse=tmp_path / "a" / "w.duckdb", sample_rows=300)
    first = job(s, BACKFILL, ["sample"], start=date(2018, 1, 1), end=date(2018, 3, 31))
    assert [r.counts.read for r in first.results] == [300, 300, 300]
    assert first.done[0].windows == ["2018-01-01..2018-01-31", "2018-02-01..2018-02-28", "2018-03-01..2018-03-31"]
    again = job(s, BACKFILL, ["sample"], start=date(2018, 1, 1), end=date(2018, 3, 31))
    assert again.results == [] and len(again.done[0].skipped) == 3
    # the same three files, one ingest each, into another warehouse: the same tables
    other = tmp_path / "b" / "w.duckdb"
    for start, end in [(date(2018, 1, 1), date(2018, 1, 31)), (date(2018, 2, 1), date(2018, 2, 28)), (date(2018, 3, 1), date(2018, 3, 31))]:
        path = write_transactions(tmp_path / f"{start}.csv", 300, seed=2018 + start.toordinal(), start=start, end=end)
        ingest([path], warehouse=other)
    for table in TABLES:
        assert rows_of(sql_at, s.warehouse, table) == rows_of(sql_at, other, table), table
    assert sql_at(s.warehouse, "SELECT count(*), count(DISTINCT status) FROM backfill_chunks") == [(3, 1)]


TOY = '''
    """A feed written for this test: one module and one registry line."""
    from datetime import date
    from pathlib import Path

    from awardwatch.flows.sources.base import NIGHTLY, Feed, Landed, Scope, Window
    from awardwatch.flows.sources.sample import write_transactions


    class ToyFeed(Feed):
        name = "toy"

        def scopes(self, chosen):
            return [Scope("toy:" + ",".join(sorted(a.abbreviation for a in chosen)), tuple(chosen))]

        def land(self, scope, window, into, mode):
            path = write_transactions(into / f"toy_{window.start}.csv", 50, seed=window.start.toordinal(),
                                      start=window.start, end=window.end)
            return Landed([path], window.end if mode == NIGHTLY else None, [path.name])
'''


def test_a_new_feed_is_one_module_and_one_registry_line(tmp_path, monkeypatch, sql_at):
    (tmp_path / "toyfeed.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sources.FEEDS, "toy", "toyfeed:ToyFeed")  # the registry line
    s = config.load({"AWARDWATCH_SOURCES": "toy"}).but(warehouse=tmp_path / "w.duckdb", agencies=("ICE",))
    first = job(s, NIGHTLY, list(s.sources))
    assert first.results[0].counts.inserted == 50
    assert first.done[0].notes and "had no watermark" in first.done[0].notes[0] and "awardwatch backfill --source toy" in first.done[0].notes[0]
    assert sql_at(s.warehouse, "SELECT source, scope FROM watermarks") == [("toy", "toy:ICE")]
    second = job(s, NIGHTLY, ["toy"])
    assert second.done[0].notes == []  # the watermark is there now
    sys.modules.pop("toyfeed", None)


@pytest.mark.parametrize(("mode", "names", "agencies", "start", "end", "message"), [
    (NIGHTLY, ["nope"], None, None, None, "unknown source(s) nope; known: usaspending, archive, fpds, sample"),
    (NIGHTLY, ["usaspending"], ["FOO"], None, None, "unknown agency 'FOO'"),
    (BACKFILL, ["usaspending"], None, date(2018, 3, 1), date(2018, 1, 1), "--end 2018-01-01 is before --start 2018-03-01"),
])
def test_bad_job_arguments_are_one_line_usage_errors(mode, names, agencies, start, end, message):
    with pytest.raises(UsageError) as info:
        check_job(config.load({}), mode, names, agencies, start, end)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_job_stopped_before_its_company_refresh_is_not_published(tmp_path):
    from awardwatch.flows.core import ingest as loading
    from awardwatch.flows.core.publish import publish
    from awardwatch.warehouse.snapshots import UnfinishedRun

    s = config.load({}).but(warehouse=tmp_path / "w.duckdb")
    path = write_transactions(tmp_path / "a.csv", 100, seed=1, start=date(2018, 1, 1), end=date(2018, 1, 31))
    con = connect(s)
    try:
        loading.run(con, [path], warehouse=s.warehouse)  # the job "stops" here: no settle
    finally:
        con.close()
    with pytest.raises(UnfinishedRun, match="never refreshed.*awardwatch report resolve"):
        publish(s.warehouse, s.snapshots)
    ingest([write_transactions(tmp_path / "b.csv", 10, seed=2, start=date(2018, 2, 1), end=date(2018, 2, 28))],
           warehouse=s.warehouse)  # the next job settles what the stopped one left
    assert publish(s.warehouse, s.snapshots).published
