"""What a job is asked to do, checked before anything starts (Prefect included): known feeds and agencies,
a range that is not reversed. Light on purpose: the CLI calls it before importing the pipeline."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from awardwatch.flows.sources import FEEDS
from awardwatch.flows.sources.base import BACKFILL
from awardwatch.schemas import agencies as registry
from awardwatch.schemas.errors import InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from awardwatch.flows.settings import Settings


def check_feeds(names: list[str]) -> list[str]:
    if unknown := [n for n in names if n not in FEEDS]:
        raise UsageError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(FEEDS)}")
    return list(names)


def check_job(s: Settings, mode: str, names: list[str], agencies: list[str] | None, start: date | None, end: date | None):
    """The job's arguments, checked before anything starts (Prefect included): known feeds and agencies, a range
    that is not reversed. Returns the chosen agencies."""
    check_feeds(names)
    try:
        chosen = registry.resolve(list(agencies or s.agencies))
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if mode == BACKFILL and (start is None or end is None or end < start):
        raise UsageError(f"backfill: --end {end} is before --start {start}; nothing to load (swap them?)")
    return chosen
