"""Checkpoints: the audit chain's head at one moment, signed, and kept outside PostgreSQL.

Whoever can write to the database can rewrite the chain and its head consistently, so the
chain alone proves nothing to them. A checkpoint names a seq and the hash the record there had
when it was committed, signed with a key the database never holds; ``cathouse audit verify
--checkpoints`` then tells a rewritten, truncated or emptied chain from an intact one.

They are kept in a directory (one append-only JSON-lines file per UTC day) or, with
``CATHOUSE_S3_BUCKET`` set, in the bucket (one object per checkpoint, never overwritten).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import obstore
from obstore.store import S3Store
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from cathouse.platform.objectstore import s3_store, s3_store_from_settings
from cathouse.platform.settings import Settings
from cathouse.proxy.audit.signing import PublicKey, Signer, b64url, from_b64url

# Part of every signed message, so a checkpoint's signature is never valid for anything else.
SIGNATURE_DOMAIN = b"cathouse.audit.checkpoint.v1\n"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Ranges = tuple[tuple[int, int], ...]


class Checkpoint(BaseModel):
    """The chain at ``seq``: the hash of the record there, how many records the log held (those
    after the prune anchor), when it was signed, the time of the record at ``seq``, and the seqs
    (first and last of each run) the signing process appended since its previous checkpoint:
    a record no checkpoint claims was not written by the proxy."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = 1
    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    records: int = Field(ge=0)
    at: AwareDatetime
    record_at: AwareDatetime
    ranges: Ranges = Field(max_length=1_000_000)
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")

    @staticmethod
    def message(
        seq: int, hash_: str, records: int, at: datetime, record_at: datetime, ranges: Ranges, key_id: str
    ) -> bytes:
        """The bytes signed: sorted-key JSON of every field but the signature, times in UTC."""
        fields = {
            "at": iso(at),
            "hash": hash_,
            "key_id": key_id,
            "ranges": [list(r) for r in ranges],
            "record_at": iso(record_at),
            "records": records,
            "seq": seq,
            "v": 1,
        }
        return SIGNATURE_DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def sign(
        cls,
        signer: Signer,
        *,
        seq: int,
        hash_: bytes,
        records: int,
        record_at: datetime,
        ranges: Ranges,
        at: datetime | None = None,
    ) -> Checkpoint:
        at = at or datetime.now(UTC)
        key_id = signer.public.key_id
        signature = signer.sign(cls.message(seq, hash_.hex(), records, at, record_at, ranges, key_id))
        return cls(
            seq=seq,
            hash=hash_.hex(),
            records=records,
            at=at.astimezone(UTC),
            record_at=record_at.astimezone(UTC),
            ranges=ranges,
            key_id=key_id,
            signature=b64url(signature),
        )

    def signed_by(self, key: PublicKey) -> bool:
        message = self.message(self.seq, self.hash, self.records, self.at, self.record_at, self.ranges, self.key_id)
        return self.key_id == key.key_id and key.verifies(from_b64url(self.signature), message)

    @property
    def pruned_through(self) -> int:
        """The prune anchor's seq when it was signed."""
        return self.seq - self.records

    def line(self) -> str:
        fields = {
            "v": 1,
            "seq": self.seq,
            "hash": self.hash,
            "records": self.records,
            "at": iso(self.at),
            "record_at": iso(self.record_at),
            "ranges": [list(r) for r in self.ranges],
            "key_id": self.key_id,
            "signature": self.signature,
        }
        return json.dumps(fields, separators=(",", ":"))

    def describe(self) -> str:
        return f"checkpoint at seq {self.seq} ({self.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})"


@dataclass(frozen=True, slots=True)
class Stored:
    """One entry of a store: the checkpoint, or why it could not be read; and where it is."""

    where: str
    checkpoint: Checkpoint | None
    error: str | None = None


def parse(text: str | bytes, where: str) -> Stored:
    try:
        return Stored(where, Checkpoint.model_validate_json(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        return Stored(where, None, f"{place + ': ' if place else ''}{first['msg']}")


class CheckpointStore(Protocol):
    where: str

    async def put(self, checkpoint: Checkpoint) -> None: ...

    async def load(self) -> list[Stored]:
        """Every entry, readable or not."""
        ...


class DirectoryStore:
    """One JSON-lines file per UTC day; each checkpoint appended as one write, then synced."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.where = str(directory)

    async def put(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._append, checkpoint)

    def _append(self, checkpoint: Checkpoint) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{checkpoint.at.astimezone(UTC):%Y-%m-%d}.jsonl"
        # O_APPEND: lines of several processes interleave whole, never overwrite one another.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (checkpoint.line() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    async def load(self) -> list[Stored]:
        return await asyncio.to_thread(self._load)

    def _load(self) -> list[Stored]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.jsonl")):
            for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if text.strip():
                    found.append(parse(text, f"{path.name} line {number}"))
        return found


class ObjectStore:
    """One object per checkpoint, ``<UTC day>/<seq>-<hash prefix>.json``, created never replaced."""

    def __init__(self, store: S3Store, where: str) -> None:
        self._store = store
        self.where = where

    async def put(self, checkpoint: Checkpoint) -> None:
        key = f"{checkpoint.at.astimezone(UTC):%Y-%m-%d}/{checkpoint.seq:020d}-{checkpoint.hash[:16]}.json"
        attributes = {"Content-Type": "application/json"}
        try:
            await obstore.put_async(self._store, key, checkpoint.line().encode(), attributes=attributes, mode="create")
        except FileExistsError:  # this very checkpoint, stored by a try whose answer was lost
            return

    async def load(self) -> list[Stored]:
        keys = [meta["path"] async for chunk in obstore.list(self._store, chunk_size=1000) for meta in chunk]
        limit = asyncio.Semaphore(16)

        async def read(key: str) -> Stored:
            async with limit:
                result = await obstore.get_async(self._store, key)
                return parse(bytes(await result.bytes_async()), key)

        return list(await asyncio.gather(*(read(key) for key in sorted(keys))))


def store_from_settings(settings: Settings) -> CheckpointStore:
    """The bucket when ``CATHOUSE_S3_BUCKET`` is set, else the directory (default: in the data dir)."""
    if settings.s3_bucket:
        prefix = settings.audit.s3_prefix
        return ObjectStore(s3_store_from_settings(settings, prefix), f"s3://{settings.s3_bucket}/{prefix}")
    return DirectoryStore(settings.audit.checkpoint_dir or settings.data_dir / "audit-checkpoints")


def store_at(spec: str, settings: Settings) -> CheckpointStore:
    """What ``--checkpoints`` names: ``s3`` (the configured bucket and prefix), ``s3://bucket/prefix``
    (with the configured endpoint and keys), or a directory."""
    if spec == "s3":
        if not settings.s3_bucket:
            raise ValueError("--checkpoints s3 needs CATHOUSE_S3_BUCKET")
        return store_from_settings(settings)
    if spec.startswith("s3://"):
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{spec!r} names no bucket")
        secret = settings.s3_secret_access_key
        store = s3_store(
            bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
            secret_access_key=secret.get_secret_value() if secret else None,
            prefix=prefix,
        )
        return ObjectStore(store, spec)
    return DirectoryStore(Path(spec))
