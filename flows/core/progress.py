"""What long work reports while it runs: callbacks for a progress display, and seconds per stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Progress:
    """Callbacks for a progress display; all optional."""

    on_stage: Callable[[str], None] = lambda text: None  # "landing usaspending 2019-03-01..2019-03-31", "resolving companies"
    on_file: Callable[[str, int], None] = lambda name, size: None
    on_rows: Callable[[int, int], None] = lambda rows, nbytes: None  # rows read, their approximate bytes
    on_loaded: Callable[[object], None] = lambda file: None  # a flows.core.ingest.FileResult, once its file committed
    on_note: Callable[[str], None] = lambda text: None  # a warning a person should read (quarantined rows, skipped inputs)


class Stages(dict):
    """Seconds spent per stage (read, validate, transform, stage, load), summed over files."""

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started
