"""The `awardwatch` command: typer commands, their rendering (rich) and the HTML reports (jinja2).

May import everything below it (flows.core, flows.sources, schemas, transforms, warehouse) and
the Prefect flows (lazily, for `run` and `backfill`); holds no SQL."""

from awardwatch.flows.cli.commands import app, main

__all__ = ["app", "main"]
