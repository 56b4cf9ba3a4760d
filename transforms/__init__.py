"""Pure polars steps, LazyFrame in, LazyFrame out (``transactions``), and the batch split into valid rows
and quarantine rows (``batch``). No I/O, no clock, no environment.

May import ``schemas``; nothing else of this project.
"""
