"""Where image assets live: one interface, a local directory or S3-compatible object storage.

Keys are content addressed (``<sha256>.<ext>``), so an object never changes once written:
writing the same key again writes the same bytes, and caches may keep an object for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import obstore
from pydantic import SecretStr

from cathouse.platform.errors import BadRequest
from cathouse.platform.objectstore import s3_store

if TYPE_CHECKING:
    from cathouse.platform.settings import Settings

# Content-addressed objects never change, so a browser or CDN may keep them for a year.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
KEY_PATTERN = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|webp)")


class InvalidAssetKey(BadRequest):
    """A key that is not ``<sha256>.<ext>``: a bug in the caller, or an attempt at a path."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} is not the name of an image asset.")


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidAssetKey(key)
    return key


class AssetStorage(Protocol):
    name: str

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is no error."""
        ...

    async def close(self) -> None: ...


class LocalStorage:
    """Files in one directory: the embedded default, for a single machine."""

    name = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        return self.directory / check_key(key)

    def _write(self, path: Path, data: bytes) -> None:
        """Write to a temporary file and rename it: a reader never sees half an image."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide assets from a serving proxy
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


class S3Storage:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, R2, ...), under a key prefix."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
    ) -> None:
        self._store = s3_store(
            bucket,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            prefix=prefix,
        )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        attributes = {"Content-Type": content_type, "Cache-Control": IMMUTABLE_CACHE_CONTROL}
        await obstore.put_async(self._store, check_key(key), data, attributes=attributes)

    async def get(self, key: str) -> bytes | None:
        try:
            result = await obstore.get_async(self._store, check_key(key))
        except FileNotFoundError:  # what obstore raises for a missing object
            return None
        return bytes(await result.bytes_async())

    async def delete(self, key: str) -> None:
        await obstore.delete_async(self._store, check_key(key))

    async def close(self) -> None:
        # obstore's client has no connections to give back: its pool goes with the object.
        return None


def storage_from_settings(settings: Settings) -> AssetStorage:
    """S3 when a bucket is configured, else a directory (by default under the data dir)."""
    if settings.s3_bucket:
        return S3Storage(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=_reveal(settings.s3_access_key_id),
            secret_access_key=_reveal(settings.s3_secret_access_key),
            prefix=settings.s3_prefix,
        )
    return LocalStorage(settings.catalog.assets_dir or settings.data_dir / "assets")


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
