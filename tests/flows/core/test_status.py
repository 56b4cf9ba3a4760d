"""`awardwatch status`: stale sources, unfinished backfill months and missing Award Data Archive Delta
months (the listing follows usaspending-api download/v2/list_monthly_downloads.py), from the feed tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows import settings as config
from awardwatch.flows.core.reconcile import status
from awardwatch.schemas.errors import AwardwatchError
from tests.factories import row, write_csv
from tests.servers.usaspending import FakeUSAspending, write_archive_zip
from awardwatch.warehouse import db, feeds
from awardwatch.warehouse import reconcile as sql

pytestmark = pytest.mark.timeout(30)


def month_back(d: date, n: int) -> date:
    d = d.replace(day=1)
    for _ in range(n):
        d = (d - timedelta(days=1)).replace(day=1)
    return d


def test_status_names_a_failed_backfill_month_a_stale_source_and_a_missing_delta_month(tmp_path):
    now = datetime.utcnow() + timedelta(days=3)  # the nightly below ran three days "ago"
    wh = tmp_path / "wh" / "awardwatch.duckdb"
    with FakeUSAspending([]) as api:
        s = config.load({"AWARDWATCH_WAREHOUSE": str(wh), "AWARDWATCH_USASPENDING_URL": api.url, "AWARDWATCH_AGENCIES": "ICE,CBP",
                         "AWARDWATCH_SOURCES": "usaspending", "AWARDWATCH_HTTP_ATTEMPTS": "1"})
        scope = "awarding:CBP,ICE"
        nightly = ingest(warehouse=s.warehouse, paths=[write_csv(tmp_path / "n.csv", [row("N1")])], source="usaspending", command="run",
                            parameters={"source": "usaspending", "scope": scope, "windows": []})
        advance(s, "usaspending", scope, date.today(), nightly.run_id)
        # a monthly backfill: January and February done, March's load failed, April planned and never finished
        con = db.connect(wh)
        sql.plan_chunks(con, "bf1", "usaspending", scope, [(date(2019, m, 1), date(2019, m, 28)) for m in (1, 2, 3, 4)], datetime.utcnow())
        for m in (1, 2):
            feeds.chunk_done(con, "bf1", "usaspending", scope, date(2019, m, 1), date(2019, m, 28), nightly.run_id, 1)
        con.close()
        bad = tmp_path / "march.csv"
        bad.write_text("not,a,contract,file\n1,2,3,4\n")
        with pytest.raises(AwardwatchError):
            ingest(warehouse=s.warehouse, paths=[bad], source="usaspending", command="backfill",
                      parameters={"source": "usaspending", "scope": scope, "chunk": "2019-03-01..2019-03-28", "backfill_id": "bf1"})
        # Award Data Archive: a Full four months back, Deltas three months and one month back; none two months back
        full_at, d1, gap, d2 = (month_back(now.date(), n) + timedelta(days=7) for n in (4, 3, 2, 1))
        names = {"full": f"FY2018_070_Contracts_Full_{full_at:%Y%m%d}", "d1": f"FY(All)_070_Contracts_Delta_{d1:%Y%m%d}",
                 "d2": f"FY(All)_070_Contracts_Delta_{d2:%Y%m%d}"}
        delta_rows = [{**row(f"D{i}", action_date="2018-02-01"), "correction_delete_ind": "", "agency_id": "7012"} for i in range(3)]
        files = []
        for key, name in names.items():
            data = write_archive_zip([row("F1", action_date="2018-01-15")] if key == "full" else delta_rows[: 2 if key == "d1" else 3],
                                     delta=key != "full", member=f"{name}_1.csv")
            api.archive_files[f"{name}.zip"] = data
            api.monthly_files.append({"agency_name": "Department of Homeland Security", "agency_acronym": "DHS", "agency_id": 562,
                                      "file_name": f"{name}.zip", "fiscal_year": 2018 if key == "full" else None, "type": "contracts",
                                      "updated_date": "", "url": api.archive_url(f"{name}.zip")})
            files.append(tmp_path / f"{name}.zip")
            files[-1].write_bytes(data)
        loaded = ingest(warehouse=s.warehouse, paths=files, source="archive", command="backfill", parameters={"source": "archive", "scope": "archive:070"})
        advance(s, "archive", "archive:070", d2, loaded.run_id)
        report = status(s, now=now)
    problems = {p.kind: [] for p in report.problems}
    for p in report.problems:
        problems[p.kind].append(p.message)
    assert set(problems) == {"stale", "backfill", "archive"}, report.problems
    assert len(problems["stale"]) == 1 and problems["stale"][0].startswith(f"usaspending {scope}: stale: last successful run")
    assert "3.0 days ago, limit 2" in problems["stale"][0]
    march, april = problems["backfill"]
    assert "backfill chunk 2019-03 failed (run" in march and "missing required column" in march
    assert "a re-run fetches 2019-03-01..2019-03-28: awardwatch backfill --source usaspending --start 2019-03-01 --end 2019-03-28 --agency CBP --agency ICE" in march
    assert "backfill chunk 2019-04 never finished" in april
    assert problems["archive"] == [
        f"archive archive:070: no Delta file for {gap:%Y-%m} (neither listed by list_monthly_files nor applied); it may be empty, since "
        f"USAspending drops empty Delta files, but this agency's previous Deltas carried rows ({d1:%Y-%m}: 2)"]
    lines = {(x["source"], x["scope"]): x["state"] for x in report.sources}
    assert lines == {("usaspending", scope): "stale", ("archive", "archive:070"): "ok"}
    assert not report.ok


def advance(s: config.Settings, source: str, scope: str, day: date, run_id: str) -> None:
    con = db.connect(s.warehouse)
    try:
        feeds.set_watermark(con, source, scope, datetime.combine(day, datetime.min.time()), run_id)
    finally:
        con.close()
