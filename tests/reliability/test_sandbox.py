"""User-supplied SQL runs in a sandbox, on a snapshot (local folder and S3) and on the warehouse (issue 18,
findings 1 and 9): one SELECT-like statement (DuckDB's own parser decides), no file or network access but
the snapshot's own files, configuration locked, credentials only in a scoped DuckDB secret, snapshot ids
and manifests confined to the store. Each hostile statement gets a one-line error and changes nothing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from awardwatch.schemas.errors import AwardwatchError
from tests.factories import row, write_csv
from awardwatch.warehouse import snapshots
from awardwatch.warehouse.query import QueryError, query_snapshot, query_warehouse
from awardwatch.warehouse.store import open_store

KEY_ID, SECRET, TOKEN = "AKIASANDBOX0001", "sandbox-secret-9d1f4c", "sandbox-token-77ab"
COUNT = "SELECT count(*), sum(federal_action_obligation) FROM transactions"


def _fill(root: Path) -> Path:
    warehouse = root / "wh" / "awardwatch.duckdb"
    rows = [row(piid=f"HSCETC15C{i:05d}", amount="10.00", action_date=f"201{6 + i % 3}-03-15") for i in range(12)]
    ingest([write_csv(root / "a.csv", rows)], warehouse=warehouse)
    return warehouse


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """(snapshot URL, warehouse, a file outside both) for a snapshot in a local folder."""
    root = tmp_path_factory.mktemp("sandbox-local")
    warehouse = _fill(root)
    url = str(root / "snaps")
    publish(warehouse, url)
    outside = root / "outside.csv"
    outside.write_text("secret_column\nprivate\n")
    return url, warehouse, outside


@pytest.fixture(scope="module")
def on_s3(moto_server, tmp_path_factory):
    """The same on the local S3 server, with credentials that must never be readable from SQL."""
    root = tmp_path_factory.mktemp("sandbox-s3")
    bucket = f"sandbox-{secrets.token_hex(4)}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_server}.items():
            mp.setenv(name, value)
        mp.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", endpoint_url=moto_server)
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="prod/other/app.csv", Body=b"secret_column\nprivate\n")
        warehouse = _fill(root)
        url = f"s3://{bucket}/prod"
        publish(warehouse, url)
        outside = root / "outside.csv"
        outside.write_text("secret_column\nprivate\n")
        yield url, warehouse, outside


@pytest.fixture(params=["local", "s3"])
def snap(request):
    return request.getfixturevalue("local" if request.param == "local" else "on_s3")


def _state(url: str, warehouse: Path) -> tuple:
    """Everything a hostile statement could change: the warehouse's rows, the pointer, every stored object."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM awards), (SELECT count(*) FROM runs)").fetchone()
    finally:
        con.close()
    store = open_store(url)
    objects = {k: store.digest(k) for k in store.list("")}
    return rows, store.get_bytes("latest"), objects


def _targets(url: str, tmp: Path) -> dict[str, str]:
    """Places a hostile statement aims at: the pointer, a data file of the snapshot, outside paths."""
    store = open_store(url)
    manifest = snapshots.current(store)
    data = store.reader_path(f"snapshots/{manifest['snapshot_id']}/awards/{manifest['tables']['awards']['files'][0]['path'].split('/', 1)[1]}")
    return {"pointer": store.reader_path("latest"), "data": data, "out": str(tmp / "written.csv"), "dir": str(tmp / "exported"),
            "other": store.reader_path("other/app.csv") if url.startswith("s3://") else str(tmp / "nothing.csv")}


