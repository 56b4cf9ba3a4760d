"""Settings: the one place that reads environment variables.

| variable | default | meaning |
|---|---|---|
| AWARDWATCH_HOME | ./data | folder for the warehouse, snapshots and staging |
| AWARDWATCH_WAREHOUSE | $AWARDWATCH_HOME/awardwatch.duckdb | the DuckDB file |
| AWARDWATCH_SNAPSHOT_URL | snapshots/ beside the warehouse | folder or s3://bucket/prefix for Parquet snapshots |
| AWARDWATCH_KEEP_SNAPSHOTS | 30 | snapshots kept after each publish (the current one always is) |
| AWARDWATCH_BATCH_ROWS | 25000 | rows per batch (memory grows with it, not with the file) |
| AWARDWATCH_MAX_REJECTED | 0.05 | share of a file's rows that may be quarantined before the run fails |
| AWARDWATCH_THREADS | (all cores) | DuckDB and polars threads |
| AWARDWATCH_USASPENDING_URL | https://api.usaspending.gov | USAspending API base URL |
| AWARDWATCH_FPDS_URL | https://www.fpds.gov/ezsearch/FEEDS/ATOM | FPDS ATOM feed URL |
| AWARDWATCH_AGENCIES | DHS | agencies the nightly run extracts (abbreviations or codes, comma-separated) |
| AWARDWATCH_SOURCES | usaspending | sources of the nightly run (usaspending, fpds) |
| AWARDWATCH_LOOKBACK_DAYS | 3 | days before the watermark that each run reads again |
| AWARDWATCH_POLL_SECONDS | 10 | seconds between download-status polls |
| AWARDWATCH_POLL_TIMEOUT | 14400 | seconds a download job may take |
| AWARDWATCH_HTTP_TIMEOUT | 60 | seconds per HTTP request |
| AWARDWATCH_HTTP_ATTEMPTS | 5 | attempts per request (429, 5xx, connection errors) |
| AWARDWATCH_HTTP_BACKOFF | 2 | first retry wait in seconds, doubled each time, with jitter |
| AWARDWATCH_BACKFILL_CONCURRENCY | 2 | chunks a backfill downloads at once |
| AWARDWATCH_FPDS_CONCURRENCY | 4 | FPDS feed pages fetched at once |
| AWARDWATCH_LOCK_WAIT | 60 | seconds to wait for another run that is writing the warehouse |
| AWARDWATCH_WATCHLIST | watchlist.yaml | companies and agencies whose overnight changes the nightly job reports |
| AWARDWATCH_TASK_RETRIES | 2 | Prefect retries of a whole extraction (a failed download job), 60 s then 300 s apart |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    snapshot_url: str | None = None
    keep_snapshots: int = 30
    batch_rows: int = 25_000
    max_rejected_share: float = 0.05
    threads: int | None = None
    usaspending_url: str = "https://api.usaspending.gov"
    fpds_url: str = "https://www.fpds.gov/ezsearch/FEEDS/ATOM"
    agencies: tuple[str, ...] = ("DHS",)
    sources: tuple[str, ...] = ("usaspending",)
    lookback_days: int = 3
    poll_every: float = 10.0
    poll_timeout: float = 14400.0
    http_timeout: float = 60.0
    http_attempts: int = 5
    http_backoff: float = 2.0
    backfill_concurrency: int = 2
    task_retries: int = 2
    fpds_concurrency: int = 4
    lock_wait: float = 60.0
    watchlist: Path = Path("watchlist.yaml")

    @property
    def snapshots(self) -> str:
        """Where snapshots are published: a folder or an s3:// URL."""
        return self.snapshot_url or str(self.warehouse.parent / "snapshots")

    @property
    def staging(self) -> Path:
        return self.warehouse.parent / "staging"

    def but(self, **changes) -> "Settings":
        """A copy with the given fields changed; None values are ignored (unset CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load(env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    home = Path(env.get("AWARDWATCH_HOME") or "data")
    threads = env.get("AWARDWATCH_THREADS")
    return Settings(
        home=home,
        warehouse=Path(env.get("AWARDWATCH_WAREHOUSE") or home / "awardwatch.duckdb"),
        snapshot_url=env.get("AWARDWATCH_SNAPSHOT_URL") or None,
        keep_snapshots=int(env.get("AWARDWATCH_KEEP_SNAPSHOTS") or 30),
        batch_rows=int(env.get("AWARDWATCH_BATCH_ROWS") or 25_000),
        max_rejected_share=float(env.get("AWARDWATCH_MAX_REJECTED") or 0.05),
        threads=int(threads) if threads else None,
        usaspending_url=env.get("AWARDWATCH_USASPENDING_URL") or Settings.usaspending_url,
        fpds_url=env.get("AWARDWATCH_FPDS_URL") or Settings.fpds_url,
        agencies=_list(env.get("AWARDWATCH_AGENCIES")) or Settings.agencies,
        sources=_list(env.get("AWARDWATCH_SOURCES")) or Settings.sources,
        lookback_days=int(env.get("AWARDWATCH_LOOKBACK_DAYS") or 3),
        poll_every=float(env.get("AWARDWATCH_POLL_SECONDS") or 10),
        poll_timeout=float(env.get("AWARDWATCH_POLL_TIMEOUT") or 14400),
        http_timeout=float(env.get("AWARDWATCH_HTTP_TIMEOUT") or 60),
        http_attempts=int(env.get("AWARDWATCH_HTTP_ATTEMPTS") or 5),
        http_backoff=float(env.get("AWARDWATCH_HTTP_BACKOFF") or 2),
        backfill_concurrency=int(env.get("AWARDWATCH_BACKFILL_CONCURRENCY") or 2),
        task_retries=int(env.get("AWARDWATCH_TASK_RETRIES") or 2),
        fpds_concurrency=int(env.get("AWARDWATCH_FPDS_CONCURRENCY") or 4),
        lock_wait=float(env.get("AWARDWATCH_LOCK_WAIT") or 60),
        watchlist=Path(env.get("AWARDWATCH_WATCHLIST") or "watchlist.yaml"),
    )


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())
