"""Parquet snapshots of the warehouse in object storage, and SQL over them.

Layout under the store's root::

    snapshots/<snapshot_id>/transactions/fiscal_year=2018/part-0.parquet   (hive partitions)
    snapshots/<snapshot_id>/awards/part-0.parquet
    snapshots/<snapshot_id>/manifest.json   files with bytes, SHA-256, rows and fingerprint; schemas; runs
    latest                                  {"snapshot_id": ..., "manifest": ...}

Publishing stores every data file, then the manifest, and only then replaces
``latest``: a reader that follows the pointer never sees a partial snapshot.

Publishing is incremental: each file (a table, or one fiscal year of ``transactions``) has a
fingerprint of its rows in the manifest, and a file whose fingerprint and table schema equal the
previous snapshot's is not exported again but copied from it inside the store (a hard link in a
folder, a server-side copy on S3). Every snapshot folder thus holds all of its files: readers,
checksums and retention see no difference, and deleting a snapshot never touches another's files.
Only the fiscal years runs touched since the previous snapshot are fingerprinted (``warehouse/touched.py``);
the others keep the previous manifest's fingerprints, unless that is not known for sure (``_known``).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from awardwatch.schemas.errors import AwardwatchError
from awardwatch.warehouse import reconcile, runs, touched
from awardwatch.warehouse.store import Store, StoreError, sha256_of

POINTER = "latest"
PREFIX = "snapshots"
# table -> hive partition column (None: one folder of files)
TABLES: dict[str, str | None] = {"transactions": "fiscal_year", "awards": None, "recipients": None,
                                  "brand_mentions": None, "company_agency_fiscal_year": None}


# what ``query --snapshot`` accepts; new_snapshot_id() makes OWN_ID, and prune deletes only those
SNAPSHOT_ID = re.compile(r"[0-9A-Za-z_-]+")
OWN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")


class ChecksumMismatch(StoreError):
    """A stored file differs from what was uploaded."""


class UnfinishedRun(AwardwatchError):
    """The warehouse holds part of a run that did not finish: it is not published."""


@dataclass
class PublishResult:
    snapshot_id: str | None
    published: bool
    message: str
    manifest: dict | None = None
    pruned: list[str] | None = None
    written: list[str] | None = None  # paths exported by this publish
    carried: list[str] | None = None  # paths copied unchanged from the previous snapshot


def new_snapshot_id(after: str | None = None) -> str:
    """``<UTC second>-<4 hex>``, sorting after ``after`` (the current snapshot) even within its second:
    "newest first" is the order of the ids."""
    while True:
        stamp = runs.now().strftime("%Y%m%dT%H%M%SZ-")
        if not (after and OWN_ID.fullmatch(after) and after.startswith(stamp)):
            return stamp + secrets.token_hex(2)
        if after[-4:] != "ffff":
            return stamp + f"{int(after[-4:], 16) + 1:04x}"
        time.sleep(0.05)  # the second's last id is taken: wait for the next second


def tables_present(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    return {t: p for t, p in TABLES.items() if t in names}


@dataclass(frozen=True)
class Part:
    """One file of a snapshot: a table, or the rows of one value of its partition column."""

    table: str
    column: str | None
    value: int | None
    fingerprint: str

    @property
    def path(self) -> str:
        folder = f"{self.table}/{self.column}={self.value}" if self.column else self.table
        return f"{folder}/part-0.parquet"


# row count, then the sum and the XOR of DuckDB's hash of each whole row: order-free, and any row
# added, removed or changed in any column changes it
ROWS_PRINT = ("count(*)::VARCHAR || ':' || coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR || ':' "
              "|| coalesce(bit_xor(hash(t)), 0)::VARCHAR")


@dataclass(frozen=True)
class Known:
    """What a publish need not fingerprint again: the previous snapshot's fingerprints of a partitioned
    table's files, by partition value, and the values touched since (only those are computed)."""

    table: str
    fingerprints: dict[int, str]
    touched: set[int]


