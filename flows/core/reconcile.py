"""Can the warehouse be trusted? ``reconcile`` compares it with USAspending's own published totals;
``status`` says whether it is complete and current. Both return plain data (the CLI prints it; the
nightly job can call ``reconcile(settings, agencies)`` and ``status(settings)`` the same way).

Agencies: a subtier (ICE, 7012) is checked as itself; a toptier (DHS, 070) expands to its
sub-agencies present in the warehouse, named as the agency registry names them
(flows/sources/usaspending.py) or, for a subtier it does not list, as the warehouse's rows do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from awardwatch.flows.core import ingest
from awardwatch.flows.core.feeds import landing
from awardwatch.flows.settings import Settings
from awardwatch.flows.sources import feed
from awardwatch.flows.sources.base import fiscal_year
from awardwatch.flows.sources import archive, usaspending, usaspending_totals
from awardwatch.flows.sources.http import Http, HttpError
from awardwatch.schemas.errors import AwardwatchError, WarehouseError
from awardwatch.schemas import agencies as registry
from awardwatch.warehouse import db, runs, touched
from awardwatch.warehouse import reconcile as sql

COLUMNS = ["agency_code", "agency_name", "fiscal_year", *sql.FIGURES, "status"]


@dataclass(frozen=True)
class Target:
    """An awarding sub-agency as the search endpoints take it."""

    code: str
    name: str
    toptier_name: str | None


@dataclass
class Row:
    agency_code: str
    agency_name: str
    fiscal_year: int
    warehouse_obligations: Decimal
    usaspending_obligations: Decimal
    warehouse_transactions: int
    usaspending_transactions: int
    mismatch_since: datetime | None = None
    repair: dict | None = None

    @property
    def obligations_difference(self) -> Decimal:
        return self.warehouse_obligations - self.usaspending_obligations

    @property
    def transactions_difference(self) -> int:
        return self.warehouse_transactions - self.usaspending_transactions

    @property
    def status(self) -> str:
        return "match" if not self.obligations_difference and not self.transactions_difference else "mismatch"

    def as_dict(self) -> dict:
        d = {c: getattr(self, c) for c in COLUMNS}
        return d | {"mismatch_since": self.mismatch_since, "repair": self.repair}

    def describe(self) -> str:
        return (f"{self.agency_code} {self.agency_name} FY{self.fiscal_year}: obligations {self.warehouse_obligations:,.2f} in the warehouse "
                f"vs {self.usaspending_obligations:,.2f} published (difference {self.obligations_difference:,.2f}), "
                f"transactions {self.warehouse_transactions:,} vs {self.usaspending_transactions:,} (difference {self.transactions_difference:,})")


@dataclass
class Reconciliation:
    run_id: str
    checked_at: datetime
    rows: list[Row]
    note: str = ""

    @property
    def mismatches(self) -> list[Row]:
        return [r for r in self.rows if r.status == "mismatch"]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def worst(self) -> Row | None:
        return max(self.mismatches, key=lambda r: (abs(r.obligations_difference), abs(r.transactions_difference)), default=None)

    def summary(self) -> str:
        """The one line for stderr (and the nightly's artifact)."""
        if not self.rows:
            return f"reconcile: nothing to compare ({self.note or 'no transactions of these agencies in the warehouse'})"
        worst = self.worst()
        if worst is None:
            return f"reconcile: all {len(self.rows)} agency-years match USAspending's published totals (run {self.run_id})"
        stays = ""
        if worst.repair and worst.repair["outcome"] == "persists":
            stays = "; it stays after a repair: USAspending's search totals disagree with its own download files"
        return f"reconcile: {len(self.mismatches)} of {len(self.rows)} agency-years differ from USAspending (run {self.run_id}); worst: {worst.describe()}{stays}"

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "checked_at": self.checked_at, "ok": self.ok, "summary": self.summary(),
                "rows": [r.as_dict() for r in self.rows]}


