"""The feeds: one module per feed, each holding one ``flows.sources.base.Feed``, registered here.

Adding a feed is one module (a ``Feed`` subclass: scopes, windows, land, check) and one line below;
the nightly and backfill jobs (``flows.core.feeds.run_feeds``), the CLI's ``--source`` and
``AWARDWATCH_SOURCES`` read this registry. Also here: ``http`` (the one HTTP client, with retries),
``files`` (the file source every feed lands into: CSV, ZIP, folders) and the readers of each feed's format.

Modules here may import ``schemas``, ``transforms`` and ``warehouse``'s read-only helpers, never
``flows.core``, ``flows.cli`` or Prefect.
"""

from __future__ import annotations

from importlib import import_module

# name -> "module:class", imported when used (so `awardwatch --help` does not load every feed)
FEEDS = {
    "usaspending": "awardwatch.flows.sources.usaspending:BulkDownloads",
    "archive": "awardwatch.flows.sources.archive:ArchiveFiles",
    "fpds": "awardwatch.flows.sources.fpds:AtomFeed",
    "sample": "awardwatch.flows.sources.sample:SampleFeed",
}


def feed_class(name: str):
    module, _, cls = FEEDS[name].partition(":")
    return getattr(import_module(module), cls)


def feed(name: str, settings):
    """The feed registered as ``name``, for a job's settings."""
    return feed_class(name)(settings)
