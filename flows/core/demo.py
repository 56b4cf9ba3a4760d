"""`awardwatch demo`: the whole pipeline, offline, on a generated sample feed.

The feed is the sample source (``flows.sources.sample``): a ZIP of two CSV parts
in the current layout and one CSV in the 2018 layout (DUNS era, no key
columns), with a handful of malformed rows. It runs the real ingest path, then
publishes a snapshot and runs the example query (``warehouse.reports.EXAMPLE_SQL``)
on both the warehouse and the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from awardwatch.flows.core.ingest import RunResult, ingest
from awardwatch.flows.core.progress import Progress
from awardwatch.flows.core.publish import publish
from awardwatch.flows.settings import Settings
from awardwatch.flows.sources import sample
from awardwatch.warehouse.reports import example
from awardwatch.warehouse.snapshots import PublishResult


@dataclass
class DemoResult:
    feed: list[Path]
    run: RunResult
    snapshot: PublishResult
    columns: list[str]
    rows: list[tuple]
    snapshot_rows: list[tuple]


def write_demo_feed(folder: Path, rows: int, seed: int) -> list[Path]:
    """Current-layout ZIP (FY2017-FY2019) and a 2018-layout CSV (FY2015-FY2016)."""
    feed = sample.write_feed(folder / "current", rows=rows, seed=seed, malformed=5, zip_parts=2)
    legacy = sample.write_transactions(
        folder / "legacy" / "Contracts_PrimeTransactions_2018-07-01_legacy_1.csv",
        max(rows // 3, 10),
        seed=seed + 1,
        layout="legacy",
        malformed=2,
        start=date(2014, 10, 1),
        end=date(2016, 9, 30),
    )
    return [*feed, legacy]


def run_demo(settings: Settings, *, rows: int = 3000, seed: int = 2018, progress: Progress | None = None) -> DemoResult:
    feed = write_demo_feed(settings.warehouse.parent / "demo-feed", rows, seed)
    run = ingest(
        feed,
        warehouse=settings.warehouse,
        command="demo",
        parameters={"rows": rows, "seed": seed},
        batch_rows=settings.batch_rows,
        max_rejected_share=settings.max_rejected_share,
        threads=settings.threads,
        progress=progress,
        lock_wait=settings.lock_wait,
    )
    snapshot = publish(settings.warehouse, settings.snapshots, keep=settings.keep_snapshots, threads=settings.threads,
                       lock_wait=settings.lock_wait, run_ids=[run.run_id])
    columns, rows, snapshot_rows = example(settings.warehouse, settings.snapshots)
    return DemoResult(feed, run, snapshot, columns, rows, snapshot_rows)