def http_for(s: Settings) -> Http:
    return Http.of(s, s.usaspending_url)


@contextmanager
def _warehouse(s: Settings, con=None) -> Iterator:
    """The job's connection when given (not closed here), else one of its own."""
    if con is not None:
        yield con
        return
    own = _open(s)
    try:
        yield own
    finally:
        own.close()


def _open(s: Settings):
    if not Path(s.warehouse).exists():
        raise WarehouseError(f"no warehouse at {s.warehouse}; run `awardwatch ingest`, `awardwatch run` or `awardwatch backfill` first")
    return db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)


def targets(con, chosen: list[registry.Agency]) -> list[Target]:
    """The sub-agencies to check: subtiers as chosen; a toptier's subtiers present in the warehouse."""
    subtiers = {a.code: a for a in registry.AGENCIES.values() if a.tier == "subtier"}
    found: dict[str, Target] = {}
    for a in chosen:
        if a.tier == "subtier":
            found.setdefault(a.code, Target(a.code, a.name, a.toptier_name))
            continue
        for code, name, _ in sql.subtiers_of(con, a.code):
            known = subtiers.get(code)
            found.setdefault(code, Target(code, known.name if known else name, a.name))
    return sorted(found.values(), key=lambda t: t.code)


def touched_targets(con, chosen: list[registry.Agency], groups: list[tuple[str, str, int]]) -> dict[Target, list[int]]:
    """The sub-agencies and fiscal years to check of the (agency, sub-agency, fiscal year) groups a job touched:
    those of a chosen subtier, or of a sub-agency of a chosen toptier. Names as ``targets`` gives them, the
    warehouse's read only for a subtier the registry does not list, in the touched years only."""
    subtiers = {a.code: a for a in registry.AGENCIES.values() if a.tier == "subtier"}
    years: dict[tuple[str, str | None], set[int]] = {}
    for agency, sub, fy in groups:
        for a in chosen:
            if sub and (a.code == sub if a.tier == "subtier" else a.code == agency):
                years.setdefault((sub, a.toptier_name if a.tier == "subtier" else a.name), set()).add(fy)
                break
    unknown = sorted({code for code, _ in years if code not in subtiers})
    named = sql.names_of(con, unknown, sorted({fy for (code, _), ys in years.items() if code in unknown for fy in ys})) if unknown else {}
    found = {}
    for (code, toptier), ys in sorted(years.items(), key=lambda kv: kv[0][0]):
        known = subtiers.get(code)
        found[Target(code, known.name if known else named.get(code, code), toptier)] = sorted(ys)
    return found


def _check(con, http: Http, cells: dict[Target, list[int]]) -> list[Row]:
    """Compares each target's fiscal years with USAspending's totals (a cell empty on both sides has no row)."""
    years = sorted({fy for ys in cells.values() for fy in ys})
    mine = sql.warehouse_figures(con, [t.code for t in cells], years)
    rows = []
    for t, ys in cells.items():
        theirs = usaspending_totals.published(http, t.name, ys, t.toptier_name)
        for fy in ys:
            money, n = mine[(t.code, fy)]
            if not n and not theirs[fy].transactions and not theirs[fy].obligations:
                continue  # neither side has this agency in this year
            rows.append(Row(t.code, t.name, fy, money, theirs[fy].obligations, n, theirs[fy].transactions))
    return rows


