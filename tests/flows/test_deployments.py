"""prefect.yaml's deployments through a real Prefect server and process worker, as the README runs them.

One test, one server, one worker (all on 127.0.0.1, state in tmp_path). Every Prefect and awardwatch
setting goes to the subprocesses through their own env dicts, never os.environ, so nothing leaks into
the in-process harness of tests/flows/test_nightly_backfill.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from tests.paths import ROOT
from tests.factories import row
from tests.servers.usaspending import FakeUSAspending

pytestmark = pytest.mark.prefect
PREFECT = str(Path(sys.executable).with_name("prefect"))  # the CLI of this environment, as `uv run prefect`
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tmp: Path, api_url: str) -> dict[str, str]:
    """The caller's environment without Prefect/awardwatch settings, plus a private Prefect home and no outbound calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWARDWATCH_"))}
    env.update({
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_PROFILES_PATH": str(tmp / "prefect-home" / "profiles.toml"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no heartbeat to sens-o-matic.prefect.io
        "PREFECT_SERVER_UI_ENABLED": "false",  # nothing to serve; saves building the UI folder
        "PREFECT_CLI_PROMPT": "false",
        "DO_NOT_TRACK": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    return env


def start(args: list[str], env: dict, log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM (a worker then stops its flow runs), SIGKILL after 15 s; only this test's own process group."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def cli(args: list[str], env: dict, log: Path) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    with log.open("a") as f:
        f.write(f"$ prefect {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def ask(api: httpx.Client, method: str, path: str, body: dict | None = None):
    """One API call's JSON; an error status fails the test with the server's answer. A busy SQLite server
    may answer 5xx for a moment ("database is locked"): asked again up to 5 times."""
    for attempt in range(6):
        try:
            reply = api.request(method, path, json=body)
        except httpx.TransportError:
            if attempt == 5:
                raise
            time.sleep(0.5)
            continue
        if reply.status_code < 500 or attempt == 5:
            break
        time.sleep(0.5)
    assert reply.status_code < 400, f"{method} {path}: HTTP {reply.status_code} {reply.text[:2000]}"
    return reply.json()


def wait_healthy(api: httpx.Client, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited {server.returncode}:\n{tail(log)}"
        try:
            if api.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prefect server not healthy after {timeout:.0f} s:\n{tail(log)}")


def wait_finished(api: httpx.Client, run_ids: list[str], worker_log: Path, timeout: float = 150) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = {i: ask(api, "GET", f"/flow_runs/{i}") for i in run_ids}
        if all(r["state_type"] in TERMINAL for r in runs.values()):
            return runs
        time.sleep(0.3)
    states = {i: r["state_name"] for i, r in runs.items()}
    raise AssertionError(f"flow runs not finished after {timeout:.0f} s: {states}\nworker log:\n{tail(worker_log)}")


def run_logs(api: httpx.Client, run_id: str) -> str:
    logs = ask(api, "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
    return "\n".join(entry["message"] for entry in logs)[-4000:]


def month_rows(month: int, n: int) -> list[dict]:
    return [row(piid=f"70CMSD18C{month:02d}{i:06d}", amount=f"{100 + i}.00", action_date=f"2018-{month:02d}-1{i}",
                last_modified_date=f"2018-{month:02d}-2{i} 08:00:00") for i in range(n)]


def test_deployments_run_through_a_worker_serialised_with_schedule_and_artifacts(tmp_path):
    """Server, pool, queue (limit 1), `prefect deploy --all`, process worker; two backfills triggered at once
    both complete, one after the other, load the warehouse and publish artifacts; the nightly keeps its schedule."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = base_env(tmp_path, url)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = worker = None
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    pool = spec["definitions"]["work_pool"]["name"]
    queue = spec["definitions"]["work_pool"]["work_queue_name"]
    home = tmp_path / "awardwatch"
    try:
        with FakeUSAspending(month_rows(1, 3) + month_rows(2, 4), polls_until_finished=0, lagging_polls=0) as fake, \
                httpx.Client(base_url=url, timeout=30, trust_env=False) as api:
            server = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off", "--no-ui"],
                           env, logs / "server.log")
            wait_healthy(api, server, logs / "server.log")
            assert ask(api, "POST", "/work_pools/filter") == [], "the port answers with another server's data"
            cli(["work-pool", "create", pool, "--type", "process"], env, logs / "cli.log")
            cli(["work-queue", "create", queue, "--pool", pool, "--limit", "1"], env, logs / "cli.log")
            worker_env = {**env,
                          "AWARDWATCH_PROJECT_DIR": str(ROOT),  # the pull step's working directory
                          "AWARDWATCH_HOME": str(home),
                          "AWARDWATCH_USASPENDING_URL": fake.url,
                          "AWARDWATCH_POLL_SECONDS": "0.05",
                          "AWARDWATCH_HTTP_BACKOFF": "0",
                          "AWARDWATCH_TASK_RETRIES": "0",
                          "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10: the worker asks for runs every second
                          "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
            worker = start([PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", "test-worker"],
                           worker_env, logs / "worker.log")  # starts while the deployments are created
            cli(["deploy", "--all"], env, logs / "cli.log")

            backfill = ask(api, "GET", "/deployments/name/backfill/backfill")
            nightly = ask(api, "GET", "/deployments/name/nightly/nightly")
            months = [{"start": "2018-01-01", "end": "2018-01-31"}, {"start": "2018-02-01", "end": "2018-02-28"}]
            ids = [ask(api, "POST", f"/deployments/{backfill['id']}/create_flow_run",
                       {"parameters": {**m, "agencies": ["ICE"]}})["id"] for m in months]
            runs = wait_finished(api, ids, logs / "worker.log")
            for i, r in runs.items():
                assert r["state_type"] == "COMPLETED", f"run {r['name']}: {r['state_name']}\n{run_logs(api, i)}\nworker:\n{tail(logs / 'worker.log')}"

            # serialised: the work queue (limit 1) and the deployment limit let one backfill run at a time
            spans = sorted((datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"])) for r in runs.values())
            assert spans[0][1] <= spans[1][0], f"backfill runs overlapped: {spans}"
            assert ask(api, "GET", f"/work_pools/{pool}/queues/{queue}")["concurrency_limit"] == 1
            for d in (backfill, nightly):
                limit = d["global_concurrency_limit"]
                assert (d["work_pool_name"], d["work_queue_name"], limit["limit"], limit["active"]) == (pool, queue, 1, True)
                assert d["concurrency_options"]["collision_strategy"] == "ENQUEUE"
                assert d["pull_steps"] == spec["pull"]

            [schedule] = nightly["schedules"]
            assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"], schedule["active"]) == ("30 5 * * *", "America/New_York", True)
            assert backfill["schedules"] == []

            for i in ids:
                found = ask(api, "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [i]}}})
                assert "backfill-summary" in {a["key"] for a in found}, f"artifacts of {i}: {[a['key'] for a in found]}"
            asked = [b["filters"]["date_range"] for _, p, b in fake.requests if p.startswith("/api/v2/bulk_download/awards")]
            assert sorted(r["start_date"] for r in asked) == ["2018-01-01", "2018-02-01"]

        con = duckdb.connect(str(home / "awardwatch.duckdb"), read_only=True)
        try:
            assert con.execute("SELECT count(*), count(DISTINCT source_file) FROM transactions").fetchall() == [(7, 2)]
            assert con.execute("SELECT count(*) FROM runs WHERE command = 'backfill'").fetchall() == [(2,)]
        finally:
            con.close()
    finally:
        stop(worker)
        stop(server)
