"""Named points of a run where tests stop the process, to prove crash safety.

With ``AWARDWATCH_KILL_AT=<point>`` the process kills itself with SIGKILL when it
reaches that point; with ``AWARDWATCH_PAUSE_AT=<point>`` it says so on stderr and
sleeps (``AWARDWATCH_PAUSE_SECONDS``, default 30) so another process can contend.
The variables are read at each point (``flows.settings.failpoint``), since a test sets them for a child process.

Points: landed, staged, before-commit, between-files (ingest); exported, uploaded,
before-pointer (publish).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from awardwatch.flows import settings

POINTS = ("landed", "staged", "before-commit", "between-files", "exported", "uploaded", "before-pointer")


def hit(point: str) -> None:
    now = settings.failpoint()
    if now.kill_at == point:
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if now.pause_at == point:
        print(f"paused at {point}", file=sys.stderr, flush=True)
        time.sleep(now.pause_seconds)
