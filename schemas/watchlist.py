"""A watchlist: the companies and agencies whose changes between snapshots are reported.

Read from a file by ``flows.core.changes.load_watchlist``; ``warehouse.changes`` turns it into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from awardwatch.schemas.agencies import AgencyRef


@dataclass
class Watchlist:
    """Companies (names, matched normalised, whole words) and awarding agencies; empty watches everything."""

    companies: list[str] = field(default_factory=list)
    agencies: list[AgencyRef] = field(default_factory=list)
    source: str | None = None

    @property
    def empty(self) -> bool:
        return not self.companies and not self.agencies

    def describe(self) -> str:
        if self.empty:
            return "everything (no watchlist)"
        parts = []
        if self.companies:
            parts.append("companies " + ", ".join(self.companies))
        if self.agencies:
            parts.append("agencies " + ", ".join(a.label for a in self.agencies))
        return "; ".join(parts)
