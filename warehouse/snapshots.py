"""Parquet snapshots of the warehouse in object storage, and SQL over them.

Layout under the store's root::

    snapshots/<snapshot_id>/transactions/fiscal_year=2018/part-0.parquet   (hive partitions)
    snapshots/<snapshot_id>/awards/part-0.parquet
    snapshots/<snapshot_id>/manifest.json   files with bytes, SHA-256 and rows; schemas; runs
    latest                                  {"snapshot_id": ..., "manifest": ...}

Publishing writes every data file, then the manifest, and only then replaces
``latest``: a reader that follows the pointer never sees a partial snapshot.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse import runs
from warehouse.store import Store, StoreError, sha256_of

POINTER = "latest"
PREFIX = "snapshots"
# table -> hive partition column (None: one folder of files)
TABLES: dict[str, str | None] = {"transactions": "fiscal_year", "awards": None, "recipients": None,
                                  "brand_mentions": None, "company_agency_fiscal_year": None}


class ChecksumMismatch(StoreError):
    """A stored file differs from what was uploaded."""


@dataclass
class PublishResult:
    snapshot_id: str | None
    published: bool
    message: str
    manifest: dict | None = None
    pruned: list[str] | None = None


def new_snapshot_id() -> str:
    return runs.now().strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def tables_present(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    return {t: p for t, p in TABLES.items() if t in names}


def fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """Row count and an order-free hash of every row, per table: equal fingerprints, equal content."""
    return {
        t: list(con.execute(f"SELECT count(*), coalesce(bit_xor(hash(t)), 0)::VARCHAR FROM {t} t").fetchone())
        for t in tables_present(con)
    }


def read_json(store: Store, key: str) -> dict | None:
    data = store.get_bytes(key)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise StoreError(f"{store.url}/{key} is not valid JSON") from None


def current(store: Store) -> dict | None:
    """The manifest ``latest`` points to, or None before the first publish."""
    pointer = read_json(store, POINTER)
    return read_json(store, pointer["manifest"]) if pointer else None


def publish(con: duckdb.DuckDBPyConnection, store: Store, *, workdir: Path, keep: int | None = 30,
            watermarks: dict | None = None, on_step: Callable[[str], None] = lambda step: None) -> PublishResult:
    """Exports the user-facing tables to a new snapshot unless nothing changed since the current one.
    ``on_step`` is told "exported", "uploaded" and "before-pointer" as they pass."""
    store.cleanup()
    previous = current(store)
    prints = fingerprint(con)
    if previous and previous.get("fingerprint") == prints:
        return PublishResult(previous["snapshot_id"], False, f"nothing changed since snapshot {previous['snapshot_id']}; nothing published")
    snapshot_id = new_snapshot_id()
    local = workdir / f"snapshot-{snapshot_id}"
    try:
        manifest = _export(con, local, snapshot_id, prints, previous, watermarks or {})
        on_step("exported")
        _upload(store, local, snapshot_id, manifest, previous, on_step)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    pruned = prune(store, keep) if keep else []
    return PublishResult(snapshot_id, True, f"published snapshot {snapshot_id} to {store.url}", manifest, pruned)


def _export(con, local: Path, snapshot_id: str, prints: dict, previous: dict | None, watermarks: dict) -> dict:
    local.mkdir(parents=True, exist_ok=True)
    tables = {}
    for table, partition in tables_present(con).items():
        target = local / table
        options = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, ROW_GROUP_SIZE_BYTES '64MB'"
        if partition:
            # one streaming COPY per partition value: memory stays flat (PARTITION_BY buffers every
            # partition at once and, under the warehouse's memory limit, spills heavily)
            values = [v for (v,) in con.execute(f"SELECT DISTINCT {partition} FROM {table} ORDER BY 1").fetchall()]
            for value in values:
                folder = target / f"{partition}={value}"
                folder.mkdir(parents=True)
                con.execute(f"COPY (SELECT * EXCLUDE ({partition}) FROM {table} WHERE {partition} = ?) "
                            f"TO '{folder / 'part-0.parquet'}' ({options})", [value])
        else:
            target.mkdir()
            con.execute(f"COPY {table} TO '{target / 'part-0.parquet'}' ({options})")
        files = []
        for path in sorted(target.rglob("*.parquet")):
            rows = con.execute("SELECT num_rows FROM parquet_file_metadata(?)", [str(path)]).fetchone()[0]
            files.append({"path": str(path.relative_to(local)), "bytes": path.stat().st_size, "sha256": sha256_of(path), "rows": rows})
        schema = [{"name": n, "type": t} for n, t, *_ in con.execute(f"DESCRIBE {table}").fetchall()]
        tables[table] = {"rows": sum(f["rows"] for f in files), "partition_by": partition, "files": files, "schema": schema}
    since = previous["created_at"] if previous else "1970-01-01T00:00:00"
    included = [r for (r,) in con.execute("SELECT run_id FROM runs WHERE status = 'succeeded' AND ended_at > ?::TIMESTAMP ORDER BY ended_at", [since]).fetchall()]
    return {
        "snapshot_id": snapshot_id,
        "created_at": runs.now().isoformat(timespec="seconds"),
        "previous_snapshot_id": previous["snapshot_id"] if previous else None,
        "run_ids": included,
        "watermarks": watermarks,
        "fingerprint": prints,
        "tables": tables,
    }


def _upload(store: Store, local: Path, snapshot_id: str, manifest: dict, previous: dict | None,
            on_step: Callable[[str], None]) -> None:
    base = f"{PREFIX}/{snapshot_id}"
    uploaded: list[str] = []
    try:
        for table in manifest["tables"].values():
            for f in table["files"]:
                store.put_file(f"{base}/{f['path']}", local / f["path"])
                uploaded.append(f"{base}/{f['path']}")
        on_step("uploaded")
        store.put_bytes(f"{base}/manifest.json", json.dumps(manifest, indent=2).encode())
        uploaded.append(f"{base}/manifest.json")
        if bad := verify(store, manifest):
            raise ChecksumMismatch(f"stored files differ from the manifest: {', '.join(bad[:5])}")
    except Exception as exc:
        try:
            store.delete(uploaded)
            store.cleanup()
        except Exception:
            pass  # the store is unreachable: a partial snapshot without a pointer is harmless, the next publish cleans up
        still = previous["snapshot_id"] if previous else "nothing (no snapshot yet)"
        kind = ChecksumMismatch if isinstance(exc, ChecksumMismatch) else StoreError
        raise kind(f"publish of snapshot {snapshot_id} failed, 'latest' still points to {still}: {exc}") from None
    on_step("before-pointer")
    pointer = {"snapshot_id": snapshot_id, "manifest": f"{base}/manifest.json", "created_at": manifest["created_at"]}
    store.put_bytes(POINTER, json.dumps(pointer, indent=2).encode())


def list_snapshots(store: Store) -> list[dict]:
    """Every snapshot folder, newest first, with its manifest's totals (incomplete ones flagged)."""
    pointer = read_json(store, POINTER) or {}
    ids = sorted({k.split("/")[1] for k in store.list(PREFIX + "/") if k.count("/") >= 2}, reverse=True)
    found = []
    for snapshot_id in ids:
        manifest = read_json(store, f"{PREFIX}/{snapshot_id}/manifest.json")
        tables = (manifest or {}).get("tables", {})
        found.append({
            "snapshot_id": snapshot_id,
            "created_at": (manifest or {}).get("created_at"),
            "tables": ", ".join(tables),
            "rows": sum(t["rows"] for t in tables.values()),
            "bytes": sum(f["bytes"] for t in tables.values() for f in t["files"]),
            "current": snapshot_id == pointer.get("snapshot_id"),
            "complete": manifest is not None,
        })
    return found