def reconcile(s: Settings, agencies: list[str] | None = None, fiscal_years: list[int] | None = None, *, repair: bool = False,
              http: Http | None = None, con=None, groups: list[tuple[str, str, int]] | None = None) -> Reconciliation:
    """Compares the warehouse with USAspending per awarding sub-agency and fiscal year, records the
    run in ``reconciliations``, and (``repair``) re-fetches each mismatching agency-year by action
    date, loads it and checks it again. Checks every fiscal year of the agencies, or with ``groups``
    (``touched.groups_of``: what a job's runs touched) only those (recorded with scope 'touched')."""
    own = http is None
    http = http or http_for(s)
    run_id, checked_at = runs.new_run_id(), runs.now()
    try:
        with _warehouse(s, con) as c:
            chosen_agencies = registry.resolve(list(agencies or s.agencies))
            if groups is None:
                chosen = targets(c, chosen_agencies)
                years = sorted(set(fiscal_years or sql.fiscal_years(c, [t.code for t in chosen])))
                cells = {t: years for t in chosen} if years else {}
            else:
                cells = {t: [fy for fy in ys if not fiscal_years or fy in fiscal_years]
                         for t, ys in touched_targets(c, chosen_agencies, groups).items()}
                cells = {t: ys for t, ys in cells.items() if ys}
                chosen = list(cells)
            rows = _check(c, http, cells) if cells else []
            sql.record(c, run_id, checked_at, "check", [r.as_dict() for r in rows], "all" if groups is None else "touched")
            since = sql.mismatch_since(c, [(r.agency_code, r.fiscal_year) for r in rows if r.status == "mismatch"])
        for r in rows:
            r.mismatch_since = since.get((r.agency_code, r.fiscal_year))
        if repair and any(r.status == "mismatch" for r in rows):
            rows = _repair(s, http, run_id, rows, {t.code: t for t in chosen})
    finally:
        if own:
            http.close()
    if groups is not None:
        note = "" if rows else f"the job changed no rows of {', '.join(agencies or s.agencies)}"
    else:
        note = "" if chosen else f"no sub-agency of {', '.join(agencies or s.agencies)} in the warehouse"
    return Reconciliation(run_id, checked_at, rows, note)


def _repair(s: Settings, http: Http, run_id: str, rows: list[Row], by_code: dict[str, Target]) -> list[Row]:
    """Re-fetches each mismatching agency-year (bulk download by action date, the usual load), then re-checks it."""
    into = landing(s, "usaspending", f"reconcile-{run_id}")
    download = usaspending.BulkDownload(http, poll_every=s.poll_every, poll_timeout=s.poll_timeout)
    loads = {}
    for r in [r for r in rows if r.status == "mismatch"]:
        t = by_code[r.agency_code]
        agency = registry.Agency(t.code, t.code, t.name, "subtier", t.toptier_name)
        path = download.fetch([agency], date(r.fiscal_year - 1, 10, 1), date(r.fiscal_year, 9, 30), into / f"{t.code}-FY{r.fiscal_year}",
                              date_type="action_date")
        result = ingest.ingest([path], warehouse=s.warehouse, threads=s.threads, lock_wait=s.lock_wait, source="usaspending",
                               command="reconcile", batch_rows=s.batch_rows, max_rejected_share=s.max_rejected_share, parameters={"source": "usaspending", "repair_of": run_id, "agency": t.code, "fiscal_year": r.fiscal_year})
        loads[(r.agency_code, r.fiscal_year)] = result
    shutil.rmtree(into, ignore_errors=True)
    con = _open(s)
    try:
        again = []
        for (code, fy), result in loads.items():
            fresh = _check(con, http, {by_code[code]: [fy]}) or [Row(code, by_code[code].name, fy, Decimal("0.00"), Decimal("0.00"), 0, 0)]
            again.append((fresh[0], result))
        sql.record(con, run_id, runs.now(), "recheck", [f.as_dict() | {"repair_run_id": res.run_id} for f, res in again])
    finally:
        con.close()
    fixed = {}
    for fresh, result in again:
        before = next(r for r in rows if (r.agency_code, r.fiscal_year) == (fresh.agency_code, fresh.fiscal_year))
        c = result.counts
        fresh.repair = {
            "run_id": result.run_id,
            "read": c.read, "inserted": c.inserted, "updated": c.updated, "unchanged": c.unchanged, "quarantined": c.quarantined,
            "before": {"warehouse_obligations": before.warehouse_obligations, "warehouse_transactions": before.warehouse_transactions,
                       "obligations_difference": before.obligations_difference, "transactions_difference": before.transactions_difference},
            "outcome": "healed" if fresh.status == "match" else "persists",
        }
        fresh.mismatch_since = None if fresh.status == "match" else before.mismatch_since
        fixed[(fresh.agency_code, fresh.fiscal_year)] = fresh
    return [fixed.get((r.agency_code, r.fiscal_year), r) for r in rows]


