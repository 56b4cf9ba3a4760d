"""Settings: the one place that reads environment variables, each declared once (pydantic-settings) and checked.

Each variable is one field below, with its default, type and range. ``load()`` reads them at the start of a
command: a value a setting cannot take (``AWARDWATCH_BATCH_ROWS=abc``, ``AWARDWATCH_THREADS=-1``,
``--max-rejected -1``) stops it before any work, with one line naming the variable (or flag) and what it
accepts. An empty variable means its default. ``failpoint()`` and ``debug()`` read theirs each time they are
called (child processes set them). tests/flows/test_settings.py checks this table against the declarations.

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
| AWARDWATCH_AGENCIES | DHS | comma-separated abbreviations, codes or full names | agencies the nightly run extracts |
| AWARDWATCH_SOURCES | usaspending | comma-separated usaspending, archive, fpds, sample | sources of the nightly run |
| AWARDWATCH_LOOKBACK_DAYS | 3 | whole number >= 0 | days before the watermark that each run reads again |
| AWARDWATCH_POLL_SECONDS | 10 | number >= 0 | seconds between download-status polls |
| AWARDWATCH_POLL_TIMEOUT | 14400 | number > 0 | seconds a download job may take |
| AWARDWATCH_HTTP_TIMEOUT | 60 | number > 0 | seconds per HTTP request |
| AWARDWATCH_HTTP_ATTEMPTS | 5 | whole number >= 1 | attempts per request (408, 429, 5xx, connection errors) |
| AWARDWATCH_HTTP_BACKOFF | 2 | number >= 0 | first retry wait in seconds, doubled each time, with jitter |
| AWARDWATCH_BACKFILL_CONCURRENCY | 2 | whole number >= 1 | chunks a backfill downloads at once |
| AWARDWATCH_TASK_RETRIES | 2 | whole number >= 0 | Prefect retries of a whole extraction (a failed download job), 60 s then 300 s apart; errors retrying cannot fix (HTTP 4xx, connection refused) are not retried |
| AWARDWATCH_FPDS_CONCURRENCY | 4 | whole number >= 1 | FPDS feed pages fetched at once |
| AWARDWATCH_LOCK_WAIT | 60 | number >= 0 | seconds to wait for another run that is writing the warehouse |
| AWARDWATCH_WATCHLIST | watchlist.yaml | a file path | companies and agencies whose overnight changes the nightly job reports |
| AWARDWATCH_STALE_DAYS | 2 | number > 0 | days without a successful nightly run after which `awardwatch status` calls a source stale |
| AWARDWATCH_ALLOW_EMPTY | false | true or false | accept a download with 0 rows where the scope's previous window had rows (a quiet agency); by default that fails the window, since an agency name that stopped matching upstream also gives 0 rows |
| AWARDWATCH_SAMPLE_ROWS | 3000 | whole number >= 0 | rows per window of the generated `sample` feed (offline: the demo, the benchmark, trying a backfill) |
| AWARDWATCH_SAMPLE_SEED | 2018 | a whole number | seed of the `sample` feed; a window's rows are the same for the same seed |
| AWARDWATCH_STAGING_URL | staged/ beside the warehouse | a folder or s3://bucket/prefix | where a backfill stages its chunks (Parquet) ahead of the merge; with Dask workers on other machines, a folder they all reach (NFS, a cluster's scratch) or an S3 prefix (each worker uploads its chunks there, the writer downloads each before merging it and then deletes it; endpoint and credentials as for snapshots) |
| AWARDWATCH_DASK_ADDRESS | (unset) | a Dask scheduler address | a backfill runs its map stage (fetch, read, validate, transform) on that Dask cluster (`tcp://host:8786`) |
| AWARDWATCH_DASK_WORKERS | (unset) | whole number >= 1 | a backfill starts a local Dask cluster of this many worker processes for its map stage |
| AWARDWATCH_DEBUG | (unset) | any value | the CLI prints the traceback of an unexpected error instead of one line |
| AWARDWATCH_KILL_AT | (unset) | a point of flows.core.failpoints | tests only: the process kills itself at that point |
| AWARDWATCH_PAUSE_AT | (unset) | a point of flows.core.failpoints | tests only: the process pauses at that point |
| AWARDWATCH_PAUSE_SECONDS | 30 | number >= 0 | tests only: how long AWARDWATCH_PAUSE_AT pauses |
| AWARDWATCH_PROJECT_DIR | (unset) | a folder | where Prefect workers find this checkout (read by prefect.yaml's pull step, not here) |
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Self, Union, get_args, get_origin

from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from awardwatch.schemas.errors import AwardwatchError

from awardwatch.flows.sources import FEEDS  # the feed registry: names only, no feed is imported
FLAGS = {"keep_snapshots": "--keep", "max_rejected_share": "--max-rejected", "backfill_concurrency": "--concurrency"}
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry error lines offline
    # a first temporary server on a fresh PREFECT_HOME runs its migrations first: 20-45 s on 2 cores, over Prefect's 20 s
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


class SettingsError(AwardwatchError):
    """A variable or flag holding a value it cannot take."""


def _http_url(text: str) -> str:
    if not text.lower().startswith(("http://", "https://")) or not text.split("://", 1)[1].strip("/"):
        raise PydanticCustomError("accepts", "an http:// or https:// URL")
    return text


Url = Annotated[str, AfterValidator(_http_url)]


def _folder_or_s3(text: str) -> str:
    if "://" in text and not (text.startswith("s3://") and text[5:].split("/", 1)[0]):
        raise PydanticCustomError("accepts", "a folder or s3://bucket/prefix")
    return text


FolderOrS3 = Annotated[str, AfterValidator(_folder_or_s3)]


class _Variables(BaseSettings):
    """Fields read from environment variables (each field's alias) by ``read``; keyword arguments otherwise."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, validate_by_name=True, allow_inf_nan=False,
                                      enable_decoding=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_):
        return (init_settings,)  # only ``read`` looks at the environment, in the mapping it is given

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_default(cls, value):
        if isinstance(value, str) and not value.strip():
            raise PydanticUseDefault()
        return value.strip() if isinstance(value, str) else value

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        """The fields from ``env``; a value a field cannot take is a SettingsError naming its variable."""
        values = _Environment(cls, env)()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise _refused(exc, cls, values, str) from None


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self.env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self.env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(_Variables):
    """What a command runs with: one field per variable (its alias), with its default, type and range."""

    home: Path = Field(Path("data"), validation_alias="AWARDWATCH_HOME")
    warehouse: Path = Field(default_factory=lambda v: v["home"] / "awardwatch.duckdb",
                            validation_alias="AWARDWATCH_WAREHOUSE")
    snapshot_url: str | None = Field(None, validation_alias="AWARDWATCH_SNAPSHOT_URL")
    keep_snapshots: int = Field(30, ge=1, validation_alias="AWARDWATCH_KEEP_SNAPSHOTS")
    batch_rows: int = Field(25_000, ge=1, validation_alias="AWARDWATCH_BATCH_ROWS")
    max_rejected_share: float = Field(0.05, ge=0, le=1, validation_alias="AWARDWATCH_MAX_REJECTED")
    threads: int | None = Field(None, ge=1, validation_alias="AWARDWATCH_THREADS")
    usaspending_url: Url = Field("https://api.usaspending.gov", validation_alias="AWARDWATCH_USASPENDING_URL")
    fpds_url: Url = Field("https://www.fpds.gov/ezsearch/FEEDS/ATOM", validation_alias="AWARDWATCH_FPDS_URL")
    agencies: tuple[str, ...] = Field(("DHS",), validation_alias="AWARDWATCH_AGENCIES")
    sources: tuple[str, ...] = Field(("usaspending",), validation_alias="AWARDWATCH_SOURCES")
    lookback_days: int = Field(3, ge=0, validation_alias="AWARDWATCH_LOOKBACK_DAYS")
    poll_every: float = Field(10.0, ge=0, validation_alias="AWARDWATCH_POLL_SECONDS")
    poll_timeout: float = Field(14400.0, gt=0, validation_alias="AWARDWATCH_POLL_TIMEOUT")
    http_timeout: float = Field(60.0, gt=0, validation_alias="AWARDWATCH_HTTP_TIMEOUT")
    http_attempts: int = Field(5, ge=1, validation_alias="AWARDWATCH_HTTP_ATTEMPTS")
    http_backoff: float = Field(2.0, ge=0, validation_alias="AWARDWATCH_HTTP_BACKOFF")
    backfill_concurrency: int = Field(2, ge=1, validation_alias="AWARDWATCH_BACKFILL_CONCURRENCY")
    task_retries: int = Field(2, ge=0, validation_alias="AWARDWATCH_TASK_RETRIES")
    fpds_concurrency: int = Field(4, ge=1, validation_alias="AWARDWATCH_FPDS_CONCURRENCY")
    lock_wait: float = Field(60.0, ge=0, validation_alias="AWARDWATCH_LOCK_WAIT")
    watchlist: Path = Field(Path("watchlist.yaml"), validation_alias="AWARDWATCH_WATCHLIST")
    stale_days: float = Field(2.0, gt=0, validation_alias="AWARDWATCH_STALE_DAYS")
    allow_empty: bool = Field(False, validation_alias="AWARDWATCH_ALLOW_EMPTY")
    sample_rows: int = Field(3000, ge=0, validation_alias="AWARDWATCH_SAMPLE_ROWS")
    sample_seed: int = Field(2018, validation_alias="AWARDWATCH_SAMPLE_SEED")
    staging_url: FolderOrS3 | None = Field(None, validation_alias="AWARDWATCH_STAGING_URL")
    dask_address: str | None = Field(None, validation_alias="AWARDWATCH_DASK_ADDRESS")
    dask_workers: int | None = Field(None, ge=1, validation_alias="AWARDWATCH_DASK_WORKERS")

    @field_validator("agencies", "sources", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
            if not value:
                raise PydanticUseDefault()
        return value

    @field_validator("sources")
    @classmethod
    def _registered(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(v not in FEEDS for v in value):  # the registry as it is now (a test may add a feed)
            raise PydanticCustomError("accepts", "a comma-separated list of " + ", ".join(FEEDS))
        return value

    @property
    def snapshots(self) -> str:
        """Where snapshots are published: a folder or an s3:// URL."""
        return self.snapshot_url or str(self.warehouse.parent / "snapshots")

    @property
    def staging(self) -> Path:
        return self.warehouse.parent / "staging"

    @property
    def chunk_staging(self) -> str:
        """Where backfill chunks are staged ahead of their merge: a folder every Dask worker can reach, or an s3:// URL."""
        return self.staging_url or str(self.warehouse.parent / "staged")

    def but(self, **changes) -> Settings:
        """A copy with the given fields changed; None values are ignored (unset CLI flags).
        Values are checked as their variables are, and an error names the flag."""
        values = dict(self) | {k: v for k, v in changes.items() if v is not None}
        try:
            return type(self)(**values)
        except ValidationError as exc:
            raise _refused(exc, type(self), values, _flag) from None


def _flag(name: str) -> str:
    """The CLI flag setting a field: ``--batch-rows`` for batch_rows."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


class Failpoint(_Variables):
    """Where tests stop this process (flows.core.failpoints)."""

    kill_at: str | None = Field(None, validation_alias="AWARDWATCH_KILL_AT")
    pause_at: str | None = Field(None, validation_alias="AWARDWATCH_PAUSE_AT")
    pause_seconds: float = Field(30.0, ge=0, validation_alias="AWARDWATCH_PAUSE_SECONDS")


class Debug(_Variables):
    """The CLI's traceback switch."""

    debug: str | None = Field(None, validation_alias="AWARDWATCH_DEBUG")  # any value; a string cannot fail


def load(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (os.environ by default)."""
    return Settings.read(os.environ if env is None else env)


def failpoint() -> Failpoint:
    """The failpoint variables as they are now (a parent process sets them for its child)."""
    return Failpoint.read(os.environ)


def debug() -> bool:
    """Whether AWARDWATCH_DEBUG asks the CLI for tracebacks."""
    return Debug.read(os.environ).debug is not None


def prefect_defaults() -> None:
    """Prefect settings this project needs unless the environment says otherwise."""
    for variable, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(variable, value)


def accepts(field: FieldInfo) -> str | None:
    """What a field accepts, in words, from its declaration (None: the error says it)."""
    kind = field.annotation
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    bound = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le") if hasattr(m, k)}
    if kind is bool:
        return "true or false"
    if field.validation_alias == "AWARDWATCH_SOURCES":
        return "a comma-separated list of " + ", ".join(FEEDS)
    if kind not in (int, float):
        return None
    if (bound.get("ge"), bound.get("le")) == (0, 1):
        return "a share from 0 to 1 (0.05 is 5%)"
    noun = "a whole number" if kind is int else "a number"
    if "ge" in bound:
        return f"{noun} of at least {bound['ge']:g}"
    return f"{noun} above {bound['gt']:g}" if "gt" in bound else noun


def _refused(exc: ValidationError, model: type[_Variables], values: Mapping[str, Any], label: Callable[[str], str]):
    """A one-line SettingsError for the first error: ``<label>=<value> is not allowed: expected <what>``."""
    error = exc.errors(include_url=False)[0]
    key = str(error["loc"][0])
    names = {f.validation_alias: n for n, f in model.model_fields.items()}
    field = model.model_fields.get(names.get(key, key))
    expected = error["msg"] if error["type"] == "accepts" else field and accepts(field)
    reason = f"expected {expected}" if expected else error["msg"]
    return SettingsError(f"{label(key)}={_text(values.get(key, error['input']))} is not allowed: {reason}")


def _text(value) -> str:
    """A value as an error shows it: integral floats without ``.0``, URLs without user and password."""
    from awardwatch.flows.sources.http import shown

    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        return shown(text) if "://" in text else text
    except ValueError:  # not a URL urllib can split
        return text
