"""Settings: the one place that reads environment variables, each checked at load.

A value a setting cannot take (``AWARDWATCH_BATCH_ROWS=abc``, ``AWARDWATCH_THREADS=-1``,
``--max-rejected -1``) stops the command before any work, with one line naming the
variable (or flag) and what it accepts. An empty variable means its default.

| variable | default | accepts | meaning |
|---|---|---|---|
| AWARDWATCH_HOME | ./data | a folder | folder for the warehouse, snapshots and staging |
| AWARDWATCH_WAREHOUSE | $AWARDWATCH_HOME/awardwatch.duckdb | a file path | the DuckDB file |
| AWARDWATCH_SNAPSHOT_URL | snapshots/ beside the warehouse | a folder or s3://bucket/prefix | where Parquet snapshots are published |
| AWARDWATCH_KEEP_SNAPSHOTS | 30 | whole number >= 1 | snapshots kept after each publish (the current one always is) |
| AWARDWATCH_BATCH_ROWS | 25000 | whole number >= 1 | rows per batch (memory grows with it, not with the file) |
| AWARDWATCH_MAX_REJECTED | 0.05 | share 0..1 | share of a file's rows that may be quarantined before the run fails |
| AWARDWATCH_THREADS | (all cores) | whole number >= 1 | DuckDB and polars threads |
| AWARDWATCH_USASPENDING_URL | https://api.usaspending.gov | http(s) URL | USAspending API base URL |
| AWARDWATCH_FPDS_URL | https://www.fpds.gov/ezsearch/FEEDS/ATOM | http(s) URL | FPDS ATOM feed URL |
| AWARDWATCH_AGENCIES | DHS | comma-separated abbreviations or codes | agencies the nightly run extracts |
| AWARDWATCH_SOURCES | usaspending | comma-separated usaspending, archive, fpds | sources of the nightly run |
| AWARDWATCH_LOOKBACK_DAYS | 3 | whole number >= 0 | days before the watermark that each run reads again |
| AWARDWATCH_POLL_SECONDS | 10 | number >= 0 | seconds between download-status polls |
| AWARDWATCH_POLL_TIMEOUT | 14400 | number > 0 | seconds a download job may take |
| AWARDWATCH_HTTP_TIMEOUT | 60 | number > 0 | seconds per HTTP request |
| AWARDWATCH_HTTP_ATTEMPTS | 5 | whole number >= 1 | attempts per request (408, 429, 5xx, connection errors) |
| AWARDWATCH_HTTP_BACKOFF | 2 | number >= 0 | first retry wait in seconds, doubled each time, with jitter |
| AWARDWATCH_BACKFILL_CONCURRENCY | 2 | whole number >= 1 | chunks a backfill downloads at once |
| AWARDWATCH_FPDS_CONCURRENCY | 4 | whole number >= 1 | FPDS feed pages fetched at once |
| AWARDWATCH_LOCK_WAIT | 60 | number >= 0 | seconds to wait for another run that is writing the warehouse |
| AWARDWATCH_WATCHLIST | watchlist.yaml | a file path | companies and agencies whose overnight changes the nightly job reports |
| AWARDWATCH_STALE_DAYS | 2 | number > 0 | days without a successful nightly run after which `awardwatch status` calls a source stale |
| AWARDWATCH_ALLOW_EMPTY | false | true or false | accept a download with 0 rows where the scope's previous window had rows (a quiet agency); by default that fails the window, since an agency name that stopped matching upstream also gives 0 rows |
| AWARDWATCH_TASK_RETRIES | 2 | whole number >= 0 | Prefect retries of a whole extraction (a failed download job), 60 s then 300 s apart; errors retrying cannot fix (HTTP 4xx, connection refused) are not retried |
| AWARDWATCH_DEBUG | (unset) | any value | the CLI prints the traceback of an unexpected error instead of one line |
| AWARDWATCH_PROJECT_DIR | (unset) | a folder | where Prefect workers find this checkout (prefect.yaml's pull step) |
| AWARDWATCH_KILL_AT, AWARDWATCH_PAUSE_AT, AWARDWATCH_PAUSE_SECONDS | (unset), (unset), 30 | a point of flows.failpoints, seconds | tests only: kill or pause the process at a named point |
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from schemas.errors import AwardwatchError

SOURCES = ("usaspending", "archive", "fpds")


class SettingsError(AwardwatchError):
    """A variable or flag holding a value it cannot take."""


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    snapshot_url: str | None = None
    keep_snapshots: int = 30
    batch_rows: int = 25_000
    max_rejected_share: float = 0.05
    threads: int | None = None
    usaspending_url: str = "https://api.usaspending.gov"
    fpds_url: str = "https://www.fpds.gov/ezsearch/FEEDS/ATOM"
    agencies: tuple[str, ...] = ("DHS",)
    sources: tuple[str, ...] = ("usaspending",)
    lookback_days: int = 3
    poll_every: float = 10.0
    poll_timeout: float = 14400.0
    http_timeout: float = 60.0
    http_attempts: int = 5
    http_backoff: float = 2.0
    backfill_concurrency: int = 2
    task_retries: int = 2
    fpds_concurrency: int = 4
    lock_wait: float = 60.0
    watchlist: Path = Path("watchlist.yaml")
    stale_days: float = 2.0
    allow_empty: bool = False

    @property
    def snapshots(self) -> str:
        """Where snapshots are published: a folder or an s3:// URL."""
        return self.snapshot_url or str(self.warehouse.parent / "snapshots")

    @property
    def staging(self) -> Path:
        return self.warehouse.parent / "staging"

    def but(self, **changes) -> "Settings":
        """A copy with the given fields changed; None values are ignored (unset CLI flags).
        Numbers are checked as their variables are, and an error names the flag."""
        given = {k: v for k, v in changes.items() if v is not None}
        for name, value in given.items():
            if name in RULES:
                check(name, value, FLAGS.get(name, "--" + name.replace("_", "-")))
        return replace(self, **given)