def repair_lines(result: Reconciliation) -> list[str]:
    """What each repair changed, one line each."""
    lines = []
    for r in result.rows:
        if not r.repair:
            continue
        p, b = r.repair, r.repair["before"]
        changed = (f"re-fetched FY{r.fiscal_year} of {r.agency_code} by action date (run {p['run_id']}): read {p['read']:,}, "
                   f"inserted {p['inserted']:,}, updated {p['updated']:,}, unchanged {p['unchanged']:,}; warehouse obligations "
                   f"{b['warehouse_obligations']:,.2f} -> {r.warehouse_obligations:,.2f}, transactions {b['warehouse_transactions']:,} -> {r.warehouse_transactions:,}")
        if p["outcome"] == "healed":
            lines.append(f"repaired {r.agency_code} FY{r.fiscal_year}: {changed}; now matches")
        else:
            lines.append(f"NOT repaired {r.agency_code} FY{r.fiscal_year}: {changed}; still differs (obligations {r.obligations_difference:,.2f}, "
                         f"transactions {r.transactions_difference:,}): USAspending's published totals disagree with its own download files "
                         "(or the warehouse keeps transactions upstream has since deleted, which a download does not list)")
    return lines


def after_load(con, s: Settings, agencies: list[str] | None, run_ids: list[str]) -> dict:
    """The nightly's check: reconciles the (sub-agency, fiscal year) groups its runs touched (rows inserted,
    updated or deleted, ``touched.groups_of``) of the agencies it loaded, and notes the verdict on its runs;
    every fiscal year of those agencies when a run has no record (from before migration 008).

    Never raises for the source's sake: an unreachable search endpoint is reported as "not checked"
    (the data is still the best we have, so the publish goes on either way)."""
    try:
        result = reconcile(s, agencies, con=con, groups=touched.groups_of(con, run_ids))
    except AwardwatchError as exc:
        verdict = f"not checked: {exc}"
        found = {"run_id": None, "ok": None, "summary": f"reconcile: {verdict}", "rows": []}
    else:
        verdict = "match" if result.ok else f"{len(result.mismatches)} of {len(result.rows)} agency-years differ (reconciliation {result.run_id})"
        found = result.as_dict()
    if run_ids:
        sql.mark_runs(con, run_ids, verdict)
    found["verdict"] = verdict
    return found


# ------------------------------------------------------------------ status


@dataclass
class Problem:
    kind: str  # stale | backfill | archive | fpds | reconciliation | check
    scope: str
    message: str
    details: dict = field(default_factory=dict)


@dataclass
class Status:
    checked_at: datetime
    sources: list[dict]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"checked_at": self.checked_at, "ok": self.ok, "sources": self.sources, "problems": [asdict(p) for p in self.problems]}


def _agency_options(scope: str) -> str:
    """``--agency`` options that reproduce a scope (awarding:CBP,ICE, contracting:ICE, archive:070)."""
    names = scope.split(":", 1)[-1].split(",")
    by_code = {a.code: a.abbreviation for a in registry.AGENCIES.values()}
    return " ".join(f"--agency {by_code.get(n, n)}" for n in names if n)


def _label(start: date, end: date) -> str:
    if (start.month, start.day, end.month, end.day) == (10, 1, 9, 30) and end.year == start.year + 1:
        return f"FY{end.year}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{start:%Y-%m}"
    return f"{start}..{end}"


