"""A file's rows written while it is staged (``load.Early``, ``ingest._stage_writing``): the same warehouse as
loading the staged file afterwards, in every case (keys repeated across batches, a reload, a refused file)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from awardwatch.flows.core.ingest import ingest
from awardwatch.schemas.errors import InputError
from awardwatch.warehouse import load
from tests.factories import row, write_csv

ROWS = "SELECT * EXCLUDE (run_id, loaded_at) FROM transactions ORDER BY ALL"
RUNS = "SELECT status, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_duplicate, rows_quarantined FROM runs ORDER BY started_at"


def state(warehouse: Path) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {"transactions": con.execute(ROWS).fetchall(), "runs": con.execute(RUNS).fetchall(),
                "awards": con.execute("SELECT * FROM awards ORDER BY ALL").fetchall(),
                "quarantine": con.execute("SELECT quarantine_id, source_row, reasons FROM quarantine ORDER BY ALL").fetchall()}
    finally:
        con.close()


@pytest.fixture
def written(monkeypatch):
    """Counts the batches ``Early`` wrote and whether it stood down."""
    seen = {"added": 0, "stood_down": 0}
    add, stand_down = load.Early.add, load.Early.stand_down

    def counted_add(self, path):
        seen["added"] += self.active and path is not None
        return add(self, path)

    def counted_stand_down(self):
        seen["stood_down"] += self.active
        return stand_down(self)

    monkeypatch.setattr(load.Early, "add", counted_add)
    monkeypatch.setattr(load.Early, "stand_down", counted_stand_down)
    return seen


def without_early(monkeypatch):
    def inactive(self, con, *args):
        self.con, self.active, self.written = con, False, 0

    monkeypatch.setattr(load.Early, "__init__", inactive)


def copies(piid: str, *dates: str) -> list[dict]:
    """Rows of one key, one per last_modified_date ('' for none)."""
    return [row(piid=piid, amount=f"{i + 1}00.00", last_modified_date=d) for i, d in enumerate(dates)]


CASES = {
    "distinct keys": [row(piid=f"HSCETC15C{i:05d}") for i in range(7)],
    # batches of 2 rows: each key's copies fall in different batches
    "a later, newer copy": copies("HSCETC15C00001", "2018-01-01 00:00:00", "2018-02-01 00:00:00", "2018-03-01 00:00:00"),
    "a later, older copy": copies("HSCETC15C00001", "2018-03-01 00:00:00", "2018-02-01 00:00:00", "2018-01-01 00:00:00"),
    "a later, undated copy": copies("HSCETC15C00001", "2018-03-01 00:00:00", "", ""),
    "mixed": [*copies("HSCETC15C00001", "2018-01-01 00:00:00", "2018-01-01 00:00:00"), row(piid="HSCETC15C00009"),
              *copies("HSCETC15C00002", "", "2018-01-01 00:00:00"), row(piid="X", action_date="2018-02-30")],
}


@pytest.mark.parametrize("case", CASES)
def test_writing_while_staging_gives_the_same_warehouse(case, tmp_path, monkeypatch, written):
    f = write_csv(tmp_path / "a.csv", CASES[case])
    overlapped = ingest([f], warehouse=tmp_path / "a" / "w.duckdb", batch_rows=2, max_rejected_share=1)
    ingest([f], warehouse=tmp_path / "a" / "w.duckdb", batch_rows=2, max_rejected_share=1)  # a reload: unchanged
    assert written["added"] > 0
    with monkeypatch.context() as m:
        without_early(m)
        plain = ingest([f], warehouse=tmp_path / "b" / "w.duckdb", batch_rows=2, max_rejected_share=1)
        ingest([f], warehouse=tmp_path / "b" / "w.duckdb", batch_rows=2, max_rejected_share=1)
    assert overlapped.counts == plain.counts
    assert state(tmp_path / "a" / "w.duckdb") == state(tmp_path / "b" / "w.duckdb")
    if case.startswith("a later"):  # a key in two batches: loaded as usual
        assert written["stood_down"] == 1
    if case == "distinct keys":
        assert written["stood_down"] == 0


def test_only_into_an_empty_warehouse(tmp_path, written):
    warehouse = tmp_path / "w.duckdb"
    ingest([write_csv(tmp_path / "a.csv", [row(piid="HSCETC15C00001")])], warehouse=warehouse)
    assert written["added"] == 1
    result = ingest([write_csv(tmp_path / "b.csv", [row(piid="HSCETC15C00002"), row(amount="5.00", last_modified_date="2030-01-01 00:00:00")])],
                    warehouse=warehouse)
    assert written["added"] == 1
    assert (result.counts.inserted, result.counts.updated) == (1, 1)


def test_a_refused_file_leaves_nothing_after_rows_were_written(tmp_path, written):
    warehouse = tmp_path / "w.duckdb"
    rows = [row(piid=f"HSCETC15C{i:05d}") for i in range(6)] + [row(piid=f"X{i}", action_date="2018-02-30") for i in range(4)]
    with pytest.raises(InputError, match="failed validation"):
        ingest([write_csv(tmp_path / "a.csv", rows)], warehouse=warehouse, batch_rows=2)
    assert written["added"] == 3
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
        assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    finally:
        con.close()
    again = ingest([write_csv(tmp_path / "b.csv", rows[:6])], warehouse=warehouse, batch_rows=2)
    assert again.counts.inserted == 6


def test_one_thread_restores_the_setting(tmp_path):
    con = duckdb.connect(config={"threads": "2"})
    try:
        with load.one_thread(con):
            assert con.execute("SELECT current_setting('threads')").fetchone() == (1,)
        assert con.execute("SELECT current_setting('threads')").fetchone() == (2,)
    finally:
        con.close()
