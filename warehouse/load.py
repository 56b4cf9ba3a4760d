"""Idempotent loads: staged Parquet files of one source file -> the warehouse, in one transaction.

A staged file holds canonical transactions (with ``row_hash`` and ``source_row``);
a quarantine file holds the rejected rows. ``load_file`` classifies every staged
row against the warehouse by ``contract_transaction_unique_key``:

- a key seen more than once in the file: the newest (``last_modified_date``,
  then the later row) is kept, the others count as duplicates;
- unknown key: inserted; same ``row_hash``: unchanged; different content and not
  older than the stored row: updated (a correction); older, or undated while the
  stored row is dated: unchanged (the warehouse already holds a newer version).

Only inserted and updated rows are written, then ``awards`` is rebuilt for the
award keys they touch. Those keys go to ``pending_awards`` and the resolved version
of every row replaced or deleted to ``pending_rows``: ``companies.refresh``, once
per job, resolves parent companies, brand mentions and the mart from them.
Quarantine rows, the file's record in ``run_files``, the pending keys and the run's
counts commit in the same transaction, so a crash leaves the file either wholly
loaded (and pending) or not at all. Into an empty warehouse, the rows may be written
while the file is still being staged (``Early``), in that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from awardwatch.schemas.names import AWARD_KEY, KEY
from awardwatch.warehouse import db, runs
from awardwatch.warehouse.runs import Counts

LINEAGE = ("source", "source_file", "run_id", "loaded_at")


@dataclass
class StagedFile:
    """What the pipeline produced for one source file."""

    source: str
    source_file: str
    staged: list[Path]  # Parquet: canonical transactions
    quarantined: list[Path]  # Parquet: rejected rows
    read: int
    deletions: list[Path] = field(default_factory=list)  # Parquet: keys to delete (key, source_row, last_modified_date)
    layout: str = ""
    extra_columns: list[str] = field(default_factory=list)

    def paths(self) -> list[Path]:
        """Every Parquet file it lists: staged rows, quarantine, deletions."""
        return [*self.staged, *self.quarantined, *self.deletions]

    def moved(self, where: Callable[[Path], Path]) -> StagedFile:
        """A copy listing ``where(path)`` for each of its files (they were uploaded or downloaded)."""
        return replace(self, staged=[where(p) for p in self.staged], quarantined=[where(p) for p in self.quarantined],
                       deletions=[where(p) for p in self.deletions])


def _files(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def load_file(con: duckdb.DuckDBPyConnection, run_id: str, f: StagedFile, seconds: float,
              before_commit: Callable[[], None] = lambda: None, early: Early | None = None) -> Counts:
    """Merges one staged file into the warehouse in one transaction; returns its counts. ``early``: its rows
    were written while it was staged, in the transaction ``early`` opened (see ``Early``), which this ends."""
    counts = Counts(read=f.read)
    early = early if early is not None and early.active else None
    loaded_at = early.loaded_at if early else runs.now()
    lineage = [f.source, f.source_file, run_id, loaded_at]
    if not early:
        con.execute("BEGIN")
    try:
        if f.staged:
            by_action = _classify(con, f.staged, "(SELECT * FROM transactions WHERE false)" if early else "transactions")
            if early and by_action.get("insert", 0) != early.written:  # a key in more than one batch: written twice
                early.stand_down()
                early = None
                con.execute("BEGIN")
                by_action = _classify(con, f.staged, "transactions")
            counts.inserted = by_action.get("insert", 0)
            counts.updated = by_action.get("update", 0)
            counts.unchanged = by_action.get("unchanged", 0)
            counts.duplicate = by_action.get("duplicate", 0)
            if counts.updated:
                _remember(con, run_id, "SELECT k FROM plan WHERE action = 'update'")
            if not early:
                _write(con, f.staged, lineage, counts, all_new=counts.inserted == sum(by_action.values()))
        con.execute("CREATE OR REPLACE TEMP TABLE touched (award_key VARCHAR)")
        if counts.inserted or counts.updated:
            con.execute("INSERT INTO touched SELECT DISTINCT award_key FROM plan WHERE action IN ('insert', 'update')")
        if f.deletions:
            counts.deleted = _delete(con, f, run_id, loaded_at)
        if con.execute("SELECT count(*) FROM touched").fetchone()[0]:
            refresh_awards(con, "touched", _written(con, f) if counts.inserted or counts.updated else None)
            con.execute("INSERT INTO pending_awards SELECT DISTINCT t.award_key, ? FROM touched t "
                        "ANTI JOIN pending_awards p ON p.award_key = t.award_key", [run_id])
        if f.quarantined:
            counts.quarantined = _quarantine(con, f, run_id, loaded_at)
        con.execute(
            "INSERT OR REPLACE INTO run_files (run_id, source, source_file, layout, status, rows_read, rows_inserted, "
            "rows_updated, rows_unchanged, rows_duplicate, rows_quarantined, rows_deleted, extra_columns, seconds) "
            "VALUES (?, ?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, f.source, f.source_file, f.layout, counts.read, counts.inserted, counts.updated, counts.unchanged,
             counts.duplicate, counts.quarantined, counts.deleted, f.extra_columns, seconds],
        )
        runs.add_counts(con, run_id, counts)
        before_commit()
        with db.no_vacuum(con):
            con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.TransactionException:  # a failed COMMIT has ended the transaction already
            pass
        raise
    finally:
        if early:
            early.active = False  # its transaction is over
    return counts


def _written(con: duckdb.DuckDBPyConnection, f: StagedFile) -> str | None:
    """The staged rows the plan wrote (inserts and updates), as a relation, when they carry every field
    ``awards`` takes from a latest transaction (a staged file of an older layout may not)."""
    columns = {c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet({_files(f.staged[:1])}))").fetchall()}
    if not {c.split(" AS ")[0] for c in LATEST} <= columns:
        return None
    return (f"(SELECT s.* FROM read_parquet({_files(f.staged)}) s SEMI JOIN plan p ON p.k = s.{KEY} "
            f"AND p.source_row = s.source_row AND p.action IN ('insert', 'update'))")


def _classify(con: duckdb.DuckDBPyConnection, staged: list[Path], stored: str) -> dict[str, int]:
    """``_plan``, then the number of staged rows per action."""
    _plan(con, staged, stored)
    return dict(con.execute("SELECT action, count(*) FROM plan GROUP BY action").fetchall())


class Early:
    """A file's rows written while the file is still being staged, so that DuckDB's writing overlaps the
    polars work (``flows.core.ingest`` stages in a thread meanwhile): of each staged batch (``add``), the
    newest copy of every key, as the plan orders copies. Only into an empty ``transactions`` (a first load:
    every key of the file is then an insert, found without looking up stored keys). ``load_file`` then
    plans the whole file: if it inserts as many rows as were written, no key was in two batches and the
    rows written are exactly its inserts; otherwise (rare: a key repeated across batches), or when the
    staging restarts (``add(None)``), this stands down: the transaction is rolled back and the file is
    loaded as usual. It opens the file's transaction, which ``load_file`` ends (``close`` rolls back one
    ``load_file`` did not take over), so a file is still loaded wholly or not at all."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str, source: str, source_file: str):
        self.con, self.loaded_at, self.written = con, runs.now(), 0
        self.lineage = [source, source_file, run_id, self.loaded_at]
        con.execute("BEGIN")
        self.active = not con.execute("SELECT count(*) FROM (SELECT 1 FROM transactions LIMIT 1)").fetchone()[0]
        if not self.active:
            con.execute("ROLLBACK")

    def add(self, path: Path | None) -> None:
        """Writes the rows of one staged batch, its newest copy of each key (``None``: the batches so far are void)."""
        if not self.active:
            return
        if path is None:
            return self.stand_down()
        con = self.con
        with one_thread(con):
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE newest AS
                SELECT k, source_row FROM (
                    SELECT {KEY} AS k, source_row,
                           row_number() OVER (PARTITION BY {KEY} ORDER BY last_modified_date DESC NULLS LAST, source_row DESC) AS copy
                    FROM read_parquet({_files([path])})
                ) WHERE copy = 1
                """
            )
            self.written += con.execute(f"INSERT INTO transactions BY NAME {_with_lineage([path])} "
                                        f"SEMI JOIN newest n ON n.k = s.{KEY} AND n.source_row = s.source_row",
                                        self.lineage).fetchone()[0]

    def stand_down(self) -> None:
        if self.active:
            self.active = False
            self.con.execute("ROLLBACK")

    close = stand_down


def _plan(con: duckdb.DuckDBPyConnection, staged: list[Path], stored: str = "transactions") -> None:
    """Temp table ``plan``: one row per staged row with its action, against the rows of ``stored``."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE plan AS
        WITH incoming AS (
            SELECT {KEY} AS k, {AWARD_KEY} AS award_key, row_hash, last_modified_date AS lmd, source_row,
                   row_number() OVER (PARTITION BY {KEY} ORDER BY last_modified_date DESC NULLS LAST, source_row DESC) AS copy
            FROM read_parquet({_files(staged)})
        ),
        stored AS (SELECT {KEY} AS k, row_hash, last_modified_date AS lmd FROM {stored}),
        final AS (
            SELECT i.k, i.award_key, i.source_row,
                   CASE WHEN i.copy > 1 THEN 'duplicate'
                        WHEN s.k IS NULL THEN 'insert'
                        WHEN s.row_hash = i.row_hash THEN 'unchanged'
                        WHEN s.lmd IS NOT NULL AND (i.lmd IS NULL OR i.lmd < s.lmd) THEN 'unchanged'
                        ELSE 'update' END AS action
            FROM incoming i LEFT JOIN stored s ON s.k = i.k
        )
        SELECT * FROM final
        """
    )


def one_thread(con: duckdb.DuckDBPyConnection):
    """DuckDB on one thread meanwhile. Writing rows into ``transactions`` costs about half the CPU on one
    thread than on two (measured: 193k rows of 300 columns, 11 CPU s against 22 under the 1 GB memory
    limit, where two threads' row groups in the making spill), and is not slower; it leaves the other
    core to the polars work beside it."""
    return db.setting(con, "threads", 1)


def _write(con: duckdb.DuckDBPyConnection, staged: list[Path], lineage: list, counts: Counts, *, all_new: bool) -> None:
    with one_thread(con):
        _write_rows(con, staged, lineage, counts, all_new=all_new)


def _with_lineage(staged: list[Path]) -> str:
    """The staged rows as ``transactions`` rows (parameters: source, source_file, run_id, loaded_at), as ``s``."""
    return (
        f"SELECT s.* EXCLUDE (source_row, lineage_file, lineage_row), ?::VARCHAR AS source, "
        f"coalesce(s.lineage_file, ?::VARCHAR) AS source_file, coalesce(s.lineage_row, s.source_row) AS source_row, "
        f"?::VARCHAR AS run_id, ?::TIMESTAMP AS loaded_at FROM read_parquet({_files(staged)}) s"
    )


def _write_rows(con: duckdb.DuckDBPyConnection, staged: list[Path], lineage: list, counts: Counts, *, all_new: bool) -> None:
    with_lineage = _with_lineage(staged)
    if counts.inserted:
        where = "" if all_new else f" SEMI JOIN plan p ON p.k = s.{KEY} AND p.source_row = s.source_row AND p.action = 'insert'"
        con.execute(f"INSERT INTO transactions BY NAME {with_lineage}{where}", lineage)
    if counts.updated:
        _replace(con, with_lineage, lineage)


def _replace(con: duckdb.DuckDBPyConnection, with_lineage: str, lineage: list) -> None:
    """The planned updates, as a delete of the stored version and an insert of the new one (which keeps the
    stored values of the columns the staged rows lack, such as the resolved parent company). Not an
    ``UPDATE``: DuckDB's checkpoint rewrites every updated column of each row group an update touches, and
    a run's corrections touch row groups all over the warehouse, so that cost grew with the warehouse
    (measured: a 10,000-row chunk with 98 corrections onto 119k rows, 4.9 s of its 6.6 s in the COMMIT);
    a delete only marks rows, and the inserts are appended."""
    staged = {d[0] for d in con.execute(f"SELECT * FROM ({with_lineage}) LIMIT 0", lineage).description}
    kept = [c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE transactions)").fetchall() if c not in staged]
    con.execute(f"CREATE OR REPLACE TEMP TABLE replaced AS SELECT {', '.join([KEY] + kept)} FROM transactions "
                f"WHERE {KEY} IN (SELECT k FROM plan WHERE action = 'update')")
    con.execute(f"DELETE FROM transactions WHERE {KEY} IN (SELECT k FROM plan WHERE action = 'update')")
    carried = "".join(f', r."{c}"' for c in kept)
    con.execute(
        f"INSERT INTO transactions BY NAME SELECT u.*{carried} FROM ({with_lineage} SEMI JOIN plan p "
        f"ON p.k = s.{KEY} AND p.source_row = s.source_row AND p.action = 'update') u JOIN replaced r ON r.{KEY} = u.{KEY}",
        lineage,
    )


def _delete(con: duckdb.DuckDBPyConnection, f: StagedFile, run_id: str, at) -> int:
    """Applies deletion records: a stored row goes only if the deletion is newer than it (the broker's
    ``get_delete_data`` in dataactcore/scripts/pipeline/pull_fpds_data.py: ``last_modified > existing.last_modified``);
    equal dates keep the row. A date-only deletion (Award Data Archive Delta files) counts as midnight,
    which is the same as comparing days: it removes rows last modified before that day, not on it.
    A deletion or stored row without a date: the row goes. Every record is logged in ``deletions``
    (once: re-reading the same file adds nothing)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE doomed AS
        SELECT d.{KEY} AS k, coalesce(d.lineage_row, d.source_row) AS source_row, d.lineage_file,
               d.last_modified_date AS lmd, t.{AWARD_KEY} AS award_key,
               coalesce(t.{KEY} IS NOT NULL AND (d.last_modified_date IS NULL OR t.last_modified_date IS NULL
                        OR d.last_modified_date > t.last_modified_date), false) AS applied
        FROM read_parquet({_files(f.deletions)}) d LEFT JOIN transactions t ON t.{KEY} = d.{KEY}
        """
    )
    _remember(con, run_id, "SELECT k FROM doomed WHERE applied")
    con.execute(f"DELETE FROM transactions WHERE {KEY} IN (SELECT k FROM doomed WHERE applied)")
    con.execute("INSERT INTO touched SELECT DISTINCT award_key FROM doomed WHERE applied")
    con.execute(
        f"""
        INSERT INTO deletions
        SELECT d.k, d.award_key, d.applied, d.lmd, ?, coalesce(d.lineage_file, ?), d.source_row, ?, ?
        FROM doomed d ANTI JOIN deletions e
          ON e.{KEY} = d.k AND e.source_file = coalesce(d.lineage_file, ?) AND e.source_row IS NOT DISTINCT FROM d.source_row
        """,
        [f.source, f.source_file, run_id, at, f.source_file],
    )
    return con.execute("SELECT count(*) FROM doomed").fetchone()[0]


# what companies.refresh needs of a row's resolved version: its recipient, parents and mart group
REMEMBERED = ("recipient_uei", "recipient_duns", "recipient_name", "recipient_parent_uei", "recipient_parent_duns",
              "recipient_parent_name", "action_date", "last_modified_date", "federal_action_obligation",
              "parent_company", "parent_company_method", "awarding_agency_code", "awarding_sub_agency_code",
              "fiscal_year")


def _remember(con: duckdb.DuckDBPyConnection, run_id: str, keys: str) -> None:
    """Keeps in ``pending_rows`` the version the last refresh resolved of the rows ``keys`` (a query of
    transaction keys) lists, about to be replaced or deleted: not a row loaded since (no company yet),
    nor one already kept."""
    con.execute(
        f"INSERT INTO pending_rows BY NAME SELECT ?::VARCHAR AS run_id, {KEY}, {AWARD_KEY}, {', '.join(REMEMBERED)} "
        f"FROM transactions WHERE {KEY} IN ({keys}) AND parent_company IS NOT NULL "
        f"AND {KEY} NOT IN (SELECT {KEY} FROM pending_rows)",
        [run_id],
    )


def _quarantine(con: duckdb.DuckDBPyConnection, f: StagedFile, run_id: str, at) -> int:
    source = f"read_parquet({_files(f.quarantined)})"
    total = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT q.quarantine_id, ?, coalesce(q.lineage_file, ?), coalesce(q.lineage_row, q.source_row), q.reasons,
               q.original_values::JSON, q.{KEY}, ?, ?, ?
        FROM {source} q ANTI JOIN quarantine e ON e.quarantine_id = q.quarantine_id
        """,
        [f.source, f.source_file, run_id, run_id, at],
    )
    con.execute(f"UPDATE quarantine SET last_run_id = ? WHERE quarantine_id IN (SELECT quarantine_id FROM {source})", [run_id])
    return total


