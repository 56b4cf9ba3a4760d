"""Object storage for snapshots: a local folder or any S3-compatible endpoint.

Both stores speak in keys relative to their root (``snapshots/<id>/manifest.json``)
and can tell DuckDB how to read a key (a path, or an ``s3://`` URL plus a secret).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from awardwatch.schemas.errors import AwardwatchError


class StoreError(AwardwatchError):
    """An object store that failed or refused a request."""


class Store(Protocol):
    url: str

    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def copy(self, source: str, key: str) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def digest(self, key: str) -> tuple[int, str] | None: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, keys: list[str]) -> None: ...
    def reader_path(self, key: str) -> str: ...
    def duckdb_setup(self, scope: str | None = None) -> list[str]: ...
    def cleanup(self) -> None: ...


# Half-written files a publish leaves when killed: its own temporary names only, under snapshots/ or
# for the pointer (a user's ``deep/er/movie.mp4.partial`` beside the snapshots is not ours).
PARTIAL = ".awardwatch.partial"


def check_key(key: str, url: str) -> str:
    """A key relative to the store's root: no absolute path, no ``..``, ``.`` or empty segment."""
    parts = key.split("/")
    if (not key or key.startswith("/") or "\\" in key or "\x00" in key
            or any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", "..")):
        raise StoreError(f"refusing key {key!r}: it is not inside the store {url}")
    return key


def temporary_name(name: str) -> str:
    return f".{name}{PARTIAL}"


def is_own_partial(key: str) -> bool:
    """A temporary name publish writes: the pointer's, or a file's under ``snapshots/``."""
    name = key.rsplit("/", 1)[-1]
    return key == temporary_name("latest") or (key.startswith("snapshots/") and name.startswith(".") and name.endswith(PARTIAL))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LocalStore:
    """A folder. Writes go to a temporary name first, then are renamed into place."""

    root: Path

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        """The file of a key, refused when it (or a symlink on its way) leads outside the root."""
        path = self.root / check_key(key, self.url)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise StoreError(f"refusing key {key!r}: it resolves to {path.resolve()}, outside the store {self.url}")
        return path

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(temporary_name(target.name))
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def copy(self, source: str, key: str) -> None:
        """A stored file under a second key: a hard link (no second copy on disk; the store never
        rewrites a file in place, so neither key's bytes can change through the other), or a copy
        where the filesystem has no hard links."""
        origin, target = self._path(source), self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(temporary_name(target.name))
        tmp.unlink(missing_ok=True)
        try:
            os.link(origin, tmp)
        except FileNotFoundError:
            raise StoreError(f"cannot copy {self.url}/{source}: it is not there; publish again") from None
        except OSError:
            shutil.copyfile(origin, tmp)
        os.replace(tmp, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(temporary_name(target.name))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_file(self, key: str, path: Path) -> None:
        """Copies a stored file to ``path`` (its folder is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError:
            raise StoreError(f"cannot read {self.url}/{key}: it is not there") from None

    def digest(self, key: str) -> tuple[int, str] | None:
        """Size and SHA-256 of a stored file, streamed (None if absent)."""
        path = self._path(key)
        return (path.stat().st_size, sha256_of(path)) if path.exists() else None

    def list(self, prefix: str) -> list[str]:
        """Keys of the files under ``prefix`` (a folder key ending in ``/``), symlinks not followed."""
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        found = []
        for folder, _, names in os.walk(base):
            found += [Path(folder, n).relative_to(self.root).as_posix() for n in names if Path(folder, n).is_file()]
        return sorted(found)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        for key in keys:  # remove folders left empty
            parent = self._path(key).parent
            while parent != self.root and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def reader_path(self, key: str) -> str:
        return str(self._path(key).resolve())

    def cleanup(self) -> None:
        """Removes the half-written files a killed publish left: its own temporary names
        (``.<name>.awardwatch.partial``) under ``snapshots/`` and beside ``latest``, nothing else."""
        if not self.root.is_dir():
            return
        keys = [temporary_name("latest")] + (self.list("snapshots/") if (self.root / "snapshots").is_dir() else [])
        for key in keys:
            if is_own_partial(key):
                (self.root / key).unlink(missing_ok=True)

    def duckdb_setup(self, scope: str | None = None) -> list[str]:
        return []


class S3Store:
    """A bucket and prefix on any S3-compatible endpoint, through boto3.

    Checksums are sent and validated only when the operation requires them (many
    S3-compatible servers reject the default CRC headers of recent boto3), files
    over ``multipart_mb`` go up as multipart uploads, and a failed multipart
    upload is aborted by boto3's transfer manager."""

    def __init__(self, url: str, *, multipart_mb: int = 64, path_style: bool | None = None):
        from urllib.parse import urlparse

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        import boto3

        self.session = boto3.session.Session()
        self.client = make_client(self.session, path_style=path_style)
        self.multipart_mb = multipart_mb

    def _key(self, key: str) -> str:
        check_key(key.rstrip("/") or "x", self.url)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"S3 {action} s3://{self.bucket}/{self._key(key)} failed: {detail}")

    def _transfer(self):
        from boto3.s3.transfer import TransferConfig

        size = self.multipart_mb << 20
        return TransferConfig(multipart_threshold=size, multipart_chunksize=size, max_concurrency=4, use_threads=True)

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer())
        except Exception as exc:
            raise self._fail("upload of", key, exc) from None

    def copy(self, source: str, key: str) -> None:
        """A server-side copy (no bytes pass through this machine); objects over ``multipart_mb`` are
        copied in parts, and a failed multipart copy is aborted like a failed upload."""
        try:
            self.client.copy({"Bucket": self.bucket, "Key": self._key(source)}, self.bucket, self._key(key),
                             Config=self._transfer())
        except Exception as exc:
            raise self._fail(f"copy of s3://{self.bucket}/{self._key(source)} to", key, exc) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("write of", key, exc) from None

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise self._fail("read of", key, exc) from None

    def get_file(self, key: str, path: Path) -> None:
        """Downloads an object to ``path`` (its folder is created), in parts over ``multipart_mb``, not through memory."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self._transfer())
        except Exception as exc:
            raise self._fail("download of", key, exc) from None

    def digest(self, key: str) -> tuple[int, str] | None:
        """Size and SHA-256 of a stored object, streamed in 1 MiB chunks (None if absent)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise self._fail("read of", key, exc) from None
        digest, size = hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def list(self, prefix: str) -> list[str]:
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [obj["Key"] for obj in page.get("Contents", [])]
        except Exception as exc:
            raise self._fail("listing of", prefix, exc) from None
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[strip:] for k in keys)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise self._fail("delete in", keys[start], exc) from None

    def open_multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads under the prefix started and never completed or aborted (should be none)."""
        return [u["Key"] for u in self._uploads("")]

    def _uploads(self, under: str) -> list[dict]:
        """Open multipart uploads under ``prefix/under``: the prefix always ends in ``/``, so
        ``s3://b/awx`` never sees another application's ``awx-other-app/...``."""
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(under)):
            found += page.get("Uploads", [])
        return found

    def cleanup(self) -> None:
        """Aborts multipart uploads a publish that was killed or lost the server left under
        ``prefix/snapshots/`` (the only keys it uploads in parts): the pipeline is the only
        writer there, so none of them can still be in progress."""
        try:
            for upload in self._uploads("snapshots/"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception as exc:
            raise self._fail("clean-up of multipart uploads under", "snapshots/", exc) from None

    def reader_path(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def duckdb_setup(self, scope: str | None = None) -> list[str]:
        """Statements that let DuckDB's httpfs read this bucket with boto3's credentials and endpoint.

        The credentials go into a temporary DuckDB secret, limited to ``scope`` (an ``s3://`` prefix)
        when given; ``duckdb_secrets()`` shows it redacted. The ``s3_*`` settings, which httpfs fills
        from the ``AWS_*`` variables and ``duckdb_settings()`` prints in clear, are emptied."""
        found = self.session.get_credentials()
        creds = found.get_frozen_credentials() if found else None
        endpoint = self.client.meta.endpoint_url
        region = self.client.meta.region_name or "us-east-1"
        parts = ["TYPE s3", "PROVIDER config", f"REGION '{_q(region)}'"]
        if creds:
            parts += [f"KEY_ID '{_q(creds.access_key)}'", f"SECRET '{_q(creds.secret_key)}'"]
            if creds.token:
                parts.append(f"SESSION_TOKEN '{_q(creds.token)}'")
        if endpoint and "amazonaws.com" not in endpoint:
            from urllib.parse import urlparse

            e = urlparse(endpoint)
            parts += [f"ENDPOINT '{_q(e.netloc)}'", f"USE_SSL {'true' if e.scheme == 'https' else 'false'}"]
            if self.client.meta.config.s3 and self.client.meta.config.s3.get("addressing_style") == "path":
                parts.append("URL_STYLE 'path'")
        if scope:
            parts.append(f"SCOPE '{_q(scope)}'")
        clear = [f"SET {name} = ''" for name in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")]
        return [httpfs_load_statement(), *clear, f"CREATE OR REPLACE TEMPORARY SECRET awardwatch_s3 ({', '.join(parts)})"]


def _q(text: str) -> str:
    return text.replace("'", "''")


def make_client(session, *, path_style: bool | None = None):
    """An S3 client from boto3's standard chain (AWS_ENDPOINT_URL[_S3], credentials, region),
    set up for S3-compatible servers: checksums only when required, retries with backoff,
    and path-style addressing when the endpoint is not AWS (unless ``path_style`` says otherwise)."""
    from botocore.config import Config

    def build(style: str):
        config = Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": style},
            retries={"mode": "standard", "max_attempts": 6},
            connect_timeout=10,
            read_timeout=60,
            user_agent_appid="awardwatch",
        )
        return session.client("s3", config=config)

    client = build("path" if path_style else "auto")
    if path_style is None and "amazonaws.com" not in (client.meta.endpoint_url or ""):
        client = build("path")
    return client


def httpfs_load_statement() -> str:
    """LOAD of the httpfs extension shipped by the duckdb-extension-httpfs package (no download)."""
    import duckdb_extension_httpfs

    found = sorted(Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/*/httpfs.duckdb_extension"))
    if not found:
        raise StoreError("duckdb-extension-httpfs is installed without its extension file; reinstall it")
    return f"LOAD '{_q(str(found[-1]))}'"


def open_store(url: str) -> Store:
    """A store for a folder path or an s3:// URL."""
    if url.startswith("s3://"):
        return S3Store(url)
    if "://" in url and not url.startswith("file://"):
        raise StoreError(f"unsupported snapshot URL {url!r}: use a folder or s3://bucket/prefix")
    return LocalStore(Path(url.removeprefix("file://")))
