"""Incremental publish (issue 16, point 2): a snapshot exports only the files (fiscal years of transactions, small
tables whole) whose rows changed since the previous snapshot and copies the others inside the store; readers,
checksums and retention see whole snapshots. On a local folder and on a real S3 API (moto server)."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.flows.core.publish import publish
from tests.factories import row, write_csv
from awardwatch.warehouse import db, snapshots
from awardwatch.warehouse.changes import snapshot_changes
from awardwatch.warehouse.query import query_snapshot, query_warehouse
from awardwatch.warehouse.store import LocalStore, S3Store, open_store

TX = "transactions/fiscal_year={}/part-0.parquet"
CHECKS = ["SELECT * FROM transactions ORDER BY contract_transaction_unique_key",
          "SELECT * FROM awards ORDER BY contract_award_unique_key",
          "SELECT fiscal_year, count(*), sum(federal_action_obligation) FROM transactions GROUP BY 1 ORDER BY 1"]


@pytest.fixture(params=["local", "s3"])
def url(request, tmp_path) -> str:
    return str(tmp_path / "snaps") if request.param == "local" else request.getfixturevalue("s3")


@pytest.fixture
def stored(monkeypatch) -> dict[str, list[str]]:
    """Keys each publish put (exported) and copied (carried), as the stores were asked."""
    seen = {"put": [], "copy": []}
    for cls in (LocalStore, S3Store):
        for method, kind in (("put_file", "put"), ("copy", "copy")):
            original = getattr(cls, method)

            def spy(self, *args, _original=original, _kind=kind):
                seen[_kind].append(args[-1] if _kind == "copy" else args[0])
                return _original(self, *args)

            monkeypatch.setattr(cls, method, spy)
    return seen


def load(tmp_path: Path, warehouse: Path, name: str, rows: list[dict]) -> None:
    ingest([write_csv(tmp_path / name, rows)], warehouse=warehouse)


def base_rows() -> list[dict]:
    """30 awards over fiscal years 2016, 2017 and 2018."""
    return [row(piid=f"HSCETC15C{i:05d}", amount="10.00", action_date=f"{2016 + i % 3}-0{1 + i % 9}-15")
            for i in range(30)]


def paths(manifest: dict) -> set[str]:
    return {f["path"] for t in manifest["tables"].values() for f in t["files"]}


def entries(manifest: dict) -> dict[str, dict]:
    return {f["path"]: f for t in manifest["tables"].values() for f in t["files"]}


def same_as_warehouse(url: str, warehouse: Path, snapshot: str = "latest") -> None:
    for sql in CHECKS:
        assert query_snapshot(url, snapshot, sql) == query_warehouse(warehouse, sql)


def test_a_small_load_exports_only_its_fiscal_year_and_carries_the_rest(tmp_path, warehouse, url, stored):
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, url)
    assert first.carried == [] and set(first.written) == paths(first.manifest)
    stored["put"].clear()
    load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C90001", amount="5.00", action_date="2018-04-02")])
    second = publish(warehouse, url)

    assert second.published and "carried" in second.message
    written_tx = {p for p in second.written if p.startswith("transactions/")}
    assert written_tx == {TX.format(2018)}
    assert {TX.format(2016), TX.format(2017)} <= set(second.carried)
    assert "awards/part-0.parquet" in second.written  # a new award
    assert set(second.written).isdisjoint(second.carried)
    assert set(second.written) | set(second.carried) == paths(second.manifest) == paths(first.manifest)
    base = f"snapshots/{second.snapshot_id}"
    assert sorted(stored["put"]) == sorted(f"{base}/{p}" for p in second.written)
    assert sorted(stored["copy"]) == sorted(f"{base}/{p}" for p in second.carried)
    # the manifest lists every file, the carried ones with the checksums and origin of the snapshot that wrote them
    before, after = entries(first.manifest), entries(second.manifest)
    for path in second.carried:
        assert after[path] == before[path] and after[path]["written_in"] == first.snapshot_id
    assert all(after[p]["written_in"] == second.snapshot_id for p in second.written)
    assert second.manifest["tables"]["transactions"]["rows"] == 31
    # each snapshot's folder holds all its files
    store = open_store(url)
    assert set(store.list(base + "/")) == {f"{base}/{p}" for p in paths(second.manifest)} | {f"{base}/manifest.json"}
    assert snapshots.verify(store, second.manifest) == []
    same_as_warehouse(url, warehouse)
    assert query_snapshot(url, first.snapshot_id, "SELECT count(*) FROM transactions")[1] == [(30,)]


def test_a_carried_file_is_a_hard_link_in_a_folder(tmp_path, warehouse):
    url = tmp_path / "snaps"
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, str(url))
    load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C90001", action_date="2018-04-02")])
    second = publish(warehouse, str(url))
    old, new = (url / "snapshots" / s.snapshot_id / TX.format(2016) for s in (first, second))
    assert old.samefile(new)


@pytest.mark.parametrize("change", ["correction", "parent company"])
def test_a_changed_row_rewrites_exactly_its_fiscal_year(tmp_path, warehouse, url, change):
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, url)
    if change == "correction":  # a newer version of one FY2017 action, through a load
        load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C00001", amount="11.00", action_date="2017-02-15",
                                                last_modified_date="2019-01-01 00:00:00")])
    else:  # a column outside row_hash, changed in place
        con = duckdb.connect(str(warehouse))
        key = con.execute("SELECT contract_transaction_unique_key FROM transactions WHERE fiscal_year = 2017 "
                          "ORDER BY 1 LIMIT 1").fetchone()[0]
        con.execute("UPDATE transactions SET parent_company = 'SOMEONE ELSE' WHERE contract_transaction_unique_key = ?",
                    [key])
        con.close()
    second = publish(warehouse, url)
    assert second.published
    assert {p for p in second.written if p.startswith("transactions/")} == {TX.format(2017)}
    assert {TX.format(2016), TX.format(2018)} <= set(second.carried)
    before, after = (entries(s.manifest)[TX.format(2017)]["fingerprint"] for s in (first, second))
    assert before != after
    same_as_warehouse(url, warehouse)


def test_kept_snapshots_read_whole_after_retention_prunes_the_ones_their_files_came_from(tmp_path, warehouse, url):
    load(tmp_path, warehouse, "a.csv", base_rows())
    ids = [publish(warehouse, url, keep=None).snapshot_id]
    for i, year in enumerate((2018, 2017)):
        load(tmp_path, warehouse, f"b{i}.csv", [row(piid=f"HSCETC15C9000{i}", action_date=f"{year}-04-02")])
        ids.append(publish(warehouse, url, keep=None).snapshot_id)
    store = open_store(url)
    third = snapshots.manifest_of(store, ids[2])
    assert entries(third)[TX.format(2016)]["written_in"] == ids[0]  # carried twice

    assert snapshots.prune(store, 2) == [ids[0]]
    for snapshot_id in ids[1:]:
        assert snapshots.verify(store, snapshots.manifest_of(store, snapshot_id)) == []
        assert query_snapshot(url, snapshot_id, "SELECT count(DISTINCT fiscal_year) FROM transactions")[1] == [(3,)]
    changes = snapshot_changes(store, ids[1], ids[2])
    assert changes.counts()["new award"] == 1
    assert snapshots.prune(store, 1) == [ids[1]]
    assert snapshots.verify(store, third) == []
    same_as_warehouse(url, warehouse, ids[2])


def _corrupt(store, key: str) -> None:
    if isinstance(store, LocalStore):
        (store.root / key).write_bytes(b"not parquet any more")  # in place, as a disk would
    else:
        boto3.client("s3").put_object(Bucket=store.bucket, Key=store._key(key), Body=b"not parquet any more")


def test_a_damaged_file_to_carry_fails_the_publish_until_restored_or_removed(tmp_path, warehouse, url):
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, url)
    store = open_store(url)
    damaged = f"snapshots/{first.snapshot_id}/{TX.format(2016)}"
    _corrupt(store, damaged)
    assert snapshots.verify(store, first.manifest) == [TX.format(2016)]
    load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C90001", action_date="2018-04-02")])
    said = (rf"'latest' still points to {first.snapshot_id}: .*"
            rf"{TX.format(2016)} \(carried from snapshot {first.snapshot_id}, ")
    with pytest.raises(snapshots.ChecksumMismatch, match=said + ".* is damaged: restore it, or delete it") as info:
        publish(warehouse, url)
    assert "\n" not in str(info.value)
    assert snapshots.current(store)["snapshot_id"] == first.snapshot_id
    assert [s["snapshot_id"] for s in snapshots.list_snapshots(store)] == [first.snapshot_id]
    store.delete([damaged])  # the way out the message gives: a missing file is exported again
    second = publish(warehouse, url)
    assert TX.format(2016) in second.written and TX.format(2017) in second.carried
    assert snapshots.verify(store, second.manifest) == []
    same_as_warehouse(url, warehouse)


def test_a_carried_file_damaged_after_its_copy_fails_verification(tmp_path, warehouse, url, monkeypatch):
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, url)
    load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C90001", action_date="2018-04-02")])
    cls = type(open_store(url))
    original = cls.copy

    def damaging(self, source, key):
        original(self, source, key)
        if key.endswith(TX.format(2017)):
            self.delete([key])  # a fresh inode, so the previous snapshot's file stays whole
            self.put_bytes(key, b"damaged in transit")

    monkeypatch.setattr(cls, "copy", damaging)
    said = rf"{TX.format(2017)} \(copied wrongly from snapshot {first.snapshot_id}: publish again\)"
    with pytest.raises(snapshots.ChecksumMismatch, match=said):
        publish(warehouse, url)
    store = open_store(url)
    assert snapshots.current(store)["snapshot_id"] == first.snapshot_id
    assert snapshots.verify(store, first.manifest) == []
    monkeypatch.setattr(cls, "copy", original)
    assert TX.format(2017) in publish(warehouse, url).carried


def test_a_publish_killed_after_copying_leaves_every_kept_snapshot_whole(tmp_path, warehouse, url):
    """A kill after the copies (before the manifest): the half snapshot is pruned later without touching
    the files of the snapshots it copied from or of the next one."""
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, url, keep=None)
    load(tmp_path, warehouse, "b.csv", [row(piid="HSCETC15C90001", action_date="2018-04-02")])
    con = db.connect(warehouse)

    def kill(step):
        if step == "uploaded":
            raise KeyboardInterrupt  # not an Exception: nothing is cleaned up, as after SIGKILL

    with pytest.raises(KeyboardInterrupt):
        snapshots.publish(con, open_store(url), workdir=tmp_path / "staging", keep=None, on_step=kill)
    con.close()
    store = open_store(url)
    half = [s for s in snapshots.list_snapshots(store) if not s["complete"]]
    assert len(half) == 1 and snapshots.current(store)["snapshot_id"] == first.snapshot_id
    time.sleep(1.1)  # ids sort by second: the next snapshot's sorts after the half one, which prune then deletes
    second = publish(warehouse, url, keep=1)
    assert second.pruned == sorted([first.snapshot_id, half[0]["snapshot_id"]], reverse=True)
    assert [s["snapshot_id"] for s in snapshots.list_snapshots(store)] == [second.snapshot_id]
    assert snapshots.verify(store, second.manifest) == []
    same_as_warehouse(url, warehouse)


def test_an_older_manifest_without_fingerprints_gets_a_full_publish(tmp_path, warehouse):
    """Snapshots published before fingerprints: nothing to compare with, so everything is exported once."""
    import json

    url = tmp_path / "snaps"
    load(tmp_path, warehouse, "a.csv", base_rows())
    first = publish(warehouse, str(url))
    key = url / "snapshots" / first.snapshot_id / "manifest.json"
    old = json.loads(key.read_text())
    for table in old["tables"].values():
        for f in table["files"]:
            del f["fingerprint"], f["written_in"]
    key.write_text(json.dumps(old))
    second = publish(warehouse, str(url))
    assert second.published and second.carried == [] and set(second.written) == paths(second.manifest)
    assert not publish(warehouse, str(url)).published


# ---------------------------------------------------------------------------------------------------------
# Fingerprints of the touched fiscal years only (issue 16, point 1): warehouse/touched.py, migration 008
# ---------------------------------------------------------------------------------------------------------

SMALL = {"awards", "recipients", "brand_mentions", "company_agency_fiscal_year"}


@pytest.fixture
def fingerprinted(monkeypatch) -> list[tuple[str, set | None]]:
    """(table, partition values asked, None: every one) of each fingerprint query a publish made."""
    seen = []
    original = snapshots.fingerprints

    def spy(con, table, column, values=None):
        seen.append((table, None if values is None else set(values)))
        return original(con, table, column, values)

    monkeypatch.setattr(snapshots, "fingerprints", spy)
    return seen


def full_fingerprints(warehouse: Path) -> dict[str, str]:
    """Every file's fingerprint, computed from every row (what a full publish writes)."""
    con = db.connect(warehouse)
    try:
        return {p.path: p.fingerprint for p in snapshots.parts(con)}
    finally:
        con.close()


