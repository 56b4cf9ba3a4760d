"""The changes between two snapshots for people: the watchlist file, Markdown, and the nightly publish.

The SQL that finds them is ``warehouse/changes.py``; the ``Watchlist`` itself is ``schemas/watchlist.py``.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from awardwatch.schemas.agencies import agency_ref
from awardwatch.schemas.errors import InputError
from awardwatch.schemas.watchlist import Watchlist
from awardwatch.warehouse.changes import CHANGE_KINDS, Changes, previous_snapshot, snapshot_changes
from awardwatch.warehouse.reports import ReportError

DEFAULT_WATCHLIST = Path("watchlist.yaml")
DESCRIPTION_CHARS = 200  # descriptions in Markdown cells


def load_watchlist(path: Path) -> Watchlist:
    """A YAML file (``companies:`` and ``agencies:`` lists) or a CSV (columns ``kind``, ``name``;
    kind company or agency). Agencies are checked like ``--agency``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read watchlist {path}: {exc.strerror}") from None
    companies_, agencies_ = [], []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not {"kind", "name"} <= set(reader.fieldnames or []):
            raise InputError(f"{path}: a CSV watchlist needs the columns kind,name (kind: company or agency)")
        for r in reader:
            kind, value = (r.get("kind") or "").strip().lower(), (r.get("name") or "").strip()
            if not value:
                continue
            if kind == "company":
                companies_.append(value)
            elif kind == "agency":
                agencies_.append(value)
            else:
                raise InputError(f"{path}:{reader.line_num}: kind must be company or agency, not {kind!r}")
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise InputError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(data, dict) or not set(data) <= {"companies", "agencies"}:
            raise InputError(f"{path}: expected a mapping with the lists companies: and agencies:")
        for key, target in (("companies", companies_), ("agencies", agencies_)):
            values = data.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, (str, int)) for v in values):
                raise InputError(f"{path}: {key}: must be a list of names")
            target.extend(str(v).strip() for v in values if str(v).strip())
    return Watchlist(companies_, [agency_ref(a) for a in agencies_], str(path))


def _md_cell(value: object, limit: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = f"{value:,.2f}"
    else:
        text = str(value)
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def changes_markdown(changes: Changes, limit: int | None = None, whole: str | None = None) -> str:
    """The changes as Markdown: a summary table, then one table per kind of change (at most ``limit`` rows
    in each, then a line saying how many more, and where the whole list is: ``whole``)."""
    lines = [
        f"# awardwatch changes: `{changes.old_snapshot}` → `{changes.new_snapshot}`",
        "",
        f"Watching: {_md_cell(changes.watchlist.describe())}",
        "",
        "| change | rows | obligation |",
        "|---|---:|---:|",
    ]
    for kind in CHANGE_KINDS:
        rows = changes.of(kind)
        lines.append(f"| {kind} | {len(rows):,} | {_md_cell(sum((r[8] or Decimal(0) for r in rows), Decimal(0)))} |")
    headings = {"new award": "New awards", "new modification": "New modifications", "deobligation": "Deobligations",
                "correction": "Corrections (same action, new content)", "deletion": "Deletions (gone from the new snapshot)"}
    for kind in CHANGE_KINDS:
        rows = changes.of(kind)
        if not rows:
            continue
        lines += ["", f"## {headings[kind]} ({len(rows):,})", "",
                  "| action date | agency | award | PIID | mod | recipient | parent company | obligation | current value | description |",
                  "|---|---|---|---|---|---|---|---:|---:|---|"]
        for r in rows[:limit]:
            lines.append("| " + " | ".join([
                _md_cell(r[1]), _md_cell(r[2]), _md_cell(r[3]), _md_cell(r[4]), _md_cell(r[5]), _md_cell(r[6]),
                _md_cell(r[7]), _md_cell(r[8]), _md_cell(r[9]), _md_cell(r[10], DESCRIPTION_CHARS)]) + " |")
        if limit is not None and len(rows) > limit:
            lines += ["", f"… and {len(rows) - limit:,} more {headings[kind].lower().split(' (')[0]}"
                      + (f": the whole list is `{whole}`" if whole else "") + "."]
    if not changes.rows:
        lines += ["", "No changes touching the watchlist."]
    return "\n".join(lines) + "\n"


def write_changes_markdown(store, changes: Changes, text: str | None = None) -> str:
    """Writes the Markdown beside the new snapshot (``snapshots/<id>/changes.md``); returns its key."""
    from awardwatch.warehouse.snapshots import PREFIX

    key = f"{PREFIX}/{changes.new_snapshot}/changes.md"
    store.put_bytes(key, (text if text is not None else changes_markdown(changes)).encode("utf-8"))
    return key


def publish_changes(store, snapshot_id: str, watchlist: Watchlist | Path | None = None) -> tuple[Changes, str] | None:
    """After a publish: the changes since the previous snapshot, as Markdown written beside the new
    snapshot (``snapshots/<id>/changes.md``). Returns (changes, its key), or None for a first snapshot."""
    if isinstance(watchlist, Path):
        watchlist = load_watchlist(watchlist) if watchlist.exists() else Watchlist()
    try:
        old = previous_snapshot(store, snapshot_id)
    except ReportError:
        return None
    changes = snapshot_changes(store, old, snapshot_id, watchlist)
    return changes, write_changes_markdown(store, changes)