def prune(store: Store, keep: int) -> list[str]:
    """Deletes all but the newest ``keep`` complete snapshots (never the current one) and
    incomplete ones older than the current. Returns the ids deleted."""
    if keep < 1:
        raise StoreError("--keep must be at least 1")
    snapshots = list_snapshots(store)
    current_id = next((s["snapshot_id"] for s in snapshots if s["current"]), None)
    complete = [s["snapshot_id"] for s in snapshots if s["complete"]]
    kept = set(complete[:keep]) | {current_id}
    doomed = [s["snapshot_id"] for s in snapshots
              if s["snapshot_id"] not in kept and (s["complete"] or (current_id and s["snapshot_id"] < current_id))]
    for snapshot_id in doomed:
        store.delete(store.list(f"{PREFIX}/{snapshot_id}/"))
    return doomed


def verify(store: Store, manifest: dict) -> list[str]:
    """Files whose stored bytes do not match the manifest (empty when the snapshot is intact)."""
    base = f"{PREFIX}/{manifest['snapshot_id']}"
    bad = []
    for table in manifest["tables"].values():
        for f in table["files"]:
            if store.digest(f"{base}/{f['path']}") != (f["bytes"], f["sha256"]):
                bad.append(f["path"])
    return bad


def connect_snapshot(store: Store, snapshot: str = "latest") -> tuple[duckdb.DuckDBPyConnection, dict]:
    """An in-memory DuckDB with one view per table of the snapshot, columns in warehouse order."""
    manifest = current(store) if snapshot == "latest" else read_json(store, f"{PREFIX}/{snapshot}/manifest.json")
    if manifest is None:
        what = "no snapshot published yet" if snapshot == "latest" else f"no snapshot {snapshot!r}"
        raise StoreError(f"{what} at {store.url}; run `awardwatch publish` (see `awardwatch snapshots list`)")
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    for statement in store.duckdb_setup():
        con.execute(statement)
    base = f"{PREFIX}/{manifest['snapshot_id']}"
    for table, meta in manifest["tables"].items():
        paths = [store.reader_path(f"{base}/{f['path']}") for f in meta["files"]]
        columns = ", ".join(f'"{c["name"]}"' for c in meta["schema"])
        if not paths:
            continue
        listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
        hive = f", hive_partitioning = true, hive_types = {{'{meta['partition_by']}': INTEGER}}" if meta["partition_by"] else ""
        con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM read_parquet({listing}{hive})")
    return con, manifest
