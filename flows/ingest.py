"""Prefect flow `ingest`: local files into the warehouse (``flows.core.ingest``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from awardwatch.flows import settings as config
from awardwatch.flows.core import ingest
from awardwatch.flows.core.summaries import run_markdown
from awardwatch.warehouse.runs import as_dict


@task(name="load-files")
def load_files(paths: list[str], s: config.Settings) -> ingest.RunResult:
    return ingest.ingest([Path(p) for p in paths], warehouse=s.warehouse, batch_rows=s.batch_rows,
                         max_rejected_share=s.max_rejected_share, threads=s.threads, lock_wait=s.lock_wait)


@flow(name="ingest")
def ingest_flow(paths: list[str], warehouse: str | None = None) -> dict:
    """Load USAspending contract-transaction files (CSV, ZIP or folders) into the warehouse."""
    s = config.load().but(warehouse=Path(warehouse) if warehouse else None)
    result = load_files(paths, s)
    create_markdown_artifact(run_markdown(result), key="ingest-summary", description="awardwatch ingest run")
    return {"run_id": result.run_id, "status": result.status, **as_dict(result.counts)}
