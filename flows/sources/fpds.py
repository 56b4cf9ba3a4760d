"""FPDS ATOM feed: contract actions within a day of being reported, and deletions.

For a ``LAST_MOD_DATE`` window and a contracting agency, the PUBLIC feed is read
page by page (10 entries a page, ``start=``; the total comes from the ``last``
link), pages fetched with bounded concurrency and landed on disk; the DELETED feed
of the same window likewise. Each feed is asked only for the records awardwatch
loads, in the queries the broker forms (data-act-broker-backend
``dataactcore/scripts/pipeline/pull_fpds_data.py``): PUBLIC once per
``CONTRACT_TYPE`` and ``AWARD_TYPE`` (5 IDV types, 4 award types), DELETED once per
``CONTRACT_TYPE``; other transactions are never asked for. A query whose result
would pass the feed's cap is split in halves. The landed pages become one CSV in
the canonical layout (the same columns as USAspending files, keys formed the same
way, so an action that arrives from FPDS and later from USAspending is one row),
with per-row lineage (page URL, entry position), deletions flagged ``D`` as in
archive delta files, and entries that could not be mapped flagged as problems;
the file source loads it.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from awardwatch.flows.sources.fpds_xml import (AWARD_TYPES, FeedPage, announced_total, build_query, page_url, parse_deleted_page,
                                    parse_page)
from awardwatch.flows.sources.base import BACKFILL, NIGHTLY, Feed, Landed, Scope, Window
from awardwatch.flows.sources.http import Http, shown
from awardwatch.schemas.agencies import AGENCIES, Agency
from awardwatch.schemas.errors import InputError
from awardwatch.schemas.layouts import current_columns

PAGE_SIZE = 10
MAX_RESULTS = 400_000  # FPDS returns no entry past this start
MAX_PAGE_BYTES = 20 << 20
# FPDS department ids (contractingOfficeAgencyID@departmentID) of the toptier agencies awardwatch names
DEPARTMENTS = {"070": "7000", "015": "1500", "097": "9700", "047": "4700"}
TOPTIER_OF_SUBTIER = {a.code: next(t.code for t in AGENCIES.values() if t.name == a.toptier_name)
                      for a in AGENCIES.values() if a.tier == "subtier"}
TOPTIER_OF_DEPARTMENT = {v: k for k, v in DEPARTMENTS.items()}
EXTRA = ("correction_delete_ind", "agency_id", "lineage_file", "lineage_row", "source_problem", "source_raw")


class CountMismatch(InputError):
    """The entries read for a window differ from the total the feed announced."""


@dataclass
class Page:
    url: str
    path: Path
    feed: str  # PUBLIC | DELETED


def agency_term(agency: Agency) -> str:
    """The query term of an agency: its contracting subtier, or its whole department."""
    if agency.tier == "subtier":
        return f"CONTRACTING_AGENCY_ID:{agency.code}"
    if agency.code not in DEPARTMENTS:
        raise InputError(f"no FPDS department id known for {agency.abbreviation}; use its subtier agencies")
    return f"DEPARTMENT_ID:{DEPARTMENTS[agency.code]}"


def type_queries(feed: str) -> list[tuple[str, str | None]]:
    """(contract type, award type) of each query of a feed, in the broker's order (pull_fpds_data.py main():
    IDV before award; get_data names both, get_delete_data only the contract type)."""
    if feed == "DELETED":
        return [(kind, None) for kind in ("IDV", "AWARD")]
    return [(kind, award_type) for kind in ("IDV", "AWARD") for award_type in AWARD_TYPES[kind]]


@dataclass
class FpdsFeed:
    http: Http
    base_url: str
    concurrency: int = 4
    cap: int = MAX_RESULTS

    def _get(self, url: str, into: Path, name: str) -> Path:
        return self.http.download(url, into / name, max_bytes=MAX_PAGE_BYTES, deadline=600)

    def window(self, term: str, start: date, end: date, into: Path, feed: str = "PUBLIC") -> tuple[list[Page], int]:
        """Lands every page of every type query of one feed window (see ``type_queries``); returns the
        pages and the total the feed announced."""
        pages: list[Page] = []
        announced = 0
        for kind, award_type in type_queries(feed):
            got, total = self.query(term, kind, award_type, start, end, into, feed)
            pages += got
            announced += total
        return pages, announced

    def query(self, term: str, kind: str, award_type: str | None, start: date, end: date, into: Path,
              feed: str = "PUBLIC") -> tuple[list[Page], int]:
        """Lands every page of one query window (split while over the cap); returns the pages
        and the total the feed announced."""
        query = build_query(last_mod_from=start, last_mod_to=end, extra=term, contract_type=kind, award_type=award_type)
        first_url = page_url(self.base_url, query, 0, feed=feed)
        slug = "_".join(filter(None, (kind, award_type))).lower().replace(" ", "-")
        stem = f"{feed.lower()}_{slug}_{start:%Y%m%d}_{end:%Y%m%d}"
        first = Page(first_url, self._get(first_url, into, f"{stem}_{0:07d}.xml"), feed)
        head = self.parse(first)
        last_start = head.last_start or 0
        if last_start >= self.cap:
            if start == end:
                raise InputError(f"FPDS {feed} query {query!r} returns more than {self.cap:,} entries for one day; narrow it")
            middle = start + timedelta(days=(end - start).days // 2)
            a, total_a = self.query(term, kind, award_type, start, middle, into, feed)
            b, total_b = self.query(term, kind, award_type, middle + timedelta(days=1), end, into, feed)
            return a + b, total_a + total_b
        starts = range(PAGE_SIZE, last_start + 1, PAGE_SIZE)
        urls = [page_url(self.base_url, query, n, feed=feed) for n in starts]
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            paths = list(pool.map(lambda pair: self._get(pair[1], into, f"{stem}_{pair[0]:07d}.xml"), zip(starts, urls)))
        pages = [first, *(Page(u, p, feed) for u, p in zip(urls, paths))]
        last = self.parse(pages[-1]) if len(pages) > 1 else head
        if starts:  # the feed is live: entries added or removed while paging move the last page
            again = self.parse(Page(first_url, self._get(first_url, into, f"{stem}_check.xml"), feed))
            (into / f"{stem}_check.xml").unlink(missing_ok=True)
            if again.last_start != head.last_start:
                raise CountMismatch(f"FPDS {feed} window {start}..{end}: the feed's last page moved from start="
                                    f"{head.last_start} to {again.last_start} while paging; run again")
        return pages, announced_total(head, last)

    @staticmethod
    def parse(page: Page) -> FeedPage:
        reader = parse_deleted_page if page.feed == "DELETED" else parse_page
        return reader(page.path.read_bytes(), url=page.url, max_bytes=MAX_PAGE_BYTES)


def to_csv(pages: list[Page], announced: int, out: Path, *, window: str) -> Path:
    """Writes the landed pages of one window as a canonical-layout CSV for the file source.

    Checks first that the entries read equal the total the feed announced (the feed is
    live: a count that moved while paging fails the window, to be read again)."""
    parsed = [(page, FpdsFeed.parse(page)) for page in pages]
    count = sum(len(p.entries) + len(p.problems) for _, p in parsed)
    if count != announced:
        raise CountMismatch(f"FPDS window {window}: read {count:,} entries but the feed announced {announced:,}; "
                            "it changed while paging, run again")
    columns = [*current_columns(), *EXTRA]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for page, feed_page in parsed:
            for entry in feed_page.entries:
                writer.writerow(_row(entry, page))
            for position, reason, raw in feed_page.problems:
                writer.writerow({"lineage_file": shown(page.url), "lineage_row": position, "source_problem": f"FPDS entry: {reason}",
                                 "source_raw": raw})
    return out


def _row(entry: dict, page: Page) -> dict:
    row = dict(entry)
    subtier = row.get("awarding_sub_agency_code")
    row["awarding_agency_code"] = row.get("awarding_agency_code") or TOPTIER_OF_SUBTIER.get(subtier) or \
        TOPTIER_OF_DEPARTMENT.get(row.get("fpds_department_id") or "")
    row["agency_id"] = row.get("fpds_agency_id")
    row["correction_delete_ind"] = "D" if page.feed == "DELETED" else ""
    row["lineage_file"] = shown(page.url)
    row["lineage_row"] = row.get("fpds_entry")
    return row


def write_index(pages: list[Page], into: Path) -> None:
    """Which landed file came from which URL (to replay a load without downloading again)."""
    (into / "pages.json").write_text(json.dumps([{"url": p.url, "file": p.path.name, "feed": p.feed} for p in pages], indent=1))


class AtomFeed(Feed):
    """The feed: the PUBLIC and DELETED pages of a LAST_MOD_DATE window for each agency (a month per backfill
    chunk; from the watermark less the look-back at night), each query's count checked against the total the
    feed announces, written as one canonical CSV."""

    name = "fpds"

    def scopes(self, chosen: list[Agency]) -> list[Scope]:
        return [Scope("contracting:" + ",".join(sorted(a.abbreviation for a in chosen)), tuple(chosen))]

    def nightly_windows(self, scope: Scope, watermark: datetime | None, today: date) -> list[Window]:
        from awardwatch.flows.sources.usaspending import nightly_windows

        return nightly_windows(watermark, today, self.settings.lookback_days)

    def land(self, scope: Scope, window: Window, into: Path, mode: str) -> Landed:
        into = into / f"{window.start:%Y%m%d}" if mode == BACKFILL else into
        s = self.settings
        http = Http.of(s, s.fpds_url)
        try:
            feed = FpdsFeed(http, s.fpds_url, concurrency=s.fpds_concurrency)
            pages: list[Page] = []
            announced = 0
            for agency in scope.agencies:
                for kind in ("PUBLIC", "DELETED"):
                    got, total = feed.window(agency_term(agency), window.start, window.end, into / agency.abbreviation, kind)
                    pages += got
                    announced += total
            for folder in {p.path.parent for p in pages}:
                write_index([p for p in pages if p.path.parent == folder], folder)
            path = to_csv(pages, announced, into / f"fpds_{window.start:%Y%m%d}_{window.end:%Y%m%d}.csv", window=str(window))
        finally:
            http.close()
        return Landed([path], window.end if mode == NIGHTLY else None, [path.name])