def fingerprints(con: duckdb.DuckDBPyConnection, table: str, column: str | None, values: set[int] | None = None) -> list[tuple]:
    """(partition value, fingerprint) of a table's files: every partition, or those of ``values``."""
    if not column:
        return [(None, con.execute(f"SELECT {ROWS_PRINT} FROM {table} t").fetchone()[0])]
    if values is None:
        return con.execute(f"SELECT {column}, {ROWS_PRINT} FROM {table} t GROUP BY 1").fetchall()
    if not values:
        return []
    listed = ", ".join(str(int(v)) for v in sorted(values))  # literals: the scan skips row groups outside them
    return con.execute(f"SELECT {column}, {ROWS_PRINT} FROM {table} t WHERE {column} IN ({listed}) GROUP BY 1").fetchall()


def parts(con: duckdb.DuckDBPyConnection, known: Known | None = None) -> list[Part]:
    """The files a snapshot of the warehouse holds, each with the fingerprint of its rows, in path order.
    With ``known``, that table's untouched partitions keep the previous snapshot's fingerprints."""
    found = []
    for table, column in tables_present(con).items():
        if known and known.table == table:
            rows = fingerprints(con, table, column, known.touched)
            rows += [(v, f) for v, f in known.fingerprints.items() if v not in known.touched]
        else:
            rows = fingerprints(con, table, column)
        found += [Part(table, column, value, print_) for value, print_ in rows]
    return sorted(found, key=lambda p: p.path)


def _known(con: duckdb.DuckDBPyConnection, previous: dict | None, shapes: dict) -> Known | None:
    """The fingerprints of ``transactions`` carried from the previous snapshot for the fiscal years no run
    touched since (``touched.years_since``); None (fingerprint everything) when that is not known for sure:
    no previous snapshot, one this warehouse did not publish, a file without a fingerprint, another schema,
    or a run since without a record."""
    table = "transactions"
    meta = (previous or {}).get("tables", {}).get(table)
    if not meta or meta.get("schema") != shapes.get(table) or TABLES[table] != "fiscal_year":
        return None
    prints = {}
    for f in meta.get("files") or []:
        m = re.fullmatch(rf"{table}/fiscal_year=(-?\d+)/part-0\.parquet", f.get("path", ""))
        if not m or not f.get("fingerprint"):
            return None
        prints[int(m[1])] = f["fingerprint"]
    years = touched.years_since(con, previous["snapshot_id"])
    return None if years is None else Known(table, prints, years)


def schemas(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict]]:
    """Column names and types of each table, in warehouse order."""
    return {t: [{"name": n, "type": ty} for n, ty, *_ in con.execute(f"DESCRIBE {t}").fetchall()]
            for t in tables_present(con)}


def read_json(store: Store, key: str) -> dict | None:
    data = store.get_bytes(key)
    if data is None:
        return None
    try:
        found = json.loads(data)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise StoreError(f"{store.url}/{key} is not a JSON object; restore it or remove it (see `awardwatch snapshots list`)")
    return found


def check_id(snapshot_id: object, where: str) -> str:
    """A snapshot id: letters, digits, ``_`` and ``-`` only (never a path)."""
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise StoreError(f"{where}: {snapshot_id!r} is not a snapshot id (letters, digits, '_' and '-' only, or 'latest'); "
                         "see `awardwatch snapshots list`")
    return snapshot_id


def current(store: Store) -> dict | None:
    """The manifest ``latest`` points to, or None before the first publish. The pointer may name
    only ``snapshots/<id>/manifest.json`` inside the store."""
    pointer = read_json(store, POINTER)
    if pointer is None:
        return None
    snapshot_id = check_id(pointer.get("snapshot_id"), f"{store.url}/{POINTER}")
    if pointer.get("manifest", f"{PREFIX}/{snapshot_id}/manifest.json") != f"{PREFIX}/{snapshot_id}/manifest.json":
        raise StoreError(f"{store.url}/{POINTER} names manifest {pointer.get('manifest')!r}, not {PREFIX}/{snapshot_id}/manifest.json; "
                         "it was not written by awardwatch: publish again or restore it")
    manifest = manifest_of(store, snapshot_id)
    if manifest is None:
        raise StoreError(f"{store.url}/{POINTER} points to snapshot {snapshot_id}, which has no manifest; "
                         "restore the snapshot or publish again")
    return manifest