# field -> (variable, type, lowest, lowest allowed itself, highest); "share" is a float from 0 to 1
RULES: dict[str, tuple[str, type, float, bool, float | None]] = {
    "keep_snapshots": ("AWARDWATCH_KEEP_SNAPSHOTS", int, 1, True, None),
    "batch_rows": ("AWARDWATCH_BATCH_ROWS", int, 1, True, None),
    "max_rejected_share": ("AWARDWATCH_MAX_REJECTED", float, 0, True, 1),
    "threads": ("AWARDWATCH_THREADS", int, 1, True, None),
    "lookback_days": ("AWARDWATCH_LOOKBACK_DAYS", int, 0, True, None),
    "poll_every": ("AWARDWATCH_POLL_SECONDS", float, 0, True, None),
    "poll_timeout": ("AWARDWATCH_POLL_TIMEOUT", float, 0, False, None),
    "http_timeout": ("AWARDWATCH_HTTP_TIMEOUT", float, 0, False, None),
    "http_attempts": ("AWARDWATCH_HTTP_ATTEMPTS", int, 1, True, None),
    "http_backoff": ("AWARDWATCH_HTTP_BACKOFF", float, 0, True, None),
    "backfill_concurrency": ("AWARDWATCH_BACKFILL_CONCURRENCY", int, 1, True, None),
    "task_retries": ("AWARDWATCH_TASK_RETRIES", int, 0, True, None),
    "fpds_concurrency": ("AWARDWATCH_FPDS_CONCURRENCY", int, 1, True, None),
    "lock_wait": ("AWARDWATCH_LOCK_WAIT", float, 0, True, None),
    "stale_days": ("AWARDWATCH_STALE_DAYS", float, 0, False, None),
}
FLAGS = {"keep_snapshots": "--keep", "max_rejected_share": "--max-rejected", "backfill_concurrency": "--concurrency"}


