"""The DuckDB warehouse and the snapshots, and every SQL statement of the project: opening it and its
migrations (``db``, with ``transaction``), merging a staged file (``load``), runs and their counts
(``runs``), feed watermarks and backfill chunks (``feeds``), parent companies and marts (``companies``),
invariants, reconciliations, reports and snapshot changes, the snapshot protocol (``snapshots``) over an
object store (``store``), and the query sandbox (``query``).

May import ``schemas``; never ``flows`` or ``transforms``.
"""
