"""The measured work of the benchmark, one kind per fresh process.

``bench.run`` starts ``python -m bench.child KIND PARAMS_JSON RESULT_JSON`` and samples the
resident memory of this process and its descendants while it runs. Each kind writes its
timings (measured here, around the operation only: no interpreter start-up or imports)
and what it produced to RESULT_JSON. Any exception ends the process with a non-zero code.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

BACKFILL_SEED = 2018  # chunk i's seed: BACKFILL_SEED + its first day's toordinal()
WARMUP_ROWS = 200  # rows of the chunk each Dask worker stages before the map stage is timed
BACKFILL_MONTHS = [(date(2018, m, 1), date(2018 + m // 12, m % 12 + 1, 1) - timedelta(days=1)) for m in range(1, 13)]


def _hwm_kib() -> int | None:
    """This process's peak resident memory so far (VmHWM), KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Resets VmHWM to the current RSS (Linux ``clear_refs`` 5), so the next phase's peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _warehouse_counts(warehouse: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("transactions", "awards", "quarantine")
        }
    finally:
        con.close()


def _memory_limit(limit: str | None) -> None:
    """Diagnostic knob: makes ``warehouse.db.connect`` use this DuckDB memory_limit instead of its default."""
    if not limit:
        return
    import functools
    import inspect

    from awardwatch.warehouse import db

    if "memory_limit" not in inspect.signature(db.connect).parameters:
        raise SystemExit("--duckdb-memory-limit: warehouse.db.connect takes no memory_limit parameter")
    original = db.connect

    @functools.wraps(original)
    def connect(*args, **kwargs):
        kwargs.setdefault("memory_limit", limit)
        return original(*args, **kwargs)

    db.connect = connect


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _ingest_and_publish(file: Path, warehouse: Path, snapshots: Path, p: dict) -> dict:
    """Ingest, then publish, in this process. A failed publish is recorded (the ingest figures stand);
    a failed ingest ends the process."""
    import inspect

    from awardwatch.flows.core.ingest import ingest
    from awardwatch.flows.core.publish import publish
    from awardwatch.warehouse.runs import as_dict

    _memory_limit(p.get("memory_limit"))
    batch_rows = p.get("batch_rows")
    options = {} if batch_rows is None else {"batch_rows": batch_rows}
    default = inspect.signature(ingest).parameters.get("batch_rows")
    used = batch_rows if batch_rows is not None else (default.default if default else None)

    t0, c0 = time.perf_counter(), time.process_time()
    result = ingest([file], warehouse=warehouse, **options)
    t1, c1 = time.perf_counter(), time.process_time()
    ingest_peak = _hwm_kib()
    reset = _reset_hwm()
    publish_error, published = None, None
    try:
        published = publish(warehouse, str(snapshots)).published
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the ingest figures stand
        publish_error = _error(exc)
    t2, c2 = time.perf_counter(), time.process_time()
    publish_peak = _hwm_kib() if reset else None
    return {
        "ingest_peak_kib": ingest_peak,  # this process's VmHWM at the end of ingest
        "publish_peak_kib": publish_peak,  # its VmHWM during publish alone (None if it could not be reset)
        "batch_rows": used,
        "memory_limit": p.get("memory_limit"),
        "ingest_seconds": t1 - t0,  # the whole call, connection close included
        "run_seconds": result.seconds,  # RunResult.seconds (before the final close)
        "publish_seconds": t2 - t1,  # until it failed, if it did
        "publish_error": publish_error,
        "ingest_cpu_seconds": c1 - c0,  # CPU time of all the process's threads
        "publish_cpu_seconds": c2 - c1,
        "status": result.status,
        "stages": dict(result.stages),
        "counts": as_dict(result.counts),
        "published": published,
        "snapshot_bytes": _tree_bytes(snapshots),
        "warehouse_bytes": warehouse.stat().st_size,
        "tables": _warehouse_counts(warehouse),
    }