def accepts(name: str) -> str:
    """What a numeric setting accepts, in words."""
    _, kind, low, inclusive, high = RULES[name]
    if name == "max_rejected_share":
        return "a share from 0 to 1 (0.05 lets 5% of a file's rows be quarantined)"
    noun = "a whole number" if kind is int else "a number"
    return f"{noun} of at least {low:g}" if inclusive else f"{noun} above {low:g}"


def check(name: str, value, label: str):
    """``value`` if the setting can take it, else a SettingsError naming ``label`` and what it accepts."""
    _, kind, low, inclusive, high = RULES[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (kind is float or float(value).is_integer())
    ok = ok and (value >= low if inclusive else value > low) and (high is None or value <= high)
    if not ok:
        raise SettingsError(f"{label}={value} is not allowed: expected {accepts(name)}")
    return kind(value)


def _number(env, name: str, default):
    variable, kind = RULES[name][:2]
    text = (env.get(variable) or "").strip()
    if not text:
        return default
    try:
        value = int(text) if kind is int else float(text)
    except ValueError:
        raise SettingsError(f"{variable}={text} is not allowed: expected {accepts(name)}") from None
    return check(name, value, variable)


def _url(env, variable: str, default: str) -> str:
    text = (env.get(variable) or "").strip()
    if not text:
        return default
    if not text.lower().startswith(("http://", "https://")) or len(text.split("://", 1)[1].strip("/")) == 0:
        raise SettingsError(f"{variable}: {_shown(text)!r} is not allowed: expected an http:// or https:// URL")
    return text


def _shown(url: str) -> str:
    from flows.sources.http import shown

    return shown(url)


def load(env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    home = Path(env.get("AWARDWATCH_HOME") or "data")
    sources = _list(env.get("AWARDWATCH_SOURCES")) or Settings.sources
    if unknown := [x for x in sources if x not in SOURCES]:
        raise SettingsError(f"AWARDWATCH_SOURCES: unknown source(s) {', '.join(unknown)}; expected a comma-separated list of {', '.join(SOURCES)}")
    return Settings(
        home=home,
        warehouse=Path(env.get("AWARDWATCH_WAREHOUSE") or home / "awardwatch.duckdb"),
        snapshot_url=env.get("AWARDWATCH_SNAPSHOT_URL") or None,
        keep_snapshots=_number(env, "keep_snapshots", 30),
        batch_rows=_number(env, "batch_rows", 25_000),
        max_rejected_share=_number(env, "max_rejected_share", 0.05),
        threads=_number(env, "threads", None),
        usaspending_url=_url(env, "AWARDWATCH_USASPENDING_URL", Settings.usaspending_url),
        fpds_url=_url(env, "AWARDWATCH_FPDS_URL", Settings.fpds_url),
        agencies=_list(env.get("AWARDWATCH_AGENCIES")) or Settings.agencies,
        sources=sources,
        lookback_days=_number(env, "lookback_days", 3),
        poll_every=_number(env, "poll_every", 10.0),
        poll_timeout=_number(env, "poll_timeout", 14400.0),
        http_timeout=_number(env, "http_timeout", 60.0),
        http_attempts=_number(env, "http_attempts", 5),
        http_backoff=_number(env, "http_backoff", 2.0),
        backfill_concurrency=_number(env, "backfill_concurrency", 2),
        task_retries=_number(env, "task_retries", 2),
        fpds_concurrency=_number(env, "fpds_concurrency", 4),
        lock_wait=_number(env, "lock_wait", 60.0),
        watchlist=Path(env.get("AWARDWATCH_WATCHLIST") or "watchlist.yaml"),
        stale_days=_number(env, "stale_days", 2.0),
        allow_empty=_flag(env, "AWARDWATCH_ALLOW_EMPTY"),
    )


def _flag(env, variable: str) -> bool:
    text = (env.get(variable) or "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{variable}={text} is not allowed: expected true or false")


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())