def nightly(tmp_path: Path, warehouse: Path, url: str, name: str, rows: list[dict]):
    """A job: one load (run and settle), then the publish of its run."""
    job = ingest([write_csv(tmp_path / name, rows)], warehouse=warehouse)
    return publish(warehouse, url, run_ids=[job.run_id])


def test_a_nightly_touching_one_fiscal_year_fingerprints_only_that_year(tmp_path, warehouse, fingerprinted):
    url = str(tmp_path / "snaps")
    load(tmp_path, warehouse, "a.csv", base_rows())
    publish(warehouse, url)
    assert ("transactions", None) in fingerprinted  # the first publish: every partition
    fingerprinted.clear()
    second = nightly(tmp_path, warehouse, url, "b.csv", [row(piid="HSCETC15C90001", amount="5.00", action_date="2018-04-02")])
    assert [v for t, v in fingerprinted if t == "transactions"] == [{2018}]
    assert {t for t, v in fingerprinted if v is None} == SMALL  # one file each: fingerprinted whole
    assert {p for p in second.written if p.startswith("transactions/")} == {TX.format(2018)}
    assert {TX.format(2016), TX.format(2017)} <= set(second.carried)
    assert {path: f["fingerprint"] for path, f in entries(second.manifest).items()} == full_fingerprints(warehouse)
    fingerprinted.clear()
    third = nightly(tmp_path, warehouse, url, "b.csv", [row(piid="HSCETC15C90001", amount="5.00", action_date="2018-04-02")])
    assert not third.published and [v for t, v in fingerprinted if t == "transactions"] == [set()]  # loaded again: nothing


