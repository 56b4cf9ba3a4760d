"""What the `awardwatch` commands share: consoles, output formats, options."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


Warehouse = Annotated[
    Optional[Path],
    typer.Option("--warehouse", "-w", help="DuckDB file. \\[env AWARDWATCH_WAREHOUSE, default $AWARDWATCH_HOME/awardwatch.duckdb]", show_default=False),
]
BatchRows = Annotated[Optional[int], typer.Option(help="Rows per validation batch. \\[env AWARDWATCH_BATCH_ROWS, default 25000]", show_default=False)]
MaxRejected = Annotated[
    Optional[float],
    typer.Option(help="Share of a file's rows (0-1) that may be quarantined before the run fails. \\[env AWARDWATCH_MAX_REJECTED, default 0.05]", show_default=False),
]
OutputFormat = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
SnapshotUrl = Annotated[
    Optional[str],
    typer.Option("--snapshot-url", help="Folder or s3://bucket/prefix of the snapshots. \\[env AWARDWATCH_SNAPSHOT_URL, default snapshots/ beside the warehouse]", show_default=False),
]
Publish = Annotated[bool, typer.Option("--publish/--no-publish", help="Publish a Parquet snapshot after a successful run.")]
