"""The jobs: Prefect flows that only wire (``nightly``, ``backfill``, ``ingest``, their shared ``tasks``), the
settings (``settings``: the one module that reads the environment), and the rooms beneath them:
``flows.core`` (the use cases, plain Python), ``flows.sources`` (one module per feed), ``flows.cli``
(the ``awardwatch`` command).

Imports go one way: ``flows.cli`` -> the flows -> ``flows.core`` -> ``flows.sources`` -> ``schemas``,
``transforms``, ``warehouse``. Only the flow modules here import Prefect.
"""
