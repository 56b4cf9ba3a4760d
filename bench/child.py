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


def backfill(p: dict) -> dict:
    """12 monthly chunks of 2018 (``rows`` each) landed and loaded into one new warehouse by the backfill job
    (``flows.core.feeds.run_feeds`` over the ``sample`` feed: each chunk's map stage overlaps the merge before it)."""
    from awardwatch.flows import settings
    from awardwatch.flows.core import connect
    from awardwatch.flows.core.feeds import run_feeds

    work, rows, batch_rows = Path(p["workdir"]) / "run-feeds", p["rows"], p.get("batch_rows")
    _memory_limit(p.get("memory_limit"))
    work.mkdir(parents=True, exist_ok=True)
    s = settings.load({"AWARDWATCH_HOME": str(work)}).but(
        warehouse=work / "w.duckdb", sample_rows=rows, sample_seed=BACKFILL_SEED, batch_rows=batch_rows)
    t0, c0 = time.perf_counter(), time.process_time()
    con = connect(s)
    try:
        job = run_feeds(con, s, "backfill", ["sample"], start=BACKFILL_MONTHS[0][0], end=BACKFILL_MONTHS[-1][1])
    finally:
        con.close()
    t1, c1 = time.perf_counter(), time.process_time()
    warehouse = work / "w.duckdb"
    return {"backfill_path": "run_feeds", "fallback_reason": None, "seconds": t1 - t0, "cpu_seconds": c1 - c0,
            "rows_per_chunk": rows, "batch_rows": batch_rows, "memory_limit": p.get("memory_limit"),
            "chunks": [_chunk(result, i) for i, result in enumerate(job.results)], "peak_kib": _hwm_kib(),
            "warehouse_bytes": warehouse.stat().st_size, "tables": _warehouse_counts(warehouse)}


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
         "make-nightly": make_nightly, "prefect": prefect}


def main(argv: list[str]) -> int:
    kind, params, result_path = argv
    result = KINDS[kind](json.loads(params))
    result["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