# fields of an award taken from its latest transaction (select expressions over it)
LATEST = (
    "award_id_piid", "parent_award_id_piid", "parent_award_agency_id", "award_or_idv_flag", "award_type_code",
    "award_type", "idv_type_code", "idv_type", "awarding_agency_code", "awarding_agency_name",
    "awarding_sub_agency_code", "awarding_sub_agency_name", "awarding_office_code", "awarding_office_name",
    "funding_agency_code", "funding_agency_name", "funding_sub_agency_code", "funding_sub_agency_name",
    "recipient_uei", "recipient_duns", "recipient_name", "recipient_parent_uei", "recipient_parent_duns",
    "recipient_parent_name", "product_or_service_code", "product_or_service_code_description", "naics_code",
    "naics_description", "type_of_contract_pricing_code", "transaction_description",
    "prime_award_base_transaction_description", "modification_number AS latest_modification_number",
    "current_total_value_of_award", "potential_total_value_of_award", "period_of_performance_current_end_date",
)
# Per award: the key of its latest transaction (action date, then last modified, then
# modification number, then key) and the totals, all small aggregate states; then the latest
# transaction's fields by a join. (Carrying the fields through the aggregate holds every award's
# strings in memory at once, which does not fit a memory cap at millions of awards.)
PER_AWARD_SQL = f"""
CREATE OR REPLACE TEMP TABLE per_award AS
SELECT {AWARD_KEY},
       arg_max({KEY}, (action_date, coalesce(last_modified_date, TIMESTAMP '0001-01-01'), modification_number, {KEY})) AS latest_key,
       coalesce(sum(federal_action_obligation), 0) AS total_obligated_amount,
       count(*) AS number_of_transactions,
       min(action_date) AS award_base_action_date,
       max(action_date) AS award_latest_action_date,
       min(fiscal_year) AS fiscal_year,
       max(last_modified_date) AS last_modified_date
FROM transactions WHERE {AWARD_KEY} IN (SELECT award_key FROM {{keys}})
GROUP BY {AWARD_KEY}
"""
LATEST_FROM = f"SELECT {KEY}, {', '.join(LATEST)} FROM {{rows}} WHERE {KEY} IN (SELECT latest_key FROM per_award{{lacking}})"
LACKING = f" ANTI JOIN latest l ON l.{KEY} = per_award.latest_key"


