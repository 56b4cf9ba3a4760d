"""Summaries of runs and jobs as Markdown, for Prefect artifacts and for people (plain text, no I/O)."""

from __future__ import annotations


def run_markdown(result) -> str:
    """A pipeline.RunResult as a Markdown summary (Prefect artifact, reports)."""
    c = result.counts
    lines = [
        f"# awardwatch run `{result.run_id}`: {result.status}",
        "",
        "| file | layout | read | inserted | updated | unchanged | duplicates | quarantined | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in result.files:
        k = f.counts
        lines.append(f"| {f.name} | {f.layout} | {k.read:,} | {k.inserted:,} | {k.updated:,} | {k.unchanged:,} | {k.duplicate:,} | {k.quarantined:,} | {f.seconds:.1f} |")
    lines.append(f"| **total** | | {c.read:,} | {c.inserted:,} | {c.updated:,} | {c.unchanged:,} | {c.duplicate:,} | {c.quarantined:,} | {result.seconds:.1f} |")
    lines += ["", f"Reconciliation (read = inserted + updated + unchanged + duplicates + quarantined): **{'yes' if c.reconciled else 'NO'}**"]
    skipped = getattr(result, "skipped", None) or []
    if skipped:
        lines += ["", f"Skipped {len(skipped)} input(s) not read:"] + [f"- {s.name} ({s.size:,} bytes): {s.why}" for s in skipped]
    return "\n".join(lines)


def job_markdown(job: str, done, snapshot, chunk_results=None, reconciliation: dict | None = None) -> str:
    """A nightly or backfill job as Markdown: per source windows and watermarks, runs, counts, snapshot."""
    lines = [f"# awardwatch {job}", ""]
    for d in done:
        lines.append(f"- **{d.source}** `{d.scope}`: windows {', '.join(d.windows) or 'none'}"
                     + (f"; watermark now {d.watermark}" if d.watermark else "")
                     + (f"; skipped finished chunks {', '.join(d.skipped)}" if d.skipped else ""))
    notes = [n for d in done for n in getattr(d, "notes", [])]
    if notes:
        lines += [""] + [f"> **Note:** {n}" for n in notes]
    results = [d.result for d in done if d.result] + list(chunk_results or [])
    for r in results:
        lines += ["", run_markdown(r)]
    if reconciliation is not None:
        lines += ["", "## Reconciliation against USAspending", "", reconciliation["summary"]]
        differing = [r for r in reconciliation.get("rows", []) if r["status"] != "match"]
        if differing:
            lines += ["", "| agency | FY | warehouse $ | USAspending $ | difference $ | warehouse n | USAspending n |", "|---|---|--:|--:|--:|--:|--:|"]
            lines += [f"| {r['agency_code']} {r['agency_name']} | {r['fiscal_year']} | {r['warehouse_obligations']} | {r['usaspending_obligations']} "
                      f"| {r['obligations_difference']} | {r['warehouse_transactions']} | {r['usaspending_transactions']} |" for r in differing]
    lines += ["", f"Snapshot: {snapshot.message if snapshot else 'none'}"]
    return "\n".join(lines)


def status_markdown(status: dict) -> str:
    """``awardwatch status`` as Markdown: one line per problem."""
    problems = status.get("problems", [])
    lines = ["# awardwatch status", "", "complete and current" if not problems else f"{len(problems)} problem(s):", ""]
    lines += [f"- **{p.get('kind', 'problem')}**: {p.get('message', p)}" for p in problems]
    return "\n".join(lines)


def counts_table(results) -> list[dict]:
    """One row per loaded file of the runs (``flows.core.ingest.RunResult``), for a table artifact."""
    return [{"run": r.run_id, "file": f.name.split("!")[-1], "layout": f.layout, "read": f.counts.read,
             "inserted": f.counts.inserted, "updated": f.counts.updated, "unchanged": f.counts.unchanged,
             "duplicates": f.counts.duplicate, "quarantined": f.counts.quarantined, "deleted": f.counts.deleted,
             "seconds": round(f.seconds, 1)}
            for r in results for f in r.files]


def file_line(f) -> str:
    """One loaded file in one line, for a log."""
    c = f.counts
    return (f"{f.name}: read {c.read:,} = inserted {c.inserted:,} + updated {c.updated:,} + unchanged {c.unchanged:,} "
            f"+ duplicates {c.duplicate:,} + quarantined {c.quarantined:,} + deleted {c.deleted:,} "
            f"({f.layout} layout, {f.seconds:.1f} s)")