def pipeline(p: dict) -> dict:
    """Full load into a new warehouse, then a snapshot."""
    work = Path(p["workdir"])
    return _ingest_and_publish(Path(p["file"]), work / "w.duckdb", work / "snapshots", p)


def nightly(p: dict) -> dict:
    """The nightly file onto a copy of a warehouse that holds the full file (copied by the parent)."""
    work = Path(p["workdir"])
    warehouse = work / "w.duckdb"
    before = _warehouse_counts(warehouse)
    return _ingest_and_publish(Path(p["file"]), warehouse, work / "snapshots", p) | {"tables_before": before}


def _chunk(result, i: int, timed: dict | None = None) -> dict:
    """Chunk i's RunResult as plain data (``timed``: what the bench timed around it, if it did)."""
    from awardwatch.warehouse.runs import as_dict

    start, end = BACKFILL_MONTHS[i] if i < len(BACKFILL_MONTHS) else (None, None)
    return {"start": str(start), "end": str(end), "seconds": result.seconds, "status": result.status,
            "counts": as_dict(result.counts), "stages": dict(result.stages)} | (timed or {})


def _backfill_settings(p: dict, home: Path):
    """The settings of the bench's backfills: the ``sample`` feed, ``rows`` per chunk, everything under ``home``."""
    from awardwatch.flows import settings

    home.mkdir(parents=True, exist_ok=True)
    return settings.load({"AWARDWATCH_HOME": str(home)}).but(
        warehouse=home / "w.duckdb", sample_rows=p["rows"], sample_seed=BACKFILL_SEED, batch_rows=p.get("batch_rows"))


def _run_backfill(p: dict, home: Path, path: str, stage=None) -> dict:
    """The backfill job, ``flows.core.feeds.run_feeds`` over the ``sample`` feed's 12 months of 2018, into a new
    warehouse under ``home``; ``stage``: its Stager (default: ``run_feeds``'s own, the map stage in this process)."""
    from awardwatch.flows.core import connect
    from awardwatch.flows.core.feeds import run_feeds

    _memory_limit(p.get("memory_limit"))
    s = _backfill_settings(p, home)
    options = {} if stage is None else {"stage": stage}
    t0, c0 = time.perf_counter(), time.process_time()
    con = connect(s)
    try:
        start, end = BACKFILL_MONTHS[0][0], BACKFILL_MONTHS[-1][1]
        job = run_feeds(con, s, "backfill", ["sample"], start=start, end=end, **options)
    finally:
        con.close()
    t1, c1 = time.perf_counter(), time.process_time()
    warehouse = s.warehouse
    return {"backfill_path": path, "fallback_reason": None, "seconds": t1 - t0, "cpu_seconds": c1 - c0,
            "rows_per_chunk": p["rows"], "batch_rows": p.get("batch_rows"), "memory_limit": p.get("memory_limit"),
            "chunks": [_chunk(result, i) for i, result in enumerate(job.results)], "peak_kib": _hwm_kib(),
            "warehouse_bytes": warehouse.stat().st_size, "tables": _warehouse_counts(warehouse)}


def backfill(p: dict) -> dict:
    """12 monthly chunks of 2018 (``rows`` each) landed and loaded into one new warehouse by the backfill job
    (``flows.core.feeds.run_feeds`` over the ``sample`` feed: each chunk's map stage overlaps the merge before it)."""
    return _run_backfill(p, Path(p["workdir"]) / "run-feeds", "run_feeds")


def _import(module: str) -> None:
    """On a Dask worker: imports ``module`` (returns nothing: a module cannot travel back)."""
    import importlib

    importlib.import_module(module)


def _worker_status() -> dict:
    """On a Dask worker: its pid, CPU seconds (all threads) and VmHWM in KiB."""
    return {"pid": os.getpid(), "cpu": time.process_time(), "hwm_kib": _hwm_kib()}


