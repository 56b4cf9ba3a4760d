"""Benchmark: a fiscal year of contracts through the pipeline, against DuckDB reading the file itself.

    uv run python -m bench.run --rows 1000000 [--repeat 3] [--layout current|legacy]
                               [--nightly-rows 10000] [--out bench/out]

Generates the input once per (rows, layout, seed) into --out, then runs every measurement
in a fresh process (``bench.child``), --repeat times, and reports medians:

- pipeline: ``flows.pipeline.ingest`` into a new warehouse, then ``publish``;
- duckdb-raw: ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` (the reference);
- nightly: a file of --nightly-rows rows (80% changed versions of loaded rows, 20% new keys)
  onto a copy of a warehouse that already holds the full file;
- backfill: 12 chunks (the calendar months of 2018, --backfill-rows rows each) landed and loaded one
  after the other into one new warehouse (``run_feeds`` where it exists, else one ``ingest`` per chunk);
- dask (with --dask-rows N): the backfill's map stage (``flows.core.feeds.stage_now`` for the 12 chunks of N rows)
  on a local Dask cluster of 1, then 2 worker processes, and the one writer (``run_feeds``) merging the staged
  chunks into a new warehouse; from those, the projected wall time of a 90M-row backfill;
- Prefect start-up: a trivial flow with no Prefect server configured (reported, not included).

Peak memory is the resident set of the measured process and all its descendants, sampled
every 50 ms from /proc (and never below the kernel's high-water mark of any one of them).
Prints the tables and writes them as JSON to --out/results-<rows>-<layout>.json. Exits 1
with a one-line message when a measurement fails or the pipeline's counts do not reconcile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("land", "read", "transform", "validate", "stage", "load")  # then any other stage ingest reports
CODE = ("flows", "schemas", "transforms", "warehouse")  # the code under test, fingerprinted per measurement
SAMPLE_SECONDS = 0.05
MIB = 1 << 20

# Issue targets
MAX_RATIO_TO_RAW = 1.5
MAX_PEAK_MIB = 2048
MAX_NIGHTLY_SHARE = 0.05
MAX_LAST_TO_FIRST_CHUNK = 1.25  # issue 16: the backfill's last chunk loads within 1.25x of its first
BACKFILL_CHUNKS = 12  # bench.child.BACKFILL_MONTHS
DASK_WORKERS = (1, 2)  # worker processes of the measured local clusters (threads_per_worker=1, as local_cluster)

# Projection of a history backfill from the Dask figures (see _projection and bench/README.md)
PROJECT_ROWS = 90_000_000
PROJECT_MACHINES = 8  # the cluster: this many machines like this one (2 cores, 2 Dask workers each) + the writer
PROJECT_CORES = 2  # one machine's cores, shared by its 2 workers and, on one machine, the writer
PROJECT_STAGING_MB_S = 125.0  # assumed: the writer reads staged Parquet from AWARDWATCH_STAGING_URL at 1 Gbit/s

# performance-notes.md (1M rows, 2018 layout, 2 cores): figures quoted, not measured here
NOTES_DLT_SECONDS = (50.0, 53.0)
NOTES_DLT_PEAK_GB = (2.4, 2.6)
NOTES_RAW_SECONDS = 21.1

RAW_SQL = "CREATE TABLE t AS SELECT * FROM read_csv('{file}')"
RAW_SQL_FALLBACK = "CREATE TABLE t AS SELECT * FROM read_csv('{file}', ignore_errors = true)"


class BenchError(Exception):
    """A failure reported as one line."""


# ---------------------------------------------------------------------------------------------------------
# Processes and memory
# ---------------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return found


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    return pids


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _last_error(log: Path) -> str:
    """The exception line of a child's traceback (``SomeError: message``), else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b.*?:", line)]
    text = (errors or lines or ["no output"])[-1]
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class Measured:
    kind: str
    wall: float  # seconds from start to exit of the process
    peak_mib: float  # max over samples of the tree's summed RSS, at least any one process's high-water mark
    sampled_peak_mib: float
    processes: int  # distinct processes seen in the tree
    cpu: float  # user + system seconds of the process and its waited-for descendants
    others_busy: float | None  # share of the machine's CPU time used by other processes meanwhile (contention)
    result: dict = field(default_factory=dict)


def measure(kind: str, params: dict, work: Path, env: dict | None = None) -> Measured:
    """Runs one ``bench.child`` kind in a fresh process and samples its tree's memory."""
    work.mkdir(parents=True, exist_ok=True)
    result_path, log_path = work / f"{kind}.result.json", work / f"{kind}.log"
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.child", kind, json.dumps(params), str(result_path)]
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p)
    peak = 0
    hwm: dict[int, int] = {}
    with open(log_path, "wb") as log:
        busy0 = _busy_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            total = 0
            for pid in _tree(proc.pid):
                rss, high = _memory_kib(pid)
                total += rss
                if high:
                    hwm[pid] = max(hwm.get(pid, 0), high)
            peak = max(peak, total)
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
        busy1 = _busy_seconds()
    cpu = usage.ru_utime + usage.ru_stime
    others = None
    if busy0 is not None and busy1 is not None and wall > 0:
        others = max(0.0, (busy1 - busy0 - cpu) / (wall * _nproc()))
    if proc.returncode != 0:
        raise BenchError(f"{kind} failed (exit {proc.returncode}): {_last_error(log_path)} (log: {log_path})")
    result = json.loads(result_path.read_text())
    single = max([*hwm.values(), result.get("self_maxrss_kib", 0)], default=0)
    return Measured(kind, wall, max(peak, single) / 1024, peak / 1024, len(hwm), cpu, others, result)


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


def code_state() -> dict[str, str]:
    """Hash of every source file of the code under test (other people may edit it while the benchmark runs)."""
    files = sorted(p for d in CODE for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".sql", ".csv") and p.is_file())
    return {str(p.relative_to(ROOT)): _sha(p) for p in files}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _reuse(path: Path, meta: dict) -> bool:
    side = path.with_name(path.name + ".json")
    if not (path.exists() and side.exists()):
        return False
    try:
        stored = json.loads(side.read_text())
    except ValueError:
        return False
    return {k: stored.get(k) for k in meta} == meta and stored.get("bytes") == path.stat().st_size


def _remember(path: Path, meta: dict, **extra) -> None:
    path.with_name(path.name + ".json").write_text(json.dumps(meta | extra | {"bytes": path.stat().st_size}, indent=2))


