"""What every feed is: the interface ``flows.core.feeds.run_feeds`` drives, for nightly runs and backfills alike.

A feed (USAspending bulk downloads, the Award Data Archive, the FPDS ATOM feed, the generated sample)
is one module holding one ``Feed`` subclass, registered by name in ``flows/sources/__init__.py``.
It knows:

- its **scopes**: what one watermark covers for the agencies asked for (``awarding:CBP,ICE``, one
  per department for the archive);
- its **windows**: the chunks of a backfill's date range, and the windows of a nightly run since the
  scope's watermark (a feed may say why it cannot run: the archive needs a Full file first);
- how to **land** one window: fetch it onto disk as files the file source reads, and say where the
  scope's watermark may move once they are loaded;
- what to **check** before a landed window is loaded (a download with 0 rows where the window
  before had some), on the job's warehouse connection.

Feeds never write the warehouse: the core loads what they land, moves their watermarks and records
their chunks. They may import ``flows.sources.*``, ``schemas`` and ``warehouse`` (read-only helpers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from awardwatch.schemas.agencies import Agency

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from awardwatch.flows.settings import Settings

NIGHTLY, BACKFILL = "nightly", "backfill"


@dataclass(frozen=True)
class Window:
    """Inclusive dates: action dates (a backfill of USAspending), last-modified dates, or fiscal years."""

    start: date
    end: date

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


@dataclass(frozen=True)
class Scope:
    """What one watermark and one backfill cover: a name (``awarding:CBP,ICE``) and its agencies."""

    name: str
    agencies: tuple[Agency, ...] = ()
    toptier: str | None = None  # the department's CGAC code, for feeds that are per department


@dataclass
class Landed:
    """What landing one window gave: files to load, their labels, and where the scope's watermark may
    move once they are loaded (None: it stays)."""

    paths: list[Path]
    watermark: date | None = None
    labels: list[str] = field(default_factory=list)
    rows: int | None = None  # data rows, once its files are staged (a backfill chunk's map stage sets it)


class Feed:
    """Base class of the feeds. ``settings`` is the job's; ``land`` runs in a Prefect task (with retries)
    under the flows, everything else in the flow itself."""

    name: ClassVar[str]
    chunk: ClassVar[str] = "month"  # what one backfill chunk is (part of the backfill's id)
    date_type: ClassVar[str] = "last_modified_date"  # what a nightly window's dates are

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def scopes(self, chosen: list[Agency]) -> list[Scope]:
        raise NotImplementedError

    def backfill_windows(self, start: date, end: date) -> list[Window]:
        """Calendar months covering start..end (the first and last may be partial)."""
        return [Window(a, b) for a, b in months(start, end)]

    def nightly_windows(self, scope: Scope, watermark: datetime | None, today: date) -> list[Window] | str:
        """From the watermark (or today) minus the look-back, to today; a string says why there are none."""
        start = (watermark.date() if watermark else today) - timedelta(days=self.settings.lookback_days)
        return [Window(start, today)]

    def land(self, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
        raise NotImplementedError

    def check(self, con: duckdb.DuckDBPyConnection, scope: Scope, window: Window, landed: Landed, mode: str) -> None:
        """Refuses a landed window before it is loaded (raise an AwardwatchError); by default accepts it."""


def months(start: date, end: date) -> list[tuple[date, date]]:
    """Calendar-month chunks covering start..end (the first and last may be partial)."""
    found = []
    while start <= end:
        next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
        stop = min(next_month - timedelta(days=1), end)
        found.append((start, stop))
        start = stop + timedelta(days=1)
    return found


def fiscal_year(day: date) -> int:
    """The federal fiscal year of a day (FY2019 is 2018-10-01..2019-09-30)."""
    return day.year + (day.month >= 10)