def dask_map(p: dict) -> dict:
    """The map stage of the backfill's 12 chunks (``flows.core.feeds.stage_now``: land, read, validate, transform,
    write staged Parquet) on a local Dask cluster of ``workers`` worker processes (``flows.tasks.local_cluster``,
    the one ``awardwatch backfill --workers N`` starts), all 12 submitted at once. The chunks, pickled, are left in
    ``home/chunks.pkl`` for ``dask-merge``, their staged Parquet under ``home/staged``."""
    import pickle

    from distributed import Client, get_task_stream

    from awardwatch.flows.core.feeds import stage_now
    from awardwatch.flows.core.jobs import check_job
    from awardwatch.flows.sources import feed
    from awardwatch.flows.sources.base import BACKFILL, Window
    from awardwatch.flows.tasks import local_cluster

    home, workers = Path(p["home"]), p["workers"]
    s = _backfill_settings(p, home)
    start, end = BACKFILL_MONTHS[0][0], BACKFILL_MONTHS[-1][1]
    f = feed("sample", s)
    scope = f.scopes(check_job(s, BACKFILL, ["sample"], None, start, end))[0]
    windows = f.backfill_windows(start, end)
    into = home / "staged"  # a local folder every local worker reaches (AWARDWATCH_STAGING_URL on a real cluster)
    t0 = time.perf_counter()
    with local_cluster(workers) as address, Client(address) as client:
        client.wait_for_workers(workers)
        for module in ("awardwatch.flows.core.feeds", "awardwatch.flows.sources.sample"):  # imports outside the timing
            client.run(_import, module)
        warm, december = s.but(sample_rows=min(p["rows"], WARMUP_ROWS)), Window(date(2017, 12, 1), date(2017, 12, 31))
        client.gather([client.submit(stage_now, warm, f.name, scope, december, home / "warm-up" / str(i), pure=False,
                                     workers=[a], allow_other_workers=False)  # each worker's first-call costs
                       for i, a in enumerate(client.scheduler_info()["workers"])])
        t1 = time.perf_counter()
        before, c1 = client.run(_worker_status), time.process_time()
        with get_task_stream(client) as stream:
            futures = {w.start: client.submit(stage_now, s, f.name, scope, w, into / str(w.start), pure=False,
                                              key=f"stage-{w.start}") for w in windows}
            chunks = dict(zip(futures, client.gather(list(futures.values()))))
        t2, c2 = time.perf_counter(), time.process_time()
        after = client.run(_worker_status)
    t3 = time.perf_counter()
    tasks = {r["key"]: r for r in stream.data}
    with open(home / "chunks.pkl", "wb") as out:
        pickle.dump(chunks, out)
    per_chunk = []
    for w in windows:
        chunk, task = chunks[w.start], tasks.get(f"stage-{w.start}", {})
        computed = sum(ss["stop"] - ss["start"] for ss in task.get("startstops", []) if ss.get("action") == "compute")
        files = [path for _, got, _, _ in chunk.staged.files for path in (*got.staged, *got.quarantined, *got.deletions)]
        per_chunk.append({"start": str(w.start), "end": str(w.end), "rows": chunk.landed.rows,
                          "worker": task.get("worker"), "task_seconds": computed or None, "stages": dict(chunk.staged.stages),
                          "staged_bytes": sum(Path(f).stat().st_size for f in files)})
    return {"workers": workers, "rows_per_chunk": p["rows"], "batch_rows": p.get("batch_rows"),
            "map_seconds": t2 - t1,  # first submit .. last chunk back in this process
            "map_cpu_seconds": sum(after[a]["cpu"] - before[a]["cpu"] for a in after) + c2 - c1,  # workers + this process
            "startup_seconds": t1 - t0,  # cluster start-up, workers' imports and warm-up chunk
            "shutdown_seconds": t3 - t2,
            "worker_peak_kib": {a: after[a]["hwm_kib"] for a in after}, "self_peak_kib": _hwm_kib(),
            "chunks": per_chunk}


