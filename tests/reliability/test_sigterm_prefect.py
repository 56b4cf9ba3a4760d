"""Issue 18: SIGTERM while `awardwatch run`/`backfill` waits on Prefect ends the process promptly, records the
awardwatch run as interrupted, and leaves the Prefect flow run in a final state (never Running).

Each test runs the real CLI in a subprocess against the session's Prefect API (``prefect_harness``) and a
local USAspending server, sends SIGTERM at a known point, then reads the flow run back from the API."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.cli import commands as cli
from tests.factories import row
from tests.paths import ROOT
from tests.servers.usaspending import FakeUSAspending

pytestmark = [pytest.mark.prefect, pytest.mark.timeout(240)]

STOPPED = "interrupted (SIGTERM); the run is recorded as interrupted"
FINAL = {"CRASHED", "CANCELLED"}


class Cli:
    """`python -m awardwatch.flows.cli ARGS` with its stderr read line by line in a thread."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen([sys.executable, "-m", "awardwatch.flows.cli", *args], cwd=ROOT, env=env,
                                     text=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Until a line of stderr contains ``text`` (fails if the process ends first)."""
        seen = []
        while True:
            line = self.lines.get(timeout=timeout)
            assert line is not None, f"the CLI ended (exit {self.proc.wait()}) before printing {text!r}: {seen[-20:]}"
            seen.append(line)
            if text in line:
                return

    def terminate(self, timeout: float) -> tuple[int, list[str]]:
        """SIGTERM, then (exit status, the stderr lines printed after it)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the CLI did not end within {timeout} s of SIGTERM") from None
        rest = []
        while (line := self.lines.get(timeout=10)) is not None:
            rest.append(line)
        return code, rest


@pytest.fixture
def environment(tmp_path, prefect_harness):
    """The CLI's environment: a temporary home, the harness's Prefect API, no waits between polls and retries."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWARDWATCH_", "PREFECT_"))}
    env.update(AWARDWATCH_HOME=str(tmp_path), AWARDWATCH_POLL_SECONDS="0", AWARDWATCH_HTTP_BACKOFF="0",
               PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def flow_runs_since(started: datetime, flow: str) -> list:
    """The flow runs of ``flow`` that started after ``started``, read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterStartTime

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
                                     flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started)))


def awardwatch_runs(home: Path) -> list[tuple[str, str]]:
    if not (home / "awardwatch.duckdb").exists():
        return []
    con = duckdb.connect(str(home / "awardwatch.duckdb"), read_only=True)
    try:
        return con.execute("SELECT command, status FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


def until(condition, timeout: float = 60) -> None:
    """Waits (bounded) until ``condition()`` holds."""
    done = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError(f"not reached within {timeout} s")


def rows_of(month: str, n: int = 3) -> list[dict]:
    return [row(piid=f"70CMSD{month.replace('-', '')}{i:04d}", action_date=f"{month}-15") for i in range(n)]


# --- the main thread unwinds: Prefect's engine sees the signal ---------------------------------------------


@pytest.mark.parametrize("wait", ["load", "retry delay"])
def test_sigterm_unwinding_through_the_flow_ends_its_flow_run(environment, tmp_path, wait):
    """`awardwatch run` stopped in the load of its window (an awardwatch run in progress) or in the Prefect
    retry delay of its land task (the main thread sleeping inside Prefect's task engine)."""
    with FakeUSAspending(rows_of("2020-01"), polls_until_finished=0, lagging_polls=0) as api:
        environment["AWARDWATCH_USASPENDING_URL"] = api.url
        if wait == "load":
            environment.update(AWARDWATCH_PAUSE_AT="before-commit", AWARDWATCH_PAUSE_SECONDS="120")
            marker = "paused at before-commit"
        else:
            api.fail_job("Download failed")  # the land task fails; its first Prefect retry is 60 s later
            environment["AWARDWATCH_TASK_RETRIES"] = "1"
            marker = "will start 60 second(s) from now"
        started = datetime.now(timezone.utc)
        proc = Cli(["run", "--agency", "ICE"], environment)
        proc.wait_for(marker)
        code, rest = proc.terminate(timeout=30)
    assert (code, rest) == (143, [STOPPED])
    assert awardwatch_runs(tmp_path) == ([("run", "interrupted")] if wait == "load" else [])
    [run] = flow_runs_since(started, "nightly")
    assert run.state_type.value in FINAL, f"flow run left {run.state_type.value}: {run.state.message}"


# --- the main thread is stuck: the watcher ends the process after TERM_GRACE -------------------------------


def test_sigterm_while_a_task_thread_hangs_in_a_download_still_ends_the_flow_run(environment, tmp_path):
    """`awardwatch backfill` of two months: January loads in the main thread (paused before its commit) while
    February's stage task hangs in its download in a task-runner thread. SIGTERM interrupts January's run;
    the main thread then waits on the task runner's threads (Prefect never reports the crash), so the watcher
    ends the process after ``TERM_GRACE``. The flow run must not be left Running."""
    with FakeUSAspending(rows_of("2020-01") + rows_of("2020-02"), polls_until_finished=0, lagging_polls=0) as api:
        api.hang_download("2020-02-01", 600)  # past the HTTP timeout (60 s) and TERM_GRACE; ends with the server
        environment.update(AWARDWATCH_USASPENDING_URL=api.url, AWARDWATCH_PAUSE_AT="before-commit",
                           AWARDWATCH_PAUSE_SECONDS="120", AWARDWATCH_TASK_RETRIES="0")
        started = datetime.now(timezone.utc)
        args = ["backfill", "--agency", "ICE", "--start", "2020-01-01", "--end", "2020-02-29", "--concurrency", "2"]
        proc = Cli(args, environment)
        proc.wait_for("paused at before-commit")
        # January's download was served; February's is held
        until(lambda: sum(path.startswith("/generated_downloads/") for _, path, _ in api.requests) == 2)
        code, rest = proc.terminate(timeout=cli.TERM_GRACE + 30)
    assert (code, rest) == (143, [STOPPED])
    assert awardwatch_runs(tmp_path) == [("backfill", "interrupted")]
    [run] = flow_runs_since(started, "backfill")
    assert run.state_type.value in FINAL, f"flow run left {run.state_type.value}: {run.state.message}"
    assert run.state.message == "terminated (SIGTERM)"
