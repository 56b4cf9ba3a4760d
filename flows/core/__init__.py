"""The use cases, plain Python, callable without Prefect: ingest files, run feeds (nightly and backfill),
publish a snapshot, reconcile and check status, report changes, the demo.

A job holds one warehouse connection (``connect``) from its first read to its last write. Modules here
may import ``flows.settings``, ``flows.sources``, ``schemas``, ``transforms`` and ``warehouse``; never
``flows.cli`` or Prefect.
"""

from __future__ import annotations


def connect(s):
    """The job's one warehouse connection (``flows.settings.Settings``: file, threads, lock wait)."""
    from awardwatch.warehouse import db

    return db.connect(s.warehouse, threads=s.threads, wait=s.lock_wait)