def _ago(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds() / 86400, 1)


def _month(d: date) -> date:
    return d.replace(day=1)


def _months(first: date, last: date) -> list[date]:
    found, m = [], _month(first)
    while m <= last:
        found.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return found


def status(s: Settings, *, now: datetime | None = None, http: Http | None = None, online: bool = True, con=None) -> Status:
    """Whether the warehouse is complete and current: a line per source and scope, and every problem.
    ``online`` asks USAspending's Award Data Archive listing for the Delta and Full checks."""
    now = now or runs.now()
    chosen = registry.resolve(list(s.agencies))
    expected = {(name, scope.name) for name in s.sources for scope in feed(name, s).scopes(chosen)}
    with _warehouse(s, con) as c:
        states = {(r["source"], r["scope"]): r for r in sql.source_state(c)}
        chunks = sql.unfinished_chunks(c)
        applied = sql.archive_files_loaded(c)
        _, _, mismatches = sql.latest_mismatches(c)
    problems: list[Problem] = []
    lines = []
    watched = sorted(expected | {k for k, v in states.items() if v["watermark"] is not None})
    for source, scope in watched:
        st = states.get((source, scope), {})
        last = st.get("last_nightly") or (st.get("watermark_moved") if source == "archive" else None)
        line = {"source": source, "scope": scope, "last_success": last, "last_success_days": _ago(now, last),
                "watermark": st.get("watermark"), "watermark_days": _ago(now, st.get("watermark")),
                "last_failure": st.get("last_failure"), "state": "ok"}
        failure = ""
        if st.get("last_failure") and (last is None or st["last_failure"] > last):
            failure = f"; last failure {st['last_failure']:%Y-%m-%d %H:%M}: {(st.get('last_failure_message') or 'no message')[:160]}"
        if source == "archive":  # Delta files come monthly: judged by the Delta sequence below, not by days
            if st.get("watermark") is None:
                line["state"] = "no Full file"
                problems.append(Problem("archive", scope, f"archive {scope}: no Full file loaded, so no Delta file is applied; "
                                        f"run `awardwatch backfill --source archive --start <date> --end <date> {_agency_options(scope)}`"))
        elif last is None:
            line["state"] = "never"
            problems.append(Problem("stale", scope, f"{source} {scope}: no successful nightly run yet{failure}"))
        elif now - last > timedelta(days=s.stale_days):
            line["state"] = "stale"
            mark = f", watermark {st['watermark']:%Y-%m-%d} ({_ago(now, st['watermark'])} days old)" if st.get("watermark") else ""
            problems.append(Problem("stale", scope, f"{source} {scope}: stale: last successful run {last:%Y-%m-%d %H:%M} "
                                    f"({_ago(now, last)} days ago, limit {s.stale_days:g}){mark}{failure}",
                                    {"last_success": last, "watermark": st.get("watermark")}))
        lines.append(line)

    for c in chunks:
        label = _label(c["chunk_start"], c["chunk_end"])
        why = {"failed": f"failed (run {c['run_id']}: {(c['message'] or 'no message')[:160]})",
               "interrupted": f"interrupted (run {c['run_id']})", "never finished": "never finished (its download or load did not end)",
               "missing": "missing between finished chunks (its download failed)"}.get(c["state"], c["state"])
        kind, what = ("fpds", "FPDS window (last-modified dates)") if c["source"] == "fpds" else ("backfill", "backfill chunk")
        if c["source"] == "fpds":
            why += "; its count check or download failed and it was not re-read"
        rerun = (f"awardwatch backfill --source {c['source']} --start {c['chunk_start']} --end {c['chunk_end']} {_agency_options(c['scope'])}").strip()
        problems.append(Problem(kind, c["scope"], f"{c['source']} {c['scope']}: {what} {label} {why}; a re-run fetches "
                                f"{c['chunk_start']}..{c['chunk_end']}: {rerun}", {k: c[k] for k in ("backfill_id", "chunk_start", "chunk_end", "state")}))

    archive_scopes = sorted(scope for source, scope in watched if source == "archive" and states.get((source, scope), {}).get("watermark"))
    if archive_scopes and online:
        problems += _archive_problems(s, http, archive_scopes, applied, now.date())

    for m in mismatches:
        row = Row(m["agency_code"], m["agency_name"], m["fiscal_year"], m["warehouse_obligations"], m["usaspending_obligations"],
                  m["warehouse_transactions"], m["usaspending_transactions"])
        after = " after a repair (upstream disagrees with its own files)" if m["phase"] == "recheck" else ""
        problems.append(Problem("reconciliation", m["agency_code"], f"reconciliation {m['run_id']} ({m['checked_at']:%Y-%m-%d %H:%M}){after}: {row.describe()}",
                                {k: m[k] for k in ("agency_code", "fiscal_year", "obligations_difference", "transactions_difference")}))
    return Status(now, lines, problems)


