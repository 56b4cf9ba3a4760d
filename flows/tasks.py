"""The Prefect tasks the flows share: landing a feed's window (the only step that touches the network,
so the only one retried), the reconciliation, the publish and the status check. Each wraps one call
into ``flows.core``; the job's warehouse connection is passed along, never cached or persisted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from awardwatch.flows.core import feeds, publish as publishing, reconcile
from awardwatch.flows.core.progress import Progress
from awardwatch.flows.core.summaries import counts_table, file_line
from awardwatch.flows.settings import Settings
from awardwatch.flows.sources.base import Landed, Scope, Window
from awardwatch.schemas.errors import AwardwatchError, PermanentError


def worth_retrying(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task unless its error is a ``PermanentError``."""
    try:
        state.result()
    except PermanentError:
        return False
    except BaseException:
        return True
    return True


@task(name="land", task_run_name="land-{name}-{window}", retries=2, retry_delay_seconds=[60, 300],
      retry_condition_fn=worth_retrying, cache_policy=NO_CACHE)
def land(s: Settings, name: str, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
    """Fetches one window of a feed onto disk (``Feed.land``)."""
    return feeds.land_now(s, name, scope, window, into, mode)


@task(name="stage-chunk", task_run_name="stage-{name}-{window}", retries=2, retry_delay_seconds=[60, 300],
      retry_condition_fn=worth_retrying, cache_policy=NO_CACHE)
def stage_chunk(s: Settings, name: str, scope: Scope, window: Window, into: Path) -> feeds.Chunk:
    """The map stage of a backfill chunk (``flows.core.feeds.stage_now``), on whichever worker the task runner picks."""
    return feeds.stage_now(s, name, scope, window, into, worker=dask_worker())


def dask_worker() -> str:
    """The address of the Dask worker running this task, or '' outside Dask."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def stager(s: Settings) -> feeds.Stager:
    """``stage_chunk`` with the settings' retries, submitted to the flow's task runner (threads, or a Dask cluster)."""
    return stage_chunk.with_options(retries=s.task_retries).submit


def task_runner(s: Settings, address: str | None = None):
    """The backfill's task runner: a Dask cluster when there is a scheduler (``address``, or
    ``AWARDWATCH_DASK_ADDRESS``), else threads in this process."""
    if address or s.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address or s.dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=8)


@contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    """A Dask scheduler and ``workers`` worker processes on 127.0.0.1 for the length of a command; yields its address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def cluster_workers(address: str) -> int:
    """How many workers the Dask scheduler at ``address`` has now (a backfill keeps one chunk more than that
    in flight, so every worker stages while the writer merges)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def lander(s: Settings) -> feeds.Lander:
    """``land`` with the settings' retries, run in place (a nightly's windows land one after the other)."""
    return land.with_options(retries=s.task_retries)


@task(name="reconcile", cache_policy=NO_CACHE)
def check_totals(con, s: Settings, agencies: list[str], run_ids: list[str]) -> dict:
    """Compares the loaded agencies with USAspending's published totals (a mismatch does not block the publish)."""
    return reconcile.after_load(con, s, agencies, run_ids)


@task(name="publish", cache_policy=NO_CACHE)
def publish(con, s: Settings, run_ids: list[str]):
    return publishing.publish_on(con, s.warehouse, s.snapshots, keep=s.keep_snapshots, run_ids=run_ids)


@task(name="status", cache_policy=NO_CACHE)
def check_status(con, s: Settings) -> dict:
    """``awardwatch status`` after the run, for its artifact (a failure to check is itself reported, not raised)."""
    try:
        return reconcile.status(s, con=con).as_dict()
    except AwardwatchError as exc:
        return {"ok": False, "problems": [{"kind": "check", "scope": "", "message": f"status not checked: {exc}"}]}


FLOW_RUN: dict[str, str] = {}  # "id": this process's flow run, which the CLI marks Crashed if SIGTERM ends the process


def logged(progress: Progress | None) -> Progress:
    """The CLI's display (when there is one) and the flow run's log, together: stages and per-file counts
    as INFO, quarantined rows and skipped inputs as WARNING. Notes the flow run's id in ``FLOW_RUN`` (each flow
    calls this first)."""
    FLOW_RUN["id"] = runtime.flow_run.id or ""
    logger, inner = get_run_logger(), progress or Progress()

    def stage(text: str) -> None:
        logger.info(text)
        inner.on_stage(text)

    def loaded(f) -> None:
        logger.info(file_line(f))
        inner.on_loaded(f)

    def note(text: str) -> None:
        logger.warning(text)
        inner.on_note(text)

    return Progress(on_stage=stage, on_file=inner.on_file, on_rows=inner.on_rows, on_loaded=loaded, on_note=note)


def report(job: str, done, results, reconciliation: dict | None = None) -> None:
    """The job's notes and reconciliation in the flow run's log, and its counts as a table artifact."""
    logger = get_run_logger()
    for d in done:
        for n in d.notes:
            logger.warning(n)
    if reconciliation is not None:
        logger.info(reconciliation["summary"])
        for r in reconciliation.get("rows", []):
            if r["status"] != "match":
                logger.warning(f"{r['agency_code']} FY{r['fiscal_year']}: warehouse {r['warehouse_obligations']} vs USAspending "
                               f"{r['usaspending_obligations']} ({r['warehouse_transactions']} vs {r['usaspending_transactions']} actions)")
    if results:
        create_table_artifact(counts_table(results), key=f"{job}-counts", description=f"awardwatch {job}: rows per file")


CHANGES_SHOWN = 25  # rows per kind of change in the artifact; the whole list is changes.md beside the snapshot


def changes_artifact(changes, key: str, store_url: str) -> None:
    """The watchlist's changes as a Markdown artifact: the summary and the first rows of each kind."""
    from awardwatch.flows.core.changes import changes_markdown

    whole = f"{store_url.rstrip('/')}/{key}"
    create_markdown_artifact(changes_markdown(changes, limit=CHANGES_SHOWN, whole=whole), key="nightly-changes",
                             description="awardwatch: changes since the previous snapshot")


class _QuietConsole(logging.Filter):
    """Keeps errors and tracebacks of Prefect off the terminal: they stay in Prefect's own logs
    (its API handler), and the CLI prints the error once, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.ERROR:
            return False
        message = record.getMessage()
        return not (message.startswith("Finished in state") and "Completed" not in message)


def quiet_console() -> None:
    """Adds ``_QuietConsole`` to Prefect's console handlers (set up when prefect is imported)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, _QuietConsole) for f in handler.filters):
                handler.addFilter(_QuietConsole())
