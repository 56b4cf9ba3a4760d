"""What every layer agrees on, with no I/O beyond reading its own reference files: the download layouts
and their history (``layouts``), column names and constants (``names``), the agencies (``agencies``:
one registry), the watchlist's shape, the pandera schemas and the row rules (``transaction``,
``validate``), and the errors a user sees as one line (``errors``).

Imports nothing of this project but ``schemas`` itself.
"""