def manifest_of(store: Store, snapshot_id: str) -> dict | None:
    """The manifest of one snapshot, checked: its id is the folder's, its tables are the ones
    awardwatch publishes, and every file it lists lies inside that snapshot's folder."""
    check_id(snapshot_id, "snapshot")
    key = f"{PREFIX}/{snapshot_id}/manifest.json"
    manifest = read_json(store, key)
    if manifest is None:
        return None

    def bad(what: str) -> StoreError:
        return StoreError(f"{store.url}/{key}: {what}; it was not written by awardwatch, query another snapshot")

    if manifest.get("snapshot_id") != snapshot_id:
        raise bad(f"names snapshot {manifest.get('snapshot_id')!r}, not {snapshot_id}")
    tables = manifest.get("tables")
    if not isinstance(tables, dict):
        raise bad("has no tables")
    for table, meta in tables.items():
        if table not in TABLES or not isinstance(meta, dict) or meta.get("partition_by") != TABLES[table]:
            raise bad(f"lists table {table!r} (partitioned by {(meta or {}).get('partition_by')!r}), which awardwatch does not publish")
        if not isinstance(meta.get("schema"), list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in meta["schema"]):
            raise bad(f"table {table} has no column list")
        for f in meta.get("files") or []:
            path = f.get("path") if isinstance(f, dict) else None
            parts = path.split("/") if isinstance(path, str) else []
            if len(parts) < 2 or parts[0] != table or any(p in ("", ".", "..") or "\\" in p for p in parts):
                raise bad(f"lists file {path!r} outside {PREFIX}/{snapshot_id}/{table}/")
    return manifest


def publish(con: duckdb.DuckDBPyConnection, store: Store, *, workdir: Path, keep: int | None = 30,
            watermarks: dict | None = None, on_step: Callable[[str], None] = lambda step: None,
            incremental: bool = True) -> PublishResult:
    """Exports the user-facing tables to a new snapshot unless nothing changed since the current one;
    files unchanged since the current snapshot are copied from it instead of exported. ``incremental``:
    fingerprint only the fiscal years of ``transactions`` runs touched since the current snapshot (``_known``;
    the other tables, one file each, are fingerprinted whole); otherwise every file.
    ``on_step`` is told "exported", "uploaded" and "before-pointer" as they pass."""
    store.cleanup()
    previous = current(store)
    shapes, batch = schemas(con), touched.last_batch(con)
    found = parts(con, _known(con, previous, shapes) if incremental else None)
    if previous and _unchanged(previous, found, shapes):
        touched.published(con, previous["snapshot_id"], store.url, batch)  # it holds the warehouse as it is
        return PublishResult(previous["snapshot_id"], False,
                             f"nothing changed since snapshot {previous['snapshot_id']}; nothing published")
    snapshot_id = new_snapshot_id(after=previous["snapshot_id"] if previous else None)
    carried = _carried(store, previous, found, shapes)
    local = workdir / f"snapshot-{snapshot_id}"
    try:
        entries = carried | _export(con, local, snapshot_id, [p for p in found if p.path not in carried])
        manifest = _manifest(con, snapshot_id, shapes, entries, previous, watermarks or {})
        on_step("exported")
        _upload(store, local, manifest, previous, set(carried), on_step)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    touched.published(con, snapshot_id, store.url, batch)
    pruned = prune(store, keep) if keep else []
    written = sorted(set(entries) - set(carried))
    message = f"published snapshot {snapshot_id} to {store.url}: wrote {len(written)} file(s)"
    if carried:
        message += f", carried {len(carried)} unchanged from {previous['snapshot_id']}"
    return PublishResult(snapshot_id, True, message, manifest, pruned, written, sorted(carried))


def _unchanged(previous: dict, found: list[Part], shapes: dict) -> bool:
    """The previous snapshot has the warehouse's tables, schemas, files and fingerprints."""
    now = {t: (shapes[t], sorted((p.path, p.fingerprint) for p in found if p.table == t)) for t in shapes}
    return now == {t: (m["schema"], sorted((f["path"], f.get("fingerprint")) for f in m["files"]))
                   for t, m in previous["tables"].items()}


def _carried(store: Store, previous: dict | None, found: list[Part], shapes: dict) -> dict[str, dict]:
    """Manifest entries of the previous snapshot's files this one can copy: same table schema, same
    path and fingerprint, and the file still in the store (a missing one is exported again)."""
    if not previous:
        return {}
    stored = set(store.list(f"{PREFIX}/{previous['snapshot_id']}/"))
    before = {f["path"]: f for t, m in previous["tables"].items() if m["schema"] == shapes.get(t) for f in m["files"]}
    return {p.path: before[p.path] for p in found
            if p.path in before and before[p.path].get("fingerprint") == p.fingerprint
            and f"{PREFIX}/{previous['snapshot_id']}/{p.path}" in stored}


OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, ROW_GROUP_SIZE_BYTES '64MB'"


def _export(con, local: Path, snapshot_id: str, todo: list[Part]) -> dict[str, dict]:
    """Writes the parts as Parquet under ``local``; returns their manifest entries by path."""
    entries = {}
    for p in todo:
        target = local / p.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if p.column:
            # one streaming COPY per partition value: memory stays flat (PARTITION_BY buffers every
            # partition at once and, under the warehouse's memory limit, spills heavily)
            con.execute(f"COPY (SELECT * EXCLUDE ({p.column}) FROM {p.table} WHERE {p.column} = ?) "
                        f"TO '{target}' ({OPTIONS})", [p.value])
        else:
            con.execute(f"COPY {p.table} TO '{target}' ({OPTIONS})")
        rows = con.execute("SELECT num_rows FROM parquet_file_metadata(?)", [str(target)]).fetchone()[0]
        entries[p.path] = {"path": p.path, "bytes": target.stat().st_size, "sha256": sha256_of(target), "rows": rows,
                           "fingerprint": p.fingerprint, "written_in": snapshot_id}
    return entries


def _manifest(con, snapshot_id: str, shapes: dict, entries: dict[str, dict], previous: dict | None,
              watermarks: dict) -> dict:
    tables = {}
    for table, partition in tables_present(con).items():
        files = [entries[path] for path in sorted(entries) if path.split("/", 1)[0] == table]
        tables[table] = {"rows": sum(f["rows"] for f in files), "partition_by": partition, "files": files,
                         "schema": shapes[table]}
    since = previous["created_at"] if previous else "1970-01-01T00:00:00"
    included = [r for (r,) in con.execute("SELECT run_id FROM runs WHERE status = 'succeeded' AND ended_at > ?::TIMESTAMP ORDER BY ended_at", [since]).fetchall()]
    return {
        "snapshot_id": snapshot_id,
        "created_at": runs.now().isoformat(timespec="seconds"),
        "previous_snapshot_id": previous["snapshot_id"] if previous else None,
        "run_ids": included,
        "watermarks": watermarks,
        "reconciliation": reconcile.manifest_section(con),  # the latest check against USAspending's published totals
        "tables": tables,
    }


def _upload(store: Store, local: Path, manifest: dict, previous: dict | None, carried: set[str],
            on_step: Callable[[str], None]) -> None:
    """Puts the exported files and copies the ``carried`` ones from the previous snapshot, then the
    manifest; checks every file against the manifest; then moves ``latest``. On failure removes what it stored."""
    snapshot_id = manifest["snapshot_id"]
    base = f"{PREFIX}/{snapshot_id}"
    stored: list[str] = []
    try:
        for table in manifest["tables"].values():
            for f in table["files"]:
                if f["path"] in carried:
                    store.copy(f"{PREFIX}/{previous['snapshot_id']}/{f['path']}", f"{base}/{f['path']}")
                else:
                    store.put_file(f"{base}/{f['path']}", local / f["path"])
                stored.append(f"{base}/{f['path']}")
        on_step("uploaded")
        store.put_bytes(f"{base}/manifest.json", json.dumps(manifest, indent=2).encode())
        stored.append(f"{base}/manifest.json")
        if bad := verify(store, manifest):
            said = _why(store, manifest, previous, carried, bad[:5])
            raise ChecksumMismatch(f"stored files differ from the manifest: {', '.join(said)}")
    except Exception as exc:
        try:
            store.delete(stored)
            store.cleanup()
        except Exception:
            pass  # the store is unreachable: a partial snapshot without a pointer is harmless, the next publish cleans up
        still = previous["snapshot_id"] if previous else "nothing (no snapshot yet)"
        kind = ChecksumMismatch if isinstance(exc, ChecksumMismatch) else StoreError
        raise kind(f"publish of snapshot {snapshot_id} failed, 'latest' still points to {still}: {exc}") from None
    on_step("before-pointer")
    pointer = {"snapshot_id": snapshot_id, "manifest": f"{base}/manifest.json", "created_at": manifest["created_at"]}
    store.put_bytes(POINTER, json.dumps(pointer, indent=2).encode())


