"""Rendering results for people and for other programs: tables, CSV, JSON.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @,
tab or carriage return) are prefixed with a single quote; numbers are left alone.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal

from rich.console import Console
from rich.table import Table

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def plain(value: object) -> object:
    """A value as JSON and CSV write it: decimals as exact strings, dates in ISO form."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def dumps(value: object) -> str:
    """Plain data (dicts, lists, decimals, dates) as indented JSON."""
    return json.dumps(value, default=plain, indent=2)


def to_csv(columns: list[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([safe_cell(c) for c in columns])
    writer.writerows([safe_cell(v) if isinstance(v, str) else plain(v) for v in row] for row in rows)
    return buf.getvalue()


def to_json(columns: list[str], rows: list[tuple]) -> str:
    return json.dumps([{c: plain(v) for c, v in zip(columns, row)} for row in rows], indent=2, default=str)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def to_table(columns: list[str], rows: list[tuple], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    numeric = [bool(rows) and all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows) for i in range(len(columns))]
    for name, is_number in zip(columns, numeric):
        table.add_column(name, justify="right" if is_number else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def render(columns: list[str], rows: list[tuple], fmt: str, console: Console, title: str | None = None) -> None:
    if fmt == "csv":
        console.file.write(to_csv(columns, rows))
    elif fmt == "json":
        console.file.write(to_json(columns, rows) + "\n")
    else:
        console.print(to_table(columns, rows, title))


