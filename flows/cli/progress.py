"""Progress on the terminal (stderr): a bar per file with bytes and rows, hidden when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from awardwatch.flows.cli.options import err
from awardwatch.flows.core.progress import Progress


@contextmanager
def ingest_progress() -> Iterator[Progress]:
    """A progress bar per file (bytes read, approximate) and the stage names of long work, on stderr."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    bars = Bars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]:>12,} rows"),
                TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
    state: dict = {}

    def on_file(name: str, size: int) -> None:
        if "task" in state:
            bars.update(state["task"], completed=bars.tasks[state["task"]].total)
        label = name if len(name) < 48 else "…" + name[-47:]
        state["task"] = bars.add_task(label, total=size, rows=0)

    def on_rows(rows: int, nbytes: int) -> None:
        task = bars.tasks[state["task"]]
        bars.update(state["task"], completed=min(task.completed + nbytes, task.total), rows=task.fields["rows"] + rows)

    def on_stage(text: str) -> None:
        bars.console.print(f"[dim]{text}[/dim]", highlight=False)

    with bars:
        yield Progress(on_stage=on_stage, on_file=on_file, on_rows=on_rows)