def _why(store: Store, manifest: dict, previous: dict | None, carried: set[str], bad: list[str]) -> list[str]:
    """The bad paths, a carried one saying whether the previous snapshot's own file is damaged (then the
    way out is to restore it, or delete it: a missing file is exported again)."""
    entries = {f["path"]: f for t in manifest["tables"].values() for f in t["files"]}
    said = []
    for path in bad:
        if path not in carried:
            said.append(path)
            continue
        source = f"{PREFIX}/{previous['snapshot_id']}/{path}"
        try:
            intact = store.digest(source) == (entries[path]["bytes"], entries[path]["sha256"])
        except StoreError:
            intact = None
        said.append(f"{path} (copied wrongly from snapshot {previous['snapshot_id']}: publish again)" if intact else
                    f"{path} (carried from snapshot {previous['snapshot_id']}, whose {store.url}/{source} is damaged: "
                    "restore it, or delete it and publish again to export it afresh)" if intact is False else
                    f"{path} (carried from snapshot {previous['snapshot_id']})")
    return said


def list_snapshots(store: Store) -> list[dict]:
    """Every snapshot folder, newest first, with its manifest's totals (incomplete ones flagged)."""
    pointer = read_json(store, POINTER) or {}
    ids = sorted({k.split("/")[1] for k in store.list(PREFIX + "/") if k.count("/") >= 2}, reverse=True)
    found = []
    for snapshot_id in filter(SNAPSHOT_ID.fullmatch, ids):
        manifest = manifest_of(store, snapshot_id)
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
    incomplete ones older than the current. Returns the ids deleted. Only folders named like the
    ids publish makes are touched."""
    if keep < 1:
        raise StoreError("--keep must be at least 1")
    snapshots = [s for s in list_snapshots(store) if OWN_ID.fullmatch(s["snapshot_id"])]
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
    """An in-memory DuckDB with one view per table of the snapshot, columns in warehouse order,
    sandboxed: it reads the snapshot's own files and nothing else (``sandbox``)."""
    manifest = current(store) if snapshot == "latest" else manifest_of(store, check_id(snapshot, "--snapshot"))
    if manifest is None:
        what = "no snapshot published yet" if snapshot == "latest" else f"no snapshot {snapshot!r}"
        raise StoreError(f"{what} at {store.url}; run `awardwatch publish` (see `awardwatch snapshots list`)")
    base = f"{PREFIX}/{manifest['snapshot_id']}"
    # no extension loaded or fetched behind our back, no secret read from ~/.duckdb, spill files in a
    # private folder (DuckDB makes it only when it spills and removes it on close)
    spill = Path(tempfile.gettempdir()) / f"awardwatch-query-{secrets.token_hex(6)}"
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                                 "allow_persistent_secrets": "false", "temp_directory": str(spill)})
    try:
        for statement in store.duckdb_setup(scope=store.reader_path(base + "/")):
            con.execute(statement)
        allowed = []
        for table, meta in manifest["tables"].items():
            paths = [store.reader_path(f"{base}/{f['path']}") for f in meta["files"]]
            if not paths:
                continue
            allowed += paths
            columns = ", ".join('"' + c["name"].replace('"', '""') + '"' for c in meta["schema"])
            listing = "[" + ", ".join(_literal(p) for p in paths) + "]"
            hive = f", hive_partitioning = true, hive_types = {{'{TABLES[table]}': INTEGER}}" if TABLES[table] else ""
            con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM read_parquet({listing}{hive})")
        sandbox(con, allowed)
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"snapshot {manifest['snapshot_id']} at {store.url} cannot be read: {str(exc).strip().splitlines()[0]}") from None
    except BaseException:
        con.close()
        raise
    return con, manifest


def sandbox(con: duckdb.DuckDBPyConnection, allowed_paths: list[str] = ()) -> None:
    """Locks a connection down before it runs anyone's SQL: no file or network access but the
    ``allowed_paths`` (the snapshot's own files), no extension installed or loaded, and the
    configuration locked so that no statement can undo it."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET allowed_paths = [{', '.join(_literal(p) for p in allowed_paths)}]")
    con.execute("SET allowed_directories = []")  # DuckDB adds its own spill folder when access is turned off
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