def refresh_awards(con: duckdb.DuckDBPyConnection, keys_table: str, written: str | None = None) -> None:
    """Rebuilds the ``awards`` rows of the award keys listed in ``keys_table`` (column ``award_key``).
    ``written``: a relation of the rows just written (a key once each, ``transactions``' columns), from which
    the latest transactions' fields are taken where it holds them. The stored rows are then read only for
    the awards whose latest transaction it lacks, and not at all when it has them all, as for a backfill
    chunk whose awards end in it: fetching 35 columns of a few rows scans them over the whole table
    (DuckDB reads every vector's columns for a join), a cost that grew with the warehouse."""
    con.execute(PER_AWARD_SQL.format(keys=keys_table))
    con.execute(f"CREATE OR REPLACE TEMP TABLE latest AS {LATEST_FROM.format(rows=written or 'transactions', lacking='')}")
    if written and con.execute(f"SELECT count(*) FROM per_award{LACKING}").fetchone()[0]:
        con.execute(f"INSERT INTO latest {LATEST_FROM.format(rows='transactions', lacking=LACKING)}")
    names = [c.split(" AS ")[-1] for c in LATEST]
    con.execute(f"DELETE FROM awards WHERE {AWARD_KEY} IN (SELECT award_key FROM {keys_table})")
    con.execute(
        f"""
        INSERT INTO awards BY NAME
        SELECT p.{AWARD_KEY}, {", ".join("l." + c for c in names)},
               p.total_obligated_amount, p.number_of_transactions, p.award_base_action_date, p.award_latest_action_date,
               p.fiscal_year, p.last_modified_date
        FROM per_award p JOIN latest l ON l.{KEY} = p.latest_key
        """
    )
