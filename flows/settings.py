"""Settings: the one place that reads environment variables.

| variable | default | meaning |
|---|---|---|
| AWARDWATCH_HOME | ./data | folder for the warehouse, snapshots and staging |
| AWARDWATCH_WAREHOUSE | $AWARDWATCH_HOME/awardwatch.duckdb | the DuckDB file |
| AWARDWATCH_SNAPSHOT_URL | snapshots/ beside the warehouse | folder or s3://bucket/prefix for Parquet snapshots |
| AWARDWATCH_KEEP_SNAPSHOTS | 30 | snapshots kept after each publish (the current one always is) |
| AWARDWATCH_BATCH_ROWS | 50000 | rows per validation batch |
| AWARDWATCH_MAX_REJECTED | 0.05 | share of a file's rows that may be quarantined before the run fails |
| AWARDWATCH_THREADS | (all cores) | DuckDB and polars threads |
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
    batch_rows: int = 50_000
    max_rejected_share: float = 0.05
    threads: int | None = None

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
        batch_rows=int(env.get("AWARDWATCH_BATCH_ROWS") or 50_000),
        max_rejected_share=float(env.get("AWARDWATCH_MAX_REJECTED") or 0.05),
        threads=int(threads) if threads else None,
    )
