"""HTTP for the feeds: timeouts, retries with backoff and jitter, clear errors.

Retries on 408, 429, 5xx, connection errors and timeouts, honouring ``Retry-After``;
after the last attempt one ``HttpError`` names the method, URL, status and the
attempt count. Every request carries a User-Agent naming awardwatch.

Errors that retrying cannot fix are ``PermanentHttpError`` (a ``PermanentError``): any
other 4xx at once, and a connection refused on every attempt (nothing listens there).
``flows.tasks.worth_retrying`` (the Prefect ``retry_condition_fn``) stops task retries on them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from awardwatch.schemas.errors import AwardwatchError, PermanentError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# Set by the CLI on SIGTERM: requests stop between attempts and between chunks, so worker threads end promptly.
STOPPING = threading.Event()


class Stopped(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM) while a request was under way."""


def _check_stop() -> None:
    if STOPPING.is_set():
        raise Stopped("stopping: the process was asked to end")


def _sleep(seconds: float) -> None:
    if STOPPING.wait(seconds):
        _check_stop()


class _TooSlow(Exception):
    """An answer that kept coming past the deadline (retried like a timeout)."""


class HttpError(AwardwatchError):
    """A request that failed for good (after retries, or at once for a 4xx)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PermanentHttpError(HttpError, PermanentError):
    """A request retrying cannot fix: a 4xx other than 408/429, or every attempt refused."""


def _refused(exc: Exception) -> bool:
    """Was the connection refused (no server on that port), as opposed to lost or timed out?"""
    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower() or "errno 111" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def shown(url: str) -> str:
    """A URL as it may appear in messages: user and password removed."""
    parts = urlsplit(str(url))
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def user_agent() -> str:
    try:
        v = version("awardwatch")
    except PackageNotFoundError:
        v = "dev"
    return f"awardwatch/{v} (+https://github.com/awardwatch/awardwatch)"


@dataclass
class Http:
    """A small client: ``base_url`` joins relative paths; absolute URLs pass through."""

    base_url: str = ""
    timeout: float = 60.0
    attempts: int = 5
    backoff: float = 1.0  # first wait, doubled each retry, with jitter
    max_wait: float = 120.0
    deadline: float = 300.0  # seconds for a whole (non-download) response, however slowly it trickles
    max_response: int = 64 << 20
    sleep: Callable[[float], None] = _sleep
    client: httpx.Client = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout, headers={"User-Agent": user_agent()}, follow_redirects=True)

    @classmethod
    def of(cls, settings, base_url: str) -> "Http":
        """A client with the job's timeout, attempts and backoff (``flows.settings.Settings``)."""
        return cls(base_url=base_url, timeout=settings.http_timeout, attempts=settings.http_attempts, backoff=settings.http_backoff)

    def url(self, path: str) -> str:
        return path if "://" in path else self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (header := response.headers.get("Retry-After")):
            try:
                return min(float(header), self.max_wait)
            except ValueError:
                try:
                    return min(max(parsedate_to_datetime(header).timestamp() - time.time(), 0), self.max_wait)
                except (TypeError, ValueError):
                    pass
        return min(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()), self.max_wait)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        url = self.url(path)
        problem = ""
        status = None
        refused = 0
        for attempt in range(1, self.attempts + 1):
            _check_stop()
            response = None
            try:
                response = self._bounded(method, url, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
                refused += isinstance(exc, httpx.ConnectError) and _refused(exc)
            except _TooSlow as exc:
                problem = str(exc)
            else:
                if response.status_code < 400:
                    return response
                status = response.status_code
                problem = f"HTTP {status}{_detail(response)}"
                if status not in RETRY_STATUS:
                    raise PermanentHttpError(f"{method} {shown(url)} failed: {problem}", status)
            if attempt < self.attempts:
                self.sleep(self._wait(attempt, response))
        if refused == self.attempts:
            raise PermanentHttpError(f"{method} {shown(url)} failed: connection refused on all {self.attempts} attempts "
                                     "(nothing listens there); check the URL or that the server is up")
        raise HttpError(f"{method} {shown(url)} failed after {self.attempts} attempts ({problem}); retry later", status)

    def _bounded(self, method: str, url: str, **kwargs) -> httpx.Response:
        """One request whose whole answer must arrive within ``deadline`` and ``max_response`` bytes."""
        started = time.monotonic()
        with self.client.stream(method, url, **kwargs) as streamed:
            body = bytearray()
            for chunk in streamed.iter_bytes():
                _check_stop()
                body += chunk
                if len(body) > self.max_response:
                    raise HttpError(f"{method} {shown(url)}: answer exceeds {self.max_response:,} bytes; refusing")
                if time.monotonic() - started > self.deadline:
                    raise _TooSlow(f"answer did not finish within {self.deadline:.0f} s")
        headers = {k: v for k, v in streamed.headers.items() if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")}
        return httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=streamed.request)

    def json(self, method: str, path: str, **kwargs) -> dict:
        response = self.request(method, path, **kwargs)
        kind = response.headers.get("content-type", "")
        try:
            return response.json()
        except ValueError:
            got = "HTML" if "html" in kind or response.text.lstrip()[:1] == "<" else (kind or "non-JSON")
            raise HttpError(f"{method} {shown(response.url)} answered {got} instead of JSON", response.status_code) from None

    def download(self, path: str, to: Path, *, max_bytes: int = 64 << 30, deadline: float = 6 * 3600) -> Path:
        """Streams a file to disk (to a .partial name, renamed when complete), retrying from scratch."""
        url = self.url(path)
        to.parent.mkdir(parents=True, exist_ok=True)
        partial = to.with_name(to.name + ".partial")
        started = time.monotonic()
        problem = ""
        refused = 0
        for attempt in range(1, self.attempts + 1):
            _check_stop()
            response = None
            try:
                with self.client.stream("GET", url) as response:
                    if response.status_code >= 400:
                        problem = f"HTTP {response.status_code}"
                        if response.status_code not in RETRY_STATUS:
                            raise PermanentHttpError(f"GET {shown(url)} failed: {problem}", response.status_code)
                    else:
                        written = 0
                        with open(partial, "wb") as f:
                            for chunk in response.iter_bytes(1 << 20):
                                _check_stop()
                                written += len(chunk)
                                if written > max_bytes:
                                    raise HttpError(f"GET {shown(url)}: download exceeds {max_bytes:,} bytes; refusing")
                                if time.monotonic() - started > deadline:
                                    raise HttpError(f"GET {shown(url)}: download did not finish within {deadline:.0f} s")
                                f.write(chunk)
                        expected = response.headers.get("content-length")
                        if expected is not None and int(expected) != written:
                            problem = f"connection closed after {written:,} of {int(expected):,} bytes"
                        else:
                            partial.replace(to)
                            return to
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
                refused += isinstance(exc, httpx.ConnectError) and _refused(exc)
            if attempt < self.attempts:
                self.sleep(self._wait(attempt, response))
        partial.unlink(missing_ok=True)
        if refused == self.attempts:
            raise PermanentHttpError(f"GET {shown(url)} failed: connection refused on all {self.attempts} attempts "
                                     "(nothing listens there); check the URL or that the server is up")
        raise HttpError(f"GET {shown(url)} failed after {self.attempts} attempts ({problem}); retry later")

    def close(self) -> None:
        self.client.close()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    detail = body.get("detail") or body.get("message") if isinstance(body, dict) else None
    return f": {str(detail).splitlines()[0][:200]}" if detail else ""