HOSTILE = [
    "ATTACH '{warehouse}' AS w",
    "ATTACH '{warehouse}' AS w; DELETE FROM w.transactions",
    "ATTACH ':memory:' AS m",
    "DETACH memory",
    "DELETE FROM transactions",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW transactions",
    "COPY (SELECT 'x' AS manifest) TO '{pointer}' (FORMAT json)",
    "COPY (SELECT * FROM awards) TO '{data}' (FORMAT parquet)",  # on S3 an allowed (readable) path is writable by COPY
    "COPY (SELECT * FROM awards) TO '{out}'",
    "EXPORT DATABASE '{dir}'",
    "IMPORT DATABASE '/etc'",
    "INSTALL httpfs",
    "FORCE INSTALL httpfs FROM 'http://127.0.0.1:9'",
    "LOAD httpfs",
    "UPDATE EXTENSIONS",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "SET allowed_directories = ['/']",
    "PRAGMA enable_profiling",
    "PRAGMA profiling_output = '{out}'",
    "CALL pragma_version()",
    "CREATE SECRET leak (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "CREATE PERSISTENT SECRET leak (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "DROP SECRET awardwatch_s3",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
    "BEGIN TRANSACTION",
    "CHECKPOINT",
    "USE system",
    "PREPARE p AS SELECT 1",
    "SELECT 1; COPY (SELECT 1) TO '{out}'",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')",
    # table functions and functions that read files or the network, on paths outside the snapshot
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('{outside}')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_json('{outside}')",
    "SELECT * FROM read_json_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
    "SELECT * FROM parquet_schema('{warehouse}')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM glob('{parent}/*')",
    "SELECT * FROM read_text('{pointer}')",
    "SELECT * FROM read_csv('{other}')",
    "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
    "SELECT * FROM '{outside}'",
    "SELECT * FROM read_text('.tmp/x')",
    "SELECT * FROM duckdb_secrets(redact = false)",
]


def _fill_in(sql: str, url: str, warehouse: Path, outside: Path, tmp: Path) -> str:
    return sql.format(warehouse=warehouse, outside=outside, parent=outside.parent, **_targets(url, tmp))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_sql_on_a_snapshot_is_refused_and_changes_nothing(snap, hostile, tmp_path):
    url, warehouse, outside = snap
    sql = _fill_in(hostile, url, warehouse, outside, tmp_path)
    before = _state(url, warehouse)
    with pytest.raises(AwardwatchError) as info:
        query_snapshot(url, "latest", sql)
    message = str(info.value)
    assert "\n" not in message and message.startswith("query ")
    assert "private" not in message and "root:" not in message
    assert _state(url, warehouse) == before
    assert list(tmp_path.iterdir()) == []  # nothing written beside the test
    assert query_snapshot(url, "latest", COUNT)[1] == [(12, 120)]


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if "{pointer}" not in h and "{data}" not in h and "{other}" not in h])
def test_hostile_sql_on_the_warehouse_is_refused_and_changes_nothing(local, hostile, tmp_path):
    url, warehouse, outside = local
    sql = hostile.format(warehouse=warehouse, outside=outside, parent=outside.parent, out=tmp_path / "written.csv",
                         dir=tmp_path / "exported")
    before = _state(url, warehouse)
    with pytest.raises(AwardwatchError) as info:
        query_warehouse(warehouse, sql)
    message = str(info.value)
    assert "\n" not in message and message.startswith("query ")
    assert "private" not in message and "root:" not in message
    assert _state(url, warehouse) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM transactions",
    "WITH t AS (SELECT * FROM awards) SELECT count(*) FROM t",
    "FROM awards SELECT count(*)",
    "DESCRIBE transactions",
    "SHOW TABLES",
    "SUMMARIZE awards",
    "PRAGMA table_info('awards')",
    "VALUES (1), (2)",
    "SELECT count(*) FROM transactions;",
])
def test_select_like_statements_still_run(snap, sql):
    url, warehouse, _ = snap
    columns, rows = query_snapshot(url, "latest", sql)
    assert columns and rows


@pytest.mark.parametrize("sql", ["", ";", "  ;; ", "-- only a comment"])
def test_no_statement_is_one_line(snap, sql):
    url, warehouse, _ = snap
    for run in (lambda: query_snapshot(url, "latest", sql), lambda: query_warehouse(warehouse, sql)):
        with pytest.raises(QueryError, match=r"^no SQL statement given; pass one SELECT"):
            run()


def test_secrets_are_not_readable_from_sql(on_s3):
    """The S3 credentials are a DuckDB secret scoped to the snapshot, shown redacted; no setting holds them."""
    url, _, _ = on_s3
    for sql in ("SELECT name, value FROM duckdb_settings()", "SELECT * FROM duckdb_secrets()",
                "SELECT current_setting('s3_secret_access_key'), current_setting('s3_access_key_id'), current_setting('s3_session_token')"):
        columns, rows = query_snapshot(url, "latest", sql)
        text = json.dumps(rows, default=str)
        assert SECRET not in text and TOKEN not in text, sql
    _, settings = query_snapshot(url, "latest", "SELECT name FROM duckdb_settings() WHERE value LIKE '%AKIASANDBOX%'")
    assert settings == []
    _, found = query_snapshot(url, "latest", "SELECT scope, secret_string FROM duckdb_secrets()")
    manifest = snapshots.current(open_store(url))
    assert [s[0] for s in found] == [[f"{url}/snapshots/{manifest['snapshot_id']}/"]]
    assert "secret=redacted" in found[0][1]
    _, persistent = query_snapshot(url, "latest", "SELECT current_setting('allow_persistent_secrets'), current_setting('enable_external_access')")
    assert persistent == [(False, False)]


@pytest.mark.parametrize("snapshot_id", ["../../x", "../snapshots/x", "/etc/passwd", "a/b", "x y", "..", "x;DROP", "lätest", "a\\b"])
def test_snapshot_ids_are_validated(local, snapshot_id):
    url, _, _ = local
    with pytest.raises(AwardwatchError, match=r"is not a snapshot id .*letters, digits") as info:
        query_snapshot(url, snapshot_id, COUNT)
    assert "\n" not in str(info.value)


