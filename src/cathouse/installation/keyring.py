"""Envelope encryption of installation credentials.

Three layers: the master key from settings seals the *master-key versions* (random 256-bit
key-encryption keys kept in the database); the newest version wraps each installation's own
random *data key*; the data key encrypts that installation's secret fields. Every ciphertext
carries associated data naming where it belongs (version, installation, field), so bytes
copied to another row do not decrypt. Rotation adds a version and re-wraps data keys; the
secret fields themselves are never re-encrypted. Destroying a data key makes its
installation's secrets unreadable for good.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.installation.models import DataKey, MasterKeyVersion
from cathouse.platform.crypto import DecryptionError, derive_key, seal, unseal

PURPOSE = "installation-master-key-versions"
KEY_BYTES = 32


class KeyringError(Exception):
    """The master key from settings cannot unwrap the keys the database holds."""


def _version_aad(version: int) -> bytes:
    return f"master-key-version:{version}".encode()


def _data_key_aad(installation_id: uuid.UUID, version: int) -> bytes:
    return f"data-key:{installation_id}:{version}".encode()


def field_aad(installation_id: uuid.UUID, field: str) -> bytes:
    return f"credential:{installation_id}:{field}".encode()


def encrypt_field(data_key: bytes, installation_id: uuid.UUID, field: str, value: str) -> bytes:
    return seal(data_key, value.encode(), field_aad(installation_id, field))


def decrypt_field(data_key: bytes, installation_id: uuid.UUID, field: str, ciphertext: bytes) -> str:
    return unseal(data_key, ciphertext, field_aad(installation_id, field)).decode()


def fingerprint(data_key: bytes, field: str, value: str) -> str:
    """Tells two values apart without revealing either: a keyed hash, useless without the data key."""
    return hmac.new(data_key, f"fingerprint:{field}:{value}".encode(), hashlib.sha256).hexdigest()[:12]


@dataclass
class RotationReport:
    version: int
    created: bool
    rewrapped: int
    remaining: int


class Keyring:
    """The master-key versions, unsealed in memory. Built in a lifespan; reloads on a version it
    has not seen (another process rotated)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], master_key: str) -> None:
        self._sessions = sessions
        self._sealing_key = derive_key(master_key, PURPOSE)
        self._versions: dict[int, bytes] = {}

    @property
    def current_version(self) -> int:
        """The newest version this process has loaded (the database may know a newer one)."""
        return max(self._versions)

    async def load(self) -> None:
        """Unseal every live version, creating the first one on a new database.

        Raises KeyringError when one does not unseal: better not to start than to fail every
        credential read later.
        """
        async with self._sessions() as session:
            rows = await _live_versions(session)
            if not rows:
                await _add_version(session, 1, self._sealing_key)
                await session.commit()
                rows = await _live_versions(session)
        versions = {}
        for row in rows:
            try:
                versions[row.version] = unseal(self._sealing_key, row.sealed_key, _version_aad(row.version))
            except DecryptionError:
                raise KeyringError(
                    f"master-key version {row.version} does not unseal with CATHOUSE_MASTER_KEY: "
                    "the platform was started with another master key than the one that created it"
                ) from None
        self._versions = versions

    async def _newest_locked(self, session: AsyncSession) -> int:
        """The newest live version in the database, share-locked until ``session`` commits, and
        loaded if this process has not seen it yet.

        Asked on every new data key (one indexed read, on a rare write), so a rotation run by
        another process takes effect here at once; the lock makes a concurrent `retire` wait
        for this transaction and then see the data key it wrapped.
        """
        newest = await session.scalar(
            select(MasterKeyVersion.version)
            .where(MasterKeyVersion.retired_at.is_(None))
            .order_by(MasterKeyVersion.version.desc())
            .limit(1)
            .with_for_update(read=True)
        )
        if newest is None:
            raise KeyringError("no live master-key version: the keyring was never loaded")
        if newest not in self._versions:
            await self.load()
        return int(newest)

    async def _key(self, version: int) -> bytes:
        if version not in self._versions:
            await self.load()
        if version not in self._versions:
            raise KeyringError(f"master-key version {version} is retired or missing")
        return self._versions[version]

    async def new_data_key(self, session: AsyncSession, installation_id: uuid.UUID) -> tuple[bytes, DataKey]:
        """A fresh data key, and its row (wrapped by the newest version) for the caller to add in
        ``session``."""
        data_key = os.urandom(KEY_BYTES)
        version = await self._newest_locked(session)
        wrapped = seal(await self._key(version), data_key, _data_key_aad(installation_id, version))
        return data_key, DataKey(installation_id=installation_id, key_version=version, wrapped_key=wrapped)

    async def unwrap(self, row: DataKey) -> bytes:
        if row.wrapped_key is None:
            raise KeyringError("this installation's data key was destroyed")
        key = await self._key(row.key_version)
        return unseal(key, row.wrapped_key, _data_key_aad(row.installation_id, row.key_version))

    async def rotate(self, *, batch_size: int = 200) -> RotationReport:
        """Make a new version current and re-wrap every live data key under it.

        Resumable: if data keys still sit under older versions (a rotation was cut short),
        this finishes that rotation instead of starting another. Each batch commits on its
        own, and rows are claimed with SKIP LOCKED, so the platform goes on serving.
        """
        await self.load()
        async with self._sessions() as session:
            newest = max(self._versions)
            behind = await _count_behind(session, newest)
            created = behind == 0
            if created:
                newest += 1
                await _add_version(session, newest, self._sealing_key)
                await session.commit()
        await self.load()
        rewrapped = 0
        while True:
            async with self._sessions() as session, session.begin():
                rows = await _claim_behind(session, newest, batch_size)
                for row in rows:
                    data_key = await self.unwrap(row)
                    row.wrapped_key = seal(
                        await self._key(newest), data_key, _data_key_aad(row.installation_id, newest)
                    )
                    row.key_version = newest
                rewrapped += len(rows)
            if len(rows) < batch_size:
                break
        async with self._sessions() as session:
            remaining = await _count_behind(session, newest)
        return RotationReport(version=newest, created=created, rewrapped=rewrapped, remaining=remaining)

    async def retire(self, version: int) -> None:
        """Retire a version no live data key uses any more; its key is erased."""
        async with self._sessions() as session, session.begin():
            row = await session.get(MasterKeyVersion, version, with_for_update=True)
            if row is None:
                raise KeyringError(f"there is no master-key version {version}")
            if row.retired_at is not None:
                raise KeyringError(f"version {version} was already retired")
            in_use = await session.scalar(
                select(func.count())
                .select_from(DataKey)
                .where(DataKey.key_version == version, DataKey.wrapped_key.is_not(None))
            )
            if in_use:
                raise KeyringError(f"{in_use} data keys still use version {version}: run `cathouse keys rotate` first")
            newest = await session.scalar(select(func.max(MasterKeyVersion.version)))
            if version == newest:
                raise KeyringError(f"version {version} is the current one; rotate before retiring it")
            row.retired_at = datetime.now(UTC)
            row.sealed_key = b""
        self._versions.pop(version, None)


async def _live_versions(session: AsyncSession) -> Sequence[MasterKeyVersion]:
    statement = select(MasterKeyVersion).where(MasterKeyVersion.retired_at.is_(None))
    return (await session.scalars(statement.order_by(MasterKeyVersion.version))).all()


async def _add_version(session: AsyncSession, version: int, sealing_key: bytes) -> None:
    sealed = seal(sealing_key, os.urandom(KEY_BYTES), _version_aad(version))
    # Two processes starting on a new database: one version 1 wins, the other is a no-op.
    await session.execute(insert(MasterKeyVersion).values(version=version, sealed_key=sealed).on_conflict_do_nothing())


async def _count_behind(session: AsyncSession, version: int) -> int:
    statement = (
        select(func.count()).select_from(DataKey).where(DataKey.key_version < version, DataKey.wrapped_key.is_not(None))
    )
    return int(await session.scalar(statement) or 0)


async def _claim_behind(session: AsyncSession, version: int, limit: int) -> Sequence[DataKey]:
    statement = (
        select(DataKey)
        .where(DataKey.key_version < version, DataKey.wrapped_key.is_not(None))
        .order_by(DataKey.installation_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()