def dask_merge(p: dict) -> dict:
    """The one writer: the backfill job (``run_feeds``) merging the chunks ``dask-map`` staged (its Stager hands
    them over) into a new warehouse, in chunk order, then settling once."""
    import pickle

    with open(Path(p["home"]) / "chunks.pkl", "rb") as f:
        chunks = pickle.load(f)

    def staged(s, name, scope, window, into):
        return chunks[window.start]

    return _run_backfill(p, Path(p["home"]), "run_feeds, staged by dask-map", stage=staged)


def duckdb_raw(p: dict) -> dict:
    """The reference: DuckDB reads the file itself, sniffed types, no checks."""
    import duckdb

    database = Path(p["workdir"]) / "raw.duckdb"
    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(database))
    try:
        con.execute(p["sql"])
    finally:
        con.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        columns = con.execute("SELECT count(*) FROM (DESCRIBE t)").fetchone()[0]
    finally:
        con.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "columns": columns, "database_bytes": database.stat().st_size}


def make_nightly(p: dict) -> dict:
    """The nightly file: the first N rows of the big file, 80% changed versions of their rows
    (new amount, later last_modified_date), 20% new keys (PIID and both key columns changed)."""
    import polars as pl

    t0 = time.perf_counter()
    df = pl.read_csv(p["source"], infer_schema=False, n_rows=p["rows"], truncate_ragged_lines=True)
    header = df.columns
    is_new = pl.int_range(pl.len()) % 5 == 4
    amount = pl.col("federal_action_obligation")
    changed_amount = (amount.cast(pl.Decimal(38, 2), strict=False) + pl.lit(1).cast(pl.Decimal(38, 2))).cast(pl.String)
    modified = pl.col("last_modified_date")
    later = (modified.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False) + pl.duration(days=30, seconds=17)).dt.strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    updates = [
        pl.when(is_new).then(amount).otherwise(pl.coalesce(changed_amount, amount)).alias("federal_action_obligation"),
        pl.when(is_new).then(modified).otherwise(pl.coalesce(later, modified)).alias("last_modified_date"),
    ]
    piid = pl.col("award_id_piid")
    new_piid = piid + pl.lit("-NB")
    if "contract_transaction_unique_key" in header:  # current layout: keys carry the PIID as their 3rd part
        for key in ("contract_transaction_unique_key", "contract_award_unique_key"):
            parts = pl.col(key).str.split("_")
            rebuilt = pl.concat_str(
                [parts.list.get(0), parts.list.get(1), new_piid, parts.list.slice(3).list.join("_")], separator="_"
            )
            updates.append(pl.when(is_new & piid.is_not_null()).then(rebuilt).otherwise(pl.col(key)).alias(key))
    updates.append(pl.when(is_new).then(new_piid).otherwise(piid).alias("award_id_piid"))
    out = df.with_columns(updates).select(header)
    tmp = Path(p["out"]).with_suffix(".partial")
    out.write_csv(tmp)
    tmp.rename(p["out"])
    return {
        "seconds": time.perf_counter() - t0,
        "rows": out.height,
        "changed": out.height - out.select(is_new.sum()).item(),
        "new": out.select(is_new.sum()).item(),
        "bytes": Path(p["out"]).stat().st_size,
    }


def prefect(p: dict) -> dict:
    """A trivial flow with no Prefect server configured (Prefect starts a temporary one)."""
    t0 = time.perf_counter()
    from prefect import flow

    t1 = time.perf_counter()

    @flow(name="bench-noop", log_prints=False)
    def noop() -> int:
        return 1

    assert noop() == 1
    t2 = time.perf_counter()
    return {"import_seconds": t1 - t0, "flow_seconds": t2 - t1, "api_url": os.environ.get("PREFECT_API_URL")}


KINDS = {"pipeline": pipeline, "nightly": nightly, "backfill": backfill, "duckdb-raw": duckdb_raw,
         "make-nightly": make_nightly, "prefect": prefect, "dask-map": dask_map, "dask-merge": dask_merge}


def main(argv: list[str]) -> int:
    kind, params, result_path = argv
    result = KINDS[kind](json.loads(params))
    result["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