def _plant(root: Path, snapshot_id: str, manifest: dict) -> None:
    folder = root / "snapshots" / snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _crafted(snapshot_id: str, path: str, table: str = "awards", column: str = "a", partition=None) -> dict:
    return {"snapshot_id": snapshot_id, "tables": {table: {"rows": 1, "partition_by": partition, "schema": [{"name": column, "type": "VARCHAR"}],
                                                           "files": [{"path": path, "bytes": 1, "sha256": "0", "rows": 1}]}}}


@pytest.mark.parametrize("crafted", [
    _crafted("evil", "../../../../../../etc/passwd"),
    _crafted("evil", "awards/../../../../../../etc/passwd"),
    _crafted("evil", "/etc/passwd"),
    _crafted("evil", "transactions/part-0.parquet"),  # another table's folder
    _crafted("evil", "awards/part-0.parquet", table="awards AS SELECT 1; ATTACH '/tmp/x' AS w; CREATE VIEW v"),
    _crafted("evil", "awards/part-0.parquet", partition="x': INTEGER}) ; ATTACH '/tmp/x' --"),
    _crafted("other-id", "awards/part-0.parquet"),  # names another snapshot
    {"snapshot_id": "evil", "tables": []},
    ["not", "an", "object"],
])
def test_a_crafted_manifest_is_refused(tmp_path, crafted):
    root = tmp_path / "snaps"
    _plant(root, "evil", crafted)
    with pytest.raises(AwardwatchError) as info:
        query_snapshot(str(root), "evil", COUNT)
    assert "\n" not in str(info.value) and "evil" in str(info.value)
    assert not Path("/tmp/x").exists() or Path("/tmp/x").stat().st_size == 0


def test_a_crafted_column_name_cannot_escape_the_view(tmp_path):
    root = tmp_path / "snaps"
    data = root / "snapshots" / "evil" / "awards"
    data.mkdir(parents=True)
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{data / 'part-0.parquet'}'")
    _plant(root, "evil", _crafted("evil", "awards/part-0.parquet", column="a\" FROM read_csv('/etc/passwd') --"))
    with pytest.raises(AwardwatchError, match=r"snapshot evil at .* cannot be read") as info:
        query_snapshot(str(root), "evil", "SELECT * FROM awards")
    assert "\n" not in str(info.value) and "root:" not in str(info.value)


@pytest.mark.parametrize("pointer", [
    {"snapshot_id": "evil", "manifest": "../../../etc/passwd"},
    {"snapshot_id": "evil", "manifest": "/etc/passwd"},
    {"snapshot_id": "../../etc", "manifest": "snapshots/../../etc/manifest.json"},
    {"manifest": "snapshots/evil/manifest.json"},
])
def test_a_pointer_outside_the_store_is_refused(local, tmp_path, pointer):
    url, _, _ = local
    root = tmp_path / "snaps"
    source = Path(url) / "snapshots"
    _plant(root, "evil", json.loads(next(source.glob("*/manifest.json")).read_text()) | {"snapshot_id": "evil"})
    (root / "latest").write_text(json.dumps(pointer))
    with pytest.raises(AwardwatchError) as info:
        query_snapshot(str(root), "latest", COUNT)
    assert "\n" not in str(info.value) and "/latest" in str(info.value)


def test_a_symlinked_snapshot_folder_outside_the_store_is_not_followed(local, tmp_path):
    """A folder in the store that links outside it: its manifest and files are not read."""
    url, _, _ = local
    elsewhere = tmp_path / "elsewhere" / "evil"
    elsewhere.mkdir(parents=True)
    manifest = json.loads(next((Path(url) / "snapshots").glob("*/manifest.json")).read_text())
    (elsewhere / "manifest.json").write_text(json.dumps(manifest | {"snapshot_id": "evil"}))
    root = tmp_path / "snaps"
    (root / "snapshots").mkdir(parents=True)
    (root / "snapshots" / "evil").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(AwardwatchError, match=r"outside the store") as info:
        query_snapshot(str(root), "evil", COUNT)
    assert "\n" not in str(info.value)


def test_pointer_overwritten_by_something_else_is_one_line(local, tmp_path):
    """What the COPY of finding 1 left (a pointer without "manifest"): one line, not KeyError."""
    url, _, _ = local
    root = tmp_path / "snaps"
    root.mkdir()
    (root / "latest").write_text('{"manifest":"x"}\n{"manifest":"y"}\n')
    with pytest.raises(AwardwatchError, match=r"latest is not a JSON object") as info:
        query_snapshot(str(root), "latest", COUNT)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("sql", ["", ";", "COPY (SELECT 1) TO 'x.csv'"])
def test_cli_query_errors_are_one_line(capsys, monkeypatch, local, sql):
    from tests.factories import run_cli as run

    url, warehouse, _ = local
    for extra in ([], ["--snapshot", "latest", "--snapshot-url", url]):
        code, out, err = run("query", sql, "--warehouse", str(warehouse), *extra)
        assert code == 1, err
        assert err.count("\n") == 1 and err.startswith("error: ") and "unexpected" not in err