def anonymous_parent(piid: str, action_date: str, **parent) -> dict:
    return row(piid=piid, action_date=action_date, **({"recipient_name": "ACME WIDGETS LLC", "recipient_uei": "ACMEWID00001",
                                                       "recipient_duns": "", "recipient_parent_name": ""} | parent))


@pytest.mark.parametrize("change", ["new row", "correction into another year", "parent learned"])
def test_an_incremental_publish_equals_a_full_one(tmp_path, warehouse, fingerprinted, change):
    """Same files, fingerprints, rows and checksums as a publish that fingerprints and exports everything,
    also when a load moves a row to another year or changes the parent company of older rows."""
    url = str(tmp_path / "snaps")
    acme = [anonymous_parent("ACMEW16C0001", "2016-03-01"), anonymous_parent("ACMEW17C0001", "2017-03-01")]
    load(tmp_path, warehouse, "a.csv", base_rows() + acme)
    publish(warehouse, url)
    fingerprinted.clear()
    nightly_rows, touched_years = {
        "new row": ([row(piid="HSCETC15C90001", action_date="2018-04-02")], {2018}),
        # HSCETC15C00001 was FY2017 (2017-02-15)
        "correction into another year": ([row(piid="HSCETC15C00001", amount="10.00", action_date="2018-02-15",
                                              last_modified_date="2019-01-01 00:00:00")], {2017, 2018}),
        # a FY2018 action teaches ACME its parent: its FY2016 and FY2017 rows follow
        "parent learned": ([anonymous_parent("ACMEW18C0001", "2018-03-01", recipient_parent_uei="BIGPAR000001",
                                             recipient_parent_name="BIG PARENT HOLDINGS INC")], {2016, 2017, 2018}),
    }[change]
    second = nightly(tmp_path, warehouse, url, "b.csv", nightly_rows)
    assert [v for t, v in fingerprinted if t == "transactions"] == [touched_years]
    assert {p for p in second.written if p.startswith("transactions/")} == {TX.format(y) for y in touched_years}
    if change == "parent learned":
        assert query_warehouse(warehouse, "SELECT DISTINCT parent_company FROM transactions WHERE recipient_uei = 'ACMEWID00001'")[1] == [
            ("BIG PARENT HOLDINGS",)]
    con = db.connect(warehouse)
    try:
        full = snapshots.publish(con, open_store(str(tmp_path / "full")), workdir=tmp_path / "staging", incremental=False)
    finally:
        con.close()
    assert full.carried == []
    keys = ("path", "rows", "bytes", "sha256", "fingerprint")
    assert [[f[k] for k in keys] for f in entries(second.manifest).values()] == [[f[k] for k in keys] for f in entries(full.manifest).values()]
    same_as_warehouse(url, warehouse)


@pytest.mark.parametrize("why", ["a run without a record", "another warehouse's snapshot"])
def test_without_a_sure_record_every_partition_is_fingerprinted(tmp_path, warehouse, fingerprinted, why):
    url = str(tmp_path / "snaps")
    load(tmp_path, warehouse, "a.csv", base_rows())
    publish(warehouse, url)
    if why == "another warehouse's snapshot":  # the store's current snapshot is not one this warehouse published
        other = tmp_path / "other" / "awardwatch.duckdb"
        load(tmp_path, other, "o.csv", base_rows()[:10])
        assert publish(other, url).published
    job = ingest([write_csv(tmp_path / "b.csv", [row(piid="HSCETC15C90001", action_date="2018-04-02")])], warehouse=warehouse)
    if why == "a run without a record":  # as a run from before migration 008
        con = db.connect(warehouse)
        con.execute("UPDATE runs SET touched = NULL WHERE run_id = ?", [job.run_id])
        con.close()
    fingerprinted.clear()
    second = publish(warehouse, url, run_ids=[job.run_id])
    assert ("transactions", None) in fingerprinted
    assert {path: f["fingerprint"] for path, f in entries(second.manifest).items()} == full_fingerprints(warehouse)
    same_as_warehouse(url, warehouse)