def input_file(out: Path, rows: int, layout: str, seed: int) -> tuple[Path, dict, bool]:
    """The big file, generated once per (rows, layout, seed, generator version)."""
    path = out / f"input-{rows}-{layout}-s{seed}.csv"
    meta = {
        "rows": rows,
        "layout": layout,
        "seed": seed,
        "malformed": max(1, rows // 1000),
        "generator": _sha(ROOT / "flows" / "sources" / "sample.py"),
    }
    if _reuse(path, meta):
        return path, json.loads(path.with_name(path.name + ".json").read_text()), True
    path.unlink(missing_ok=True)
    partial = path.with_suffix(".partial.csv")
    started = time.perf_counter()
    command = [sys.executable, "-m", "awardwatch.flows.sources.sample", str(partial), "--rows", str(rows), "--layout", layout,
               "--seed", str(seed), "--malformed", str(meta["malformed"])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"generating {path.name} failed: {last}")
    partial.rename(path)
    _remember(path, meta, seconds=round(time.perf_counter() - started, 2))
    return path, json.loads(path.with_name(path.name + ".json").read_text()), False


def nightly_file(out: Path, source: Path, source_meta: dict, rows: int, work: Path) -> tuple[Path, dict, bool]:
    path = out / f"nightly-{source_meta['rows']}-{source_meta['layout']}-s{source_meta['seed']}-{rows}.csv"
    meta = {"rows": rows, "source": source.name, "source_bytes": source_meta["bytes"],
            "generator": source_meta["generator"], "bench": _sha(ROOT / "bench" / "child.py")}
    if _reuse(path, meta):
        return path, json.loads(path.with_name(path.name + ".json").read_text()), True
    made = measure("make-nightly", {"source": str(source), "rows": rows, "out": str(path)}, work / "make-nightly")
    _remember(path, meta, changed=made.result["changed"], new=made.result["new"], seconds=round(made.result["seconds"], 2))
    return path, json.loads(path.with_name(path.name + ".json").read_text()), False


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------


def check_counts(label: str, result: dict, expected_read: int) -> None:
    """Raises ``BenchError`` unless the run succeeded and its counts reconcile with its input."""
    c = result["counts"]
    if result.get("status") != "succeeded":
        raise BenchError(f"{label}: run status {result.get('status')!r}, expected 'succeeded'")
    parts = ("inserted", "updated", "unchanged", "duplicate", "quarantined", "deleted")
    total = sum(c[p] for p in parts)
    if not c.get("reconciled") or c["read"] != total:
        shown = " + ".join(f"{c[p]:,} {p}" for p in parts)
        raise BenchError(f"{label}: counts do not reconcile: read {c['read']:,} != {shown} = {total:,}")
    if c["read"] != expected_read:
        raise BenchError(f"{label}: counts do not reconcile with the input: read {c['read']:,} rows, the file has {expected_read:,}")


def check_backfill(label: str, result: dict, rows_per_chunk: int) -> None:
    """Raises ``BenchError`` unless the backfill loaded its 12 chunks, each succeeded and reconciles with its rows."""
    chunks = result["chunks"]
    if len(chunks) != BACKFILL_CHUNKS:
        raise BenchError(f"{label} ({result['backfill_path']}): {len(chunks)} chunk results, "
                         f"expected {BACKFILL_CHUNKS}")
    for i, chunk in enumerate(chunks):
        check_counts(f"{label} ({result['backfill_path']}), chunk {i + 1} ({chunk['start']}..{chunk['end']})", chunk,
                     rows_per_chunk)


def check_dask_map(label: str, result: dict, rows_per_chunk: int) -> None:
    """Raises ``BenchError`` unless the map stage staged the 12 chunks, each with all its rows."""
    chunks = result["chunks"]
    if len(chunks) != BACKFILL_CHUNKS:
        raise BenchError(f"{label}: {len(chunks)} chunks staged, expected {BACKFILL_CHUNKS}")
    for i, chunk in enumerate(chunks):
        if chunk["rows"] != rows_per_chunk:
            raise BenchError(f"{label}, chunk {i + 1} ({chunk['start']}..{chunk['end']}): staged {chunk['rows']} rows, "
                             f"expected {rows_per_chunk:,}")


# ---------------------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    versions = {}
    for package in ("duckdb", "polars", "pyarrow", "pandera", "prefect"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": _nproc(),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
    }


# ---------------------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _phase_peak(m: Measured, peak_key: str | None) -> float | None:
    """The process tree's peak, or (peak_key) the child's own peak during one phase, MiB."""
    if peak_key is None:
        return m.peak_mib
    kib = m.result.get(peak_key)
    return None if kib is None else kib / 1024


def _summary(runs: list[Measured], seconds_key: str | None, rows: int | None = None, nbytes: int | None = None,
             peak_key: str | None = None, cpu_key: str | None = None, error_key: str | None = None) -> dict:
    seconds = [m.result[seconds_key] if seconds_key else m.wall for m in runs]
    med = _median(seconds)
    return {
        "seconds": med,
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "process_seconds": _median([m.wall for m in runs]),
        "rows_per_second": rows / med if rows and med else None,
        "mb_per_second": nbytes / 1e6 / med if nbytes and med else None,
        "failed": [m.result.get(error_key) for m in runs if error_key and m.result.get(error_key)],
        "peak_mib": _median([_phase_peak(m, peak_key) for m in runs]),
        "cpu_seconds": _median([m.cpu for m in runs]),  # the whole process
        "op_cpu_seconds": _median([m.result.get(cpu_key) for m in runs]) if cpu_key else None,  # the operation
        "others_busy": _median([m.others_busy for m in runs]),
        "peak_mib_max": max((_phase_peak(m, peak_key) for m in runs), key=lambda v: -1 if v is None else v),
        "repeats": [
            {"seconds": s, "process_seconds": m.wall, "cpu_seconds": m.cpu, "others_busy": m.others_busy,
             "peak_mib": m.peak_mib, "sampled_peak_mib": m.sampled_peak_mib, "processes": m.processes, "result": m.result}
            for s, m in zip(seconds, runs)
        ],
    }


def _backfill_summary(runs: list[Measured], rows_per_chunk: int) -> dict | None:
    """The backfill's figures: the whole job, the sum of its chunk loads, and each chunk (medians over repeats)."""
    if not runs:
        return None
    rows = rows_per_chunk * BACKFILL_CHUNKS
    for m in runs:
        chunks = m.result["chunks"]
        m.result["load_seconds"] = sum(c["seconds"] for c in chunks)
        cpu = [c.get("ingest_cpu_seconds") for c in chunks]
        m.result["load_cpu_seconds"] = None if None in cpu else sum(cpu)
        m.result["last_to_first"] = chunks[-1]["seconds"] / chunks[0]["seconds"] if chunks[0]["seconds"] else None
    per_chunk = []
    for i, first in enumerate(runs[0].result["chunks"]):
        taken = [m.result["chunks"][i] for m in runs]
        per_chunk.append({
            "start": first["start"], "end": first["end"], "counts": first["counts"],  # counts of the first repeat
            "seconds": _median([c["seconds"] for c in taken]),
            "land_seconds": _median([c.get("land_seconds") for c in taken]),
            "stages": {k: _median([c["stages"].get(k, 0.0) for c in taken]) for k in first["stages"]},
        })
    paths = sorted({m.result["backfill_path"] for m in runs})
    return {
        "backfill_path": paths[0] if len(paths) == 1 else " and ".join(paths),
        "fallback_reason": next((m.result["fallback_reason"] for m in runs if m.result["fallback_reason"]), None),
        "chunks": BACKFILL_CHUNKS,
        "rows_per_chunk": rows_per_chunk,
        "rows": rows,
        "window": f"{per_chunk[0]['start']}..{per_chunk[-1]['end']}",
        "total": _summary(runs, "seconds", rows, cpu_key="cpu_seconds"),  # the whole job: land + load of 12 chunks
        "loads": _summary(runs, "load_seconds", rows, cpu_key="load_cpu_seconds"),  # sum of the chunks' seconds
        "first_chunk_seconds": per_chunk[0]["seconds"],
        "last_chunk_seconds": per_chunk[-1]["seconds"],
        "last_to_first": _median([m.result["last_to_first"] for m in runs]),  # median of the repeats' ratios
        "transactions": runs[0].result["tables"]["transactions"],
        "inserted": sum(c["counts"]["inserted"] for c in runs[0].result["chunks"]),
        "per_chunk": per_chunk,
    }


def _dask_summary(maps: dict[int, list[Measured]], merges: list[Measured], rows_per_chunk: int) -> dict | None:
    """The Dask figures: the map stage per worker count, the one writer's merge (the backfill's summary of the
    ``dask-merge`` runs), and the projection made from them."""
    if not merges:
        return None
    rows = rows_per_chunk * BACKFILL_CHUNKS
    by_workers = {}
    for n, runs in maps.items():
        chunks = [c for m in runs for c in m.result["chunks"]]
        names = sorted({k for c in chunks for k in c["stages"]})
        by_workers[str(n)] = {
            "workers": n,
            "map": _summary(runs, "map_seconds", rows, cpu_key="map_cpu_seconds"),  # peak: the whole process tree
            "startup_seconds": _median([m.result["startup_seconds"] for m in runs]),
            "chunk_seconds": _median([c["task_seconds"] for c in chunks]),  # one chunk's task on its worker
            "fetch_seconds": _median([c["task_seconds"] - sum(c["stages"].values()) for c in chunks if c["task_seconds"]]),
            "stages": {k: _median([c["stages"].get(k, 0.0) for c in chunks]) for k in names},  # per chunk
            "workers_used": _median([len({c["worker"] for c in m.result["chunks"]}) for m in runs]),
            "staged_bytes_per_row": sum(c["staged_bytes"] for c in runs[0].result["chunks"]) / rows,
        }
    merge = _backfill_summary(merges, rows_per_chunk)
    for m in merges:
        last = m.result["chunks"][-1]["stages"]
        m.result["settle_seconds"] = last.get("companies", 0.0) + last.get("invariants", 0.0)
        m.result["fixed_seconds"] = m.result["seconds"] - m.result["load_seconds"] - m.result["settle_seconds"]
    merge["settle_seconds"] = _median([m.result["settle_seconds"] for m in merges])  # once per job, at the end
    merge["fixed_seconds"] = _median([m.result["fixed_seconds"] for m in merges])  # connect, migrations, chunk plan
    last = merge["last_chunk_seconds"]
    merge["last_chunk_rows_per_second"] = rows_per_chunk / last if last else None
    summary = {"rows_per_chunk": rows_per_chunk, "rows": rows, "maps": by_workers, "merge": merge}
    summary["projection"] = _projection(summary)
    return summary


def _projection(d: dict) -> dict | None:
    """Wall time of a PROJECT_ROWS backfill in chunks of the measured size, on one 2-core machine and on
    PROJECT_MACHINES of them: max(map time / parallelism, merge time, other bounds) + overheads."""
    one, two, merge = d["maps"].get("1"), d["maps"].get("2"), d["merge"]
    if not two or not two["map"]["rows_per_second"] or not merge["loads"]["rows_per_second"]:
        return None
    total, c, rows = PROJECT_ROWS, d["rows_per_chunk"], d["rows"]
    r1 = one["map"]["rows_per_second"] if one else None
    r2, rm = two["map"]["rows_per_second"], merge["loads"]["rows_per_second"]
    cpu_per_row = ((two["map"]["op_cpu_seconds"] or 0) + (merge["total"]["op_cpu_seconds"] or 0)) / rows
    overheads = {
        "fill (the first chunk's map, before any merge)": two["chunk_seconds"] or 0.0,
        "drain (the last chunk's merge, after the last map)": c / rm,
        "settle (companies + invariants, scaled by rows)": merge["settle_seconds"] * total / rows,
        "writer fixed (connect, migrations, chunk plan)": max(0.0, merge["fixed_seconds"] or 0.0),
        "cluster start-up (2 workers, imports, warm-up)": two["startup_seconds"] or 0.0,
    }
    extra = sum(overheads.values())

    def case(terms: dict[str, float]) -> dict:
        bound = max(terms, key=terms.get)
        return {"terms": terms, "bound": bound, "seconds": terms[bound] + extra}

    staged = two["staged_bytes_per_row"]
    return {
        "rows": total, "rows_per_chunk": c, "chunks": -(-total // c),
        "map_rows_per_second": {"1": r1, "2": r2}, "merge_rows_per_second": rm, "cpu_seconds_per_row": cpu_per_row,
        "staged_bytes_per_row": staged, "staging_mb_per_second": PROJECT_STAGING_MB_S,
        "speedup_2_over_1": r2 / r1 if r1 else None,
        "break_even_machines": rm / r2,  # machines whose map rate equals the writer's merge rate
        "concurrency_needed": {"one machine": 2 + 1, "cluster": 2 * PROJECT_MACHINES + 1},
        "overheads": overheads, "overhead_seconds": extra,
        "one_machine": case({"map: R / r_map(2)": total / r2, "merge: R / r_merge": total / rm,
                             f"cpu: R x cpu_per_row / {PROJECT_CORES} cores": total * cpu_per_row / PROJECT_CORES}),
        "cluster": case({f"map: R / ({PROJECT_MACHINES} x r_map(2))": total / (PROJECT_MACHINES * r2),
                         "merge: R / r_merge": total / rm,
                         "staging: R x staged_bytes_per_row / B": total * staged / (PROJECT_STAGING_MB_S * 1e6)}),
    }


def _fmt(value, spec: str = ",.1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for n, r in enumerate([headers, *rows]):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(res: dict) -> str:
    m, inp, meas = res["machine"], res["input"], res["measurements"]
    raw = meas["duckdb-raw"]["seconds"]
    out = [
        (f"awardwatch benchmark: {inp['rows']:,} rows, {inp['layout']} layout, {inp['bytes'] / 1e6:,.1f} MB input "
         f"({inp['malformed']:,} malformed rows), median of {res['repeat']} run(s) per measurement, each in a fresh process"),
        (f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['os']}; Python {m['python']}, "
         f"duckdb {m['duckdb']}, polars {m['polars']}, pyarrow {m['pyarrow']}, pandera {m['pandera']}, prefect {m['prefect']}"),
        (f"input: {inp['path']} ({'reused' if inp['reused'] else 'generated'}), read from the page cache "
         "(generated or read just before; caches not dropped)"),
        f"pipeline: ingest(batch_rows={meas['pipeline']['ingest']['repeats'][0]['result'].get('batch_rows')}), DuckDB "
        + (f"memory_limit OVERRIDDEN to {res['memory_limit']} for diagnosis (not the code's default)"
           if res.get("memory_limit") else "settings as warehouse.db.connect sets them")
        + "; code fingerprint in the JSON",
        "",
    ]
    rows = []

    def line(name: str, s: dict, ratio: bool = True, process: bool = True) -> None:
        spread = f"{s['seconds_min']:,.2f}-{s['seconds_max']:,.2f}" if len(s["repeats"]) > 1 else ""
        if s.get("failed"):
            name += f" FAILED {len(s['failed'])}/{len(s['repeats'])}"
        rows.append([
            name, _fmt(s["seconds"], ",.2f"), spread, _fmt(s["process_seconds"] if process else None, ",.2f"),
            _fmt(s["cpu_seconds"] if process else s["op_cpu_seconds"], ",.1f"),
            _fmt(100 * s["others_busy"] if process and s["others_busy"] is not None else None, ".0f"),
            _fmt(s["rows_per_second"], ",.0f"), _fmt(s["mb_per_second"], ",.1f"), _fmt(s["peak_mib"], ",.0f"),
            _fmt(s["seconds"] / raw if ratio and raw else None, ".2f") + ("x" if ratio and raw else ""),
        ])

    p = meas["pipeline"]
    line("pipeline ingest (land..load)", p["ingest"], process=False)
    line("pipeline publish (Parquet)", p["publish"], process=False)
    line("pipeline ingest + publish", p["total"])
    line(f"duckdb-raw ({res['raw_variant']})", meas["duckdb-raw"])
    n = meas["nightly"]
    line(f"nightly ingest ({n['rows']:,} rows)", n["ingest"], process=False)
    line("nightly publish", n["publish"], process=False)
    line("nightly ingest + publish", n["total"], ratio=False)
    bf = meas.get("backfill")
    if bf:
        line(f"backfill {bf['chunks']} x {bf['rows_per_chunk']:,} rows", bf["total"], ratio=False)
        line("backfill chunk loads (sum)", bf["loads"], ratio=False, process=False)
    dk = meas.get("dask")
    if dk:
        for mp in dk["maps"].values():
            workers = f"{mp['workers']} worker{'s' if mp['workers'] > 1 else ''}"
            line(f"dask map {BACKFILL_CHUNKS} x {dk['rows_per_chunk']:,}, {workers}", mp["map"], ratio=False)
        line("dask merge, one writer (chunks)", dk["merge"]["loads"], ratio=False, process=False)
        line("dask merge job (+ connect, settle)", dk["merge"]["total"], ratio=False)
    if meas.get("prefect") and meas["prefect"].get("repeats"):
        line("prefect start-up (not incl.)", meas["prefect"], ratio=False)
    out.append(_table(
        ["measurement", "median s", "range s", "process s", "cpu s", "others %", "rows/s", "MB/s", "peak MiB", "/ duckdb-raw"],
        rows))
    out.append(
        "  (median s: the operation timed inside the process; process s: the whole process, interpreter start-up and "
        "imports included; cpu s: user+system CPU seconds of the process, or of the phase for ingest and publish; others %: share of the machine's CPU used by other "
        "processes meanwhile (contention; 0 on an idle machine); peak MiB: resident memory of the process and its children, sampled, for the rows with a "
        "process time; for the ingest and publish rows, the process's own high-water mark during that phase.)"
    )
    if res.get("raw_note"):
        out.append(f"  duckdb-raw: {res['raw_note']}")
    if bf:
        out.append(_backfill_line(bf))
    for label, s in (("pipeline publish", p["publish"]), ("nightly publish", meas["nightly"]["publish"])):
        for error in dict.fromkeys(s.get("failed") or []):
            out.append(f"  {label} FAILED: {error} (its seconds are the time until it failed)")
    for error in (meas.get("prefect") or {}).get("errors", []):
        out.append(f"  prefect start-up FAILED in {len(meas['prefect']['errors'])} of {meas['prefect']['runs']} run(s): {error}")
        break
    if meas.get("prefect") and meas["prefect"].get("repeats"):
        pf = meas["prefect"]
        out.append(f"  prefect: a trivial @flow, PREFECT_API_URL unset, PREFECT_HOME={res['out']}/prefect-home "
                   f"({'new' if pf['fresh_prefect_home_on_first_run'] else 'existing'} before the first run): import "
                   f"{pf['import_seconds']:.1f} s + flow call {pf['flow_seconds']:.1f} s (temporary server), "
                   f"{pf['processes_max']} processes; the pipeline figures above include no Prefect")

    out += ["", "Stage breakdown of the pipeline ingest (medians; RunResult.stages):"]
    st = p["stages"]
    srows = [[name, _fmt(sec, ",.2f"), _fmt(100 * sec / p["ingest"]["seconds"], ".1f") + "%", _fmt(sec / raw if raw else None, ".2f") + "x"]
             for name, sec in st.items()]
    out.append(_table(["stage", "s", "of ingest", "/ duckdb-raw"], srows))

    if bf:
        out += ["", f"Backfill chunks ({bf['backfill_path']}; medians; load s = RunResult.seconds; "
                    "counts of the first repeat):"]
        brows = [[f"{c['start']}..{c['end']}", f"{c['counts']['read']:,}", f"{c['counts']['inserted']:,}",
                  f"{c['counts']['updated'] + c['counts']['unchanged']:,}", _fmt(c["land_seconds"], ",.2f"),
                  _fmt(c["seconds"], ",.2f"), _fmt(c["stages"].get("companies"), ",.2f"),
                  _fmt(c["seconds"] / bf["first_chunk_seconds"] if bf["first_chunk_seconds"] else None, ".2f") + "x"]
                 for c in bf["per_chunk"]]
        out.append(_table(["chunk", "read", "inserted", "updated+unchanged", "land s", "load s", "companies s",
                           "/ first"], brows))
        out.append(f"  land s: generating the chunk file, timed by the bench only on the ingest-per-chunk path; "
                   f"after the backfill the warehouse holds {bf['transactions']:,} transactions "
                   f"({bf['inserted']:,} inserted by the chunks)")

    if dk:
        out += ["", *_dask_lines(dk)]

    out += ["", "Counts (first repeat):"]
    crows = []
    for name, r in (("pipeline", p["ingest"]["repeats"][0]["result"]), ("nightly", n["ingest"]["repeats"][0]["result"])):
        c = r["counts"]
        crows.append([name, *(f"{c[k]:,}" for k in ("read", "inserted", "updated", "unchanged", "duplicate", "quarantined", "deleted")),
                      "yes" if c["reconciled"] else "NO", f"{r['tables']['transactions']:,}"])
    out.append(_table(["run", "read", "inserted", "updated", "unchanged", "duplicate", "quarantined", "deleted", "reconciled",
                       "transactions"], crows))
    if n.get("file"):
        out.append(f"  nightly file: {n['file']['changed']:,} changed versions of loaded rows, {n['file']['new']:,} new keys")
    for note in res.get("notes", []):
        out.append(f"  note: {note}")

    out += ["", "Issue targets:"]
    trows = [[t["target"], t["measured"], {True: "yes", False: "NO", None: "n/a"}[t["holds"]]] for t in res["targets"]]
    out.append(_table(["target", "measured", "holds"], trows))
    out.append(f"  dlt: not installed, not measured. {res['dlt_note']}")

    if res.get("flat_memory"):
        out += ["", f"Peak memory by input size ({inp['layout']} layout, results in {res['out']}):"]
        out.append(_table(["rows", "pipeline process peak MiB", "ingest peak MiB", "ingest s", "duckdb-raw peak MiB"],
                          [[f"{r['rows']:,}", _fmt(r["pipeline_peak_mib"], ",.0f"), _fmt(r["ingest_peak_mib"], ",.0f"),
                            _fmt(r["pipeline_seconds"], ",.2f"), _fmt(r["raw_peak_mib"], ",.0f")] for r in res["flat_memory"]]))
        if res.get("flat_memory_check"):
            out.append(f"  {res['flat_memory_check']}")
    return "\n".join(out)


def _backfill_line(bf: dict) -> str:
    t = bf["total"]
    how = bf["backfill_path"] + (f" ({bf['fallback_reason']})" if bf["fallback_reason"] else "")
    return (f"  backfill: {bf['chunks']} chunks x {bf['rows_per_chunk']:,} rows ({bf['window']}, one a month, one new "
            f"warehouse) via {how}: {t['seconds']:,.2f} s wall, {t['op_cpu_seconds']:,.1f} CPU s, "
            f"{t['rows_per_second']:,.0f} rows/s, peak {t['peak_mib']:,.0f} MiB; chunk load s first "
            f"{bf['first_chunk_seconds']:,.2f}, last {bf['last_chunk_seconds']:,.2f}, last/first "
            f"{_fmt(bf['last_to_first'], '.2f')}x (issue 16: <= {MAX_LAST_TO_FIRST_CHUNK}x)")


def _percent(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _dask_lines(dk: dict) -> list[str]:
    """The Dask section of the report: the map stage per worker count, the merge, the projection and its formula."""
    out = [f"Dask backfill: the map stage of {BACKFILL_CHUNKS} chunks x {dk['rows_per_chunk']:,} rows "
           "(flows.core.feeds.stage_now submitted at once to a flows.tasks.local_cluster; workers warmed up first), then one writer merging them "
           "(run_feeds; medians):"]
    names = sorted({k for mp in dk["maps"].values() for k in mp["stages"]})
    rows = [[str(mp["workers"]), _fmt(mp["map"]["seconds"], ",.2f"), _fmt(mp["map"]["rows_per_second"], ",.0f"),
             _fmt(mp["map"]["op_cpu_seconds"], ",.1f"), _fmt(mp["chunk_seconds"], ",.2f"), _fmt(mp["fetch_seconds"], ",.2f"),
             *(_fmt(mp["stages"].get(k), ",.2f") for k in names), _fmt(mp["startup_seconds"], ",.1f"),
             _fmt(mp["map"]["peak_mib"], ",.0f"), _fmt(_percent(mp["map"]["others_busy"]), ".0f")]
            for mp in dk["maps"].values()]
    out.append(_table(["workers", "map s", "rows/s", "map cpu s", "chunk s", "fetch s", *(f"{k} s" for k in names),
                       "start-up s", "peak MiB", "others %"], rows))
    out.append("  (map s: first submit to the last staged chunk back; chunk s: one chunk's task on its worker; fetch s: "
               "chunk s minus its Staged.stages (the feed's land: generating the sample CSV); stage columns per chunk; "
               "start-up s: cluster, imports and one warm-up chunk per worker, not in map s; peak MiB: the process tree, "
               "scheduler and workers included)")
    mg = dk["merge"]
    out.append(_backfill_line(mg).replace("  backfill:", "  merge:", 1)
               + f"; settle {mg['settle_seconds']:,.2f} s, writer fixed {mg['fixed_seconds']:,.2f} s")
    pj = dk.get("projection")
    if not pj:
        return out
    out += ["", f"Projection: a {pj['rows']:,}-row history backfill in {pj['chunks']:,} chunks of {pj['rows_per_chunk']:,} "
                "rows (the measured size):"]
    out.append(f"  r_map(1) = {_fmt(pj['map_rows_per_second']['1'], ',.0f')}, r_map(2) = "
               f"{pj['map_rows_per_second']['2']:,.0f} rows/s (this machine; speed-up {_fmt(pj['speedup_2_over_1'], '.2f')}x), "
               f"r_merge = {pj['merge_rows_per_second']:,.0f} rows/s (sum of the chunks' RunResult.seconds), cpu_per_row = "
               f"{pj['cpu_seconds_per_row'] * 1e6:,.1f} CPU us (map + merge job), staged_bytes_per_row = "
               f"{pj['staged_bytes_per_row']:,.0f}, B = {pj['staging_mb_per_second']:,.0f} MB/s (assumed)")
    out.append("  T = max(bounds) + fill + drain + settle + writer fixed + start-up; overheads: "
               + ", ".join(f"{k} {v:,.0f} s" for k, v in pj["overheads"].items()))
    for label, key, where in (("one 2-core machine (2 workers + the writer)", "one_machine", "one machine"),
                              (f"{PROJECT_MACHINES} such machines (16 workers) + the writer", "cluster", "cluster")):
        c = pj[key]
        bounds = ", ".join(f"{k} = {v:,.0f} s" for k, v in c["terms"].items())
        out.append(f"  {label}: max({bounds}) + {pj['overhead_seconds']:,.0f} s = {c['seconds']:,.0f} s "
                   f"({c['seconds'] / 3600:,.2f} h; bound: {c['bound'].split(':')[0]}; needs --concurrency >= "
                   f"{pj['concurrency_needed'][where]})")
    out.append(f"  the writer bounds any cluster beyond {pj['break_even_machines']:,.1f} machines (r_merge / r_map(2)); "
               f"the merge rate is measured into a warehouse of {dk['rows']:,} rows (its last chunk: "
               f"{_fmt(mg['last_chunk_rows_per_second'], ',.0f')} rows/s), settle is scaled linearly from it (an upper side "
               "when the chunks are small); a real feed's download and Prefect's per-task overhead are not measured")
    return out


def _flat_memory(out: Path, layout: str, suffix: str, current: dict) -> list[dict]:
    """Peak memory of this run and of the other sizes' results in the same folder."""

    def row(r: dict) -> dict:
        m = r["measurements"]
        return {"rows": r["input"]["rows"], "pipeline_peak_mib": m["pipeline"]["total"]["peak_mib"],
                "ingest_peak_mib": m["pipeline"]["ingest"]["peak_mib"], "pipeline_seconds": m["pipeline"]["ingest"]["seconds"],
                "raw_peak_mib": m["duckdb-raw"]["peak_mib"]}

    found = {current["input"]["rows"]: row(current)}
    for path in out.glob(f"results-*-{layout}{suffix}.json"):
        try:
            other = row(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            continue  # not a results file of this version
        found.setdefault(other["rows"], other)
    return [found[rows] for rows in sorted(found)]


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / ".gitignore").exists():
        (out / ".gitignore").write_text("*\n")
    work = out / "work" / f"{args.rows}-{args.layout}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.quiet else (lambda *a: None)
    code0 = code_state()
    changed: dict[str, str] = {}  # file -> the first measurement after which it differed

    def track(after: str) -> None:
        now = code_state()
        for name in sorted(set(code0) | set(now)):
            if code0.get(name) != now.get(name) and name not in changed:
                changed[name] = after
                say(f"warning: {name} changed during the benchmark (noticed after {after})")
    keep = args.keep_work  # and on failure, for its logs
    try:
        say(f"input: {args.rows:,} rows, {args.layout} layout ...")
        big, meta, reused = input_file(out, args.rows, args.layout, args.seed)
        nightly_rows = min(args.nightly_rows, args.rows)
        small, small_meta, _ = nightly_file(out, big, meta, nightly_rows, work)
        base = work / "base.duckdb"
        knobs = {"batch_rows": args.batch_rows, "memory_limit": args.duckdb_memory_limit}
        raw_sql, raw_note = RAW_SQL.format(file=big), None
        pipeline_runs: list[Measured] = []
        raw_runs: list[Measured] = []
        nightly_runs: list[Measured] = []
        for i in range(args.repeat):
            say(f"[{i + 1}/{args.repeat}] pipeline ...")
            d = work / f"pipeline-{i}"
            m = measure("pipeline", {"file": str(big), "workdir": str(d), **knobs}, d)
            track(f"pipeline run {i + 1}")
            check_counts(f"pipeline run {i + 1}", m.result, args.rows)
            if m.result["tables"]["transactions"] != m.result["counts"]["inserted"]:
                raise BenchError(f"pipeline run {i + 1}: {m.result['tables']['transactions']:,} rows in transactions, "
                                 f"{m.result['counts']['inserted']:,} counted as inserted")
            pipeline_runs.append(m)
            if i == 0:
                (d / "w.duckdb").rename(base)
            shutil.rmtree(d, ignore_errors=True)
            say(f"[{i + 1}/{args.repeat}] duckdb-raw ...")
            d = work / f"raw-{i}"
            try:
                m = measure("duckdb-raw", {"workdir": str(d), "sql": raw_sql}, d)
            except BenchError as exc:
                if i or raw_sql != RAW_SQL.format(file=big):
                    raise
                reason = str(exc).split(" (log: ")[0]
                raw_note = (f"plain read_csv('<file>') fails on this file's malformed rows ({reason}); measured with "
                            "ignore_errors = true (rows DuckDB cannot parse are skipped)")
                raw_sql = RAW_SQL_FALLBACK.format(file=big)
                shutil.rmtree(d, ignore_errors=True)
                m = measure("duckdb-raw", {"workdir": str(d), "sql": raw_sql}, d)
            track(f"duckdb-raw run {i + 1}")
            raw_runs.append(m)
            shutil.rmtree(d, ignore_errors=True)
        for i in range(args.repeat):
            say(f"[{i + 1}/{args.repeat}] nightly ({nightly_rows:,} rows) ...")
            d = work / f"nightly-{i}"
            d.mkdir(parents=True)
            shutil.copyfile(base, d / "w.duckdb")
            m = measure("nightly", {"file": str(small), "workdir": str(d), **knobs}, d)
            track(f"nightly run {i + 1}")
            check_counts(f"nightly run {i + 1}", m.result, nightly_rows)
            nightly_runs.append(m)
            shutil.rmtree(d, ignore_errors=True)
        backfill_runs: list[Measured] = []
        for i in range(0 if args.skip_backfill else args.repeat):
            say(f"[{i + 1}/{args.repeat}] backfill ({BACKFILL_CHUNKS} x {args.backfill_rows:,} rows) ...")
            d = work / f"backfill-{i}"
            m = measure("backfill", {"workdir": str(d), "rows": args.backfill_rows, **knobs}, d)
            track(f"backfill run {i + 1}")
            check_backfill(f"backfill run {i + 1}", m.result, args.backfill_rows)
            backfill_runs.append(m)
            shutil.rmtree(d, ignore_errors=True)
        dask_maps: dict[int, list[Measured]] = {n: [] for n in DASK_WORKERS}
        dask_merges: list[Measured] = []
        for i in range(args.repeat if args.dask_rows else 0):
            for n in DASK_WORKERS:
                say(f"[{i + 1}/{args.repeat}] dask map ({BACKFILL_CHUNKS} x {args.dask_rows:,} rows, {n} worker(s)) ...")
                d = work / f"dask-{i}-{n}"
                m = measure("dask-map", {"home": str(d / "home"), "rows": args.dask_rows, "workers": n, **knobs}, d)
                track(f"dask map run {i + 1} ({n} workers)")
                check_dask_map(f"dask map run {i + 1} ({n} workers)", m.result, args.dask_rows)
                dask_maps[n].append(m)
                if n != DASK_WORKERS[-1]:
                    shutil.rmtree(d, ignore_errors=True)
            say(f"[{i + 1}/{args.repeat}] dask merge (one writer) ...")
            m = measure("dask-merge", {"home": str(d / "home"), "rows": args.dask_rows, **knobs}, d)  # the last map's chunks
            track(f"dask merge run {i + 1}")
            check_backfill(f"dask merge run {i + 1}", m.result, args.dask_rows)
            dask_merges.append(m)
            shutil.rmtree(d, ignore_errors=True)
        prefect_runs: list[Measured] = []
        prefect_errors: list[str] = []
        fresh_home = False
        if not args.no_prefect:
            home = out / "prefect-home"
            fresh_home = not home.exists()
            env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
            env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # default 20 s: too short on a busy machine
            for i in range(args.repeat):
                say(f"[{i + 1}/{args.repeat}] prefect start-up ...")
                try:
                    prefect_runs.append(measure("prefect", {}, work / f"prefect-{i}", env))
                except BenchError as exc:  # reported, not fatal: Prefect is not part of the pipeline's figures
                    prefect_errors.append(str(exc).split(" (log: ")[0])
                    say(f"warning: {prefect_errors[-1]}")
    except BaseException:
        if not keep:
            say(f"kept {work} (logs of the failed measurement)")
        keep = True
        raise
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            try:
                work.parent.rmdir()  # only when no other run's work is there
            except OSError:
                pass

    rows, nbytes = args.rows, meta["bytes"]
    for m in [*pipeline_runs, *nightly_runs]:
        m.result["total_seconds"] = m.result["ingest_seconds"] + m.result["publish_seconds"]
    ingest = _summary(pipeline_runs, "ingest_seconds", rows, nbytes, peak_key="ingest_peak_kib", cpu_key="ingest_cpu_seconds")
    publish = _summary(pipeline_runs, "publish_seconds", peak_key="publish_peak_kib", cpu_key="publish_cpu_seconds",
                       error_key="publish_error")
    total = _summary(pipeline_runs, "total_seconds", rows, nbytes)
    names = [*STAGES, *sorted({k for m in pipeline_runs for k in m.result["stages"]} - set(STAGES))]
    stages = {s: _median([m.result["stages"].get(s, 0.0) for m in pipeline_runs]) for s in names}
    stages["other (connect, runs, close)"] = _median(
        [m.result["ingest_seconds"] - sum(m.result["stages"].values()) for m in pipeline_runs])
    stages["publish"] = publish["seconds"]
    raw = _summary(raw_runs, "seconds", rows, nbytes, cpu_key="cpu_seconds")
    n_ingest = _summary(nightly_runs, "ingest_seconds", nightly_rows, small_meta["bytes"], peak_key="ingest_peak_kib",
                        cpu_key="ingest_cpu_seconds")
    n_publish = _summary(nightly_runs, "publish_seconds", peak_key="publish_peak_kib", cpu_key="publish_cpu_seconds",
                         error_key="publish_error")
    n_total = _summary(nightly_runs, "total_seconds")
    backfill = _backfill_summary(backfill_runs, args.backfill_rows)
    dask = _dask_summary(dask_maps, dask_merges, args.dask_rows) if args.dask_rows else None
    prefect = _summary(prefect_runs, None) if prefect_runs else None
    if prefect_errors:
        prefect = (prefect or {}) | {"errors": prefect_errors, "runs": len(prefect_runs) + len(prefect_errors)}
    if prefect_runs:
        prefect["fresh_prefect_home_on_first_run"] = fresh_home
        prefect["flow_seconds"] = _median([m.result["flow_seconds"] for m in prefect_runs])
        prefect["import_seconds"] = _median([m.result["import_seconds"] for m in prefect_runs])
        prefect["processes_max"] = max(m.processes for m in prefect_runs)

    ratio = ingest["seconds"] / raw["seconds"]
    cpu_ratio = ingest["op_cpu_seconds"] / raw["op_cpu_seconds"]
    peak = max(total["peak_mib_max"], n_total["peak_mib_max"])
    share = n_ingest["seconds"] / ingest["seconds"]
    share_with_publish = (n_ingest["seconds"] + n_publish["seconds"]) / (ingest["seconds"] + publish["seconds"])
    targets = [
        {"target": f"full ingest (validation and load included) <= {MAX_RATIO_TO_RAW}x duckdb-raw",
         "measured": f"{ratio:.2f}x ({ingest['seconds']:.2f} s / {raw['seconds']:.2f} s)", "holds": ratio <= MAX_RATIO_TO_RAW,
         "value": ratio},
        {"target": "  the same in CPU seconds (less sensitive to other load; not the issue's target)",
         "measured": f"{cpu_ratio:.2f}x ({ingest['op_cpu_seconds']:.1f} / {raw['op_cpu_seconds']:.1f} CPU s)",
         "holds": None, "value": cpu_ratio},
        {"target": "peak memory < 2 GiB (pipeline and nightly processes, publish included, worst repeat)",
         "measured": f"{peak:,.0f} MiB (ingest alone: {max(ingest['peak_mib_max'] or 0, n_ingest['peak_mib_max'] or 0):,.0f} MiB)",
         "holds": peak < MAX_PEAK_MIB, "value": peak},
        {"target": f"nightly ({nightly_rows:,} rows) < {MAX_NIGHTLY_SHARE:.0%} of the full load (ingest)",
         "measured": f"{share:.1%} ({n_ingest['seconds']:.2f} s / {ingest['seconds']:.2f} s)", "holds": share < MAX_NIGHTLY_SHARE,
         "value": share},
        {"target": "  the same, publish included (not the issue's target)",
         "measured": f"{share_with_publish:.1%}", "holds": None, "value": share_with_publish},
    ]
    if backfill and backfill["last_to_first"] is not None:
        targets.append(
            {"target": f"backfill: last chunk's load <= {MAX_LAST_TO_FIRST_CHUNK}x the first's (issue 16)",
             "measured": f"{backfill['last_to_first']:.2f}x ({backfill['last_chunk_seconds']:.2f} s / "
                         f"{backfill['first_chunk_seconds']:.2f} s, {backfill['backfill_path']})",
             "holds": backfill["last_to_first"] <= MAX_LAST_TO_FIRST_CHUNK, "value": backfill["last_to_first"]})
    notes = []
    if changed:
        notes.append("the code under test changed while the benchmark ran, so the repeats may not measure the same code: "
                     + ", ".join(f"{name} (after {after})" for name, after in changed.items()))
    quarantined = pipeline_runs[0].result["counts"]["quarantined"]
    if quarantined != meta["malformed"]:
        notes.append(f"{quarantined:,} rows quarantined, {meta['malformed']:,} written malformed by the generator")
    if args.layout != "current" or rows < 1_000_000:
        notes.append("performance-notes.md figures are for 1,000,000 rows in the legacy layout: compare ratios, not seconds")
    raw_notes_ratio = (NOTES_DLT_SECONDS[0] / NOTES_RAW_SECONDS, NOTES_DLT_SECONDS[1] / NOTES_RAW_SECONDS)
    dlt_note = (
        f"performance-notes.md (1M rows, 2018 layout, 2 cores): dlt filesystem source into DuckDB took "
        f"{NOTES_DLT_SECONDS[0]:.0f}-{NOTES_DLT_SECONDS[1]:.0f} s and {NOTES_DLT_PEAK_GB[0]}-{NOTES_DLT_PEAK_GB[1]} GB, "
        f"{raw_notes_ratio[0]:.1f}-{raw_notes_ratio[1]:.1f}x its DuckDB CTAS ({NOTES_RAW_SECONDS} s); "
        f"the pipeline here: {ratio:.2f}x duckdb-raw."
    )
    result = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "out": str(out),
        "repeat": args.repeat,
        "machine": machine(),
        "input": {"path": str(big), "reused": reused, **meta},
        "memory_limit": args.duckdb_memory_limit,
        "code": code0,
        "code_changed_during_run": changed,
        "raw_variant": "read_csv" if raw_note is None else "read_csv, ignore_errors",
        "raw_sql": raw_sql,
        "raw_note": raw_note,
        "measurements": {
            "pipeline": {"ingest": ingest, "publish": publish, "total": total, "stages": stages},
            "duckdb-raw": raw,
            "nightly": {"rows": nightly_rows, "file": small_meta, "ingest": n_ingest, "publish": n_publish, "total": n_total},
            "backfill": backfill,  # None with --skip-backfill
            "dask": dask,  # None without --dask-rows
            "prefect": prefect,
        },
        "targets": targets,
        "dlt_note": dlt_note,
        "notes": notes,
    }
    suffix = f"-memory-{args.duckdb_memory_limit}" if args.duckdb_memory_limit else ""
    result["flat_memory"] = _flat_memory(out, args.layout, suffix, result)
    one_m = next((r for r in result["flat_memory"] if r["rows"] == 1_000_000), None)
    if one_m and rows > 1_000_000:
        growth = total["peak_mib"] / one_m["pipeline_peak_mib"] - 1
        result["flat_memory_check"] = (
            f"flat memory: the {rows:,}-row pipeline process peak is {growth:+.0%} against the 1,000,000-row one "
            f"(target within 20%): {'holds' if growth <= 0.2 else 'does NOT hold'}")
        if one_m.get("ingest_peak_mib") and ingest["peak_mib"]:
            result["flat_memory_check"] += f"; ingest alone {ingest['peak_mib'] / one_m['ingest_peak_mib'] - 1:+.0%}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the input file (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported (default 3)")
    parser.add_argument("--layout", choices=("current", "legacy"), default="current", help="input layout (default current)")
    parser.add_argument("--nightly-rows", type=int, default=10_000, help="rows of the nightly file (default 10000)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="inputs and results (default bench/out)")
    parser.add_argument("--seed", type=int, default=2018, help="generator seed (default 2018)")
    parser.add_argument("--batch-rows", type=int, default=None, help="pipeline batch size (default: ingest's own default)")
    parser.add_argument("--duckdb-memory-limit", metavar="LIMIT", default=None,
                        help="diagnosis only: make warehouse.db.connect use this DuckDB memory_limit (e.g. 4GB) "
                             "instead of its default; the report says so")
    parser.add_argument("--backfill-rows", type=int, default=None,
                        help="rows of each of the backfill's 12 monthly chunks (default: max(1000, rows // 12))")
    parser.add_argument("--skip-backfill", action="store_true", help="skip the backfill measurement")
    parser.add_argument("--dask-rows", type=int, default=None, metavar="N",
                        help="measure the backfill on Dask: the map stage of 12 chunks of N rows with 1 and 2 local "
                             "workers, the one writer's merge, and a 90M-row projection (default: not measured)")
    parser.add_argument("--no-prefect", action="store_true", help="skip the Prefect start-up measurement")
    parser.add_argument("--keep-work", action="store_true", help="keep warehouses, snapshots and logs under --out/work")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    counts = (args.rows, args.repeat, args.nightly_rows, args.backfill_rows, args.dask_rows)
    if min(n for n in counts if n is not None) < 1:
        parser.error("--rows, --repeat, --nightly-rows, --backfill-rows and --dask-rows must be at least 1")
    if args.backfill_rows is None:
        args.backfill_rows = max(1000, args.rows // BACKFILL_CHUNKS)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    suffix = f"-memory-{args.duckdb_memory_limit}" if args.duckdb_memory_limit else ""
    path = args.out.resolve() / f"results-{args.rows}-{args.layout}{suffix}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(report(result))
    print(f"\nwrote {path}")
    failed = [(label, s["failed"]) for label, s in (("pipeline publish", result["measurements"]["pipeline"]["publish"]),
                                                      ("nightly publish", result["measurements"]["nightly"]["publish"]))
              if s["failed"]]
    if failed:
        label, errors = failed[0]
        print(f"error: {label} failed in {len(errors)} run(s): {errors[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