def _archive_problems(s: Settings, http: Http | None, scopes: list[str], applied: list[sql.Applied], today: date) -> list[Problem]:
    """Delta files applied versus the monthly sequence list_monthly_files lists, and Full files newer than those loaded."""
    own = http is None
    http = http or http_for(s)
    problems = []
    try:
        for scope in scopes:
            toptier = scope.split(":", 1)[1]
            fulls = [a for a in applied if a.toptier == toptier and a.kind == "Full"]
            deltas = [a for a in applied if a.toptier == toptier and a.kind == "Delta"]
            years = sorted({a.fiscal_year for a in fulls}) or [fiscal_year(today)]
            try:
                listed = {fy: archive.listing(http, toptier, fy) for fy in years}
            except (HttpError, AwardwatchError) as exc:
                problems.append(Problem("archive", scope, f"archive {scope}: could not list the Award Data Archive ({exc}); Delta and Full checks skipped"))
                continue
            for fy in years:  # a Full file newer than the one loaded
                loaded = max((a.generated for a in fulls if a.fiscal_year == fy), default=None)
                newest = archive.full_file(listed[fy], fy)
                if loaded and newest and newest.generated > loaded:
                    problems.append(Problem("archive", scope, f"archive {scope}: a newer Full file {newest.name} is listed (loaded: "
                                            f"{loaded:%Y%m%d}); run `awardwatch backfill --source archive --start {fy - 1}-10-01 --end {fy}-09-30 {_agency_options(scope)}`"))
            listed_deltas = {f.generated for fy in years for f in listed[fy] if f.kind == "Delta"}
            start = max((a.generated for a in fulls), default=None)
            if start is None:
                continue
            have = {_month(d) for d in listed_deltas} | {_month(a.generated) for a in deltas}
            due = _months((_month(start) + timedelta(days=32)).replace(day=1), (_month(today) - timedelta(days=1)))
            for month in due:
                if month in have:
                    continue
                before = [a for a in deltas if a.generated < month][-3:]
                carried = (", ".join(f"{a.generated:%Y-%m}: {a.rows:,}" for a in before) if before else "none applied before it")
                problems.append(Problem("archive", scope, f"archive {scope}: no Delta file for {month:%Y-%m} (neither listed by list_monthly_files nor "
                                        f"applied); it may be empty, since USAspending drops empty Delta files, but this agency's previous "
                                        f"Deltas carried rows ({carried})", {"month": f"{month:%Y-%m}"}))
            late = sorted(d for d in listed_deltas if d > start and d not in {a.generated for a in deltas}
                          and (today - d).days > s.stale_days)
            for d in late:
                problems.append(Problem("archive", scope, f"archive {scope}: the Delta file of {d} is listed but not applied; "
                                        f"run `awardwatch run --source archive {_agency_options(scope)}`"))
    finally:
        if own:
            http.close()
    return problems
