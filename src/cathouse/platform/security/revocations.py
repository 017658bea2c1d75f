"""Revocations every process applies to access tokens, kept in memory and checked locally.

The auth service writes a row of ``auth.revocations`` in the same transaction as the change it
describes: an account disabled, deleted or given other roles, its sessions ended (log out
everywhere, a new password). Access tokens carry the account's ``token_version`` at issue as
``ver``; the row says, as of its ``version``, the roles and whether the account is disabled,
and below which ``ver`` tokens no longer count (except those of ``kept_session``, the session
that changed the password).

Each process holds a small table of these rows and checks every token against it: one dict
lookup, no query. It reads the table at start (every disabled account, and every change a live
token could predate) and then the rows changed lately, every ``interval`` seconds (one indexed
query), and at once when PostgreSQL notifies it of a change, when the process already holds a
LISTEN connection (none is opened for this: the connection budget has no room for one per
process). A change therefore reaches every process within ``interval`` seconds, even when a
notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.listen import Listener
from cathouse.platform.security.principal import Principal, Role

CHANNEL = "cathouse_revocations"
# Rows changed this long before a poll are read again: a transaction that wrote its row a little
# before another committed theirs is not missed.
OVERLAP = 30.0
_COLUMNS = "user_id, version, roles, disabled, valid_from, kept_session, changed_at"
_RECENT = text(f"SELECT {_COLUMNS} FROM auth.revocations WHERE changed_at > now() - make_interval(secs => :seconds)")
_ALL_LIVE = text(
    f"SELECT {_COLUMNS} FROM auth.revocations WHERE disabled OR changed_at > now() - make_interval(secs => :seconds)"
)
_KNOWN_ROLES = {role.value: role for role in Role}


class Revoked(Exception):
    """The token was valid when issued but no longer is. The message is safe to show."""


@dataclass(frozen=True, slots=True)
class Revocation:
    version: int
    roles: frozenset[Role]
    disabled: bool
    valid_from: int
    kept_session: uuid.UUID | None
    changed_at: datetime


class Revocations:
    """The in-memory table: the latest revocation of each account a live token could belong to.

    A row that disables an account is kept for good (an installation's API keys outlive any
    token); any other only while a token it concerns could live (``keep_for`` seconds): a full
    read, every minute, leaves the others out."""

    def __init__(self, *, keep_for: float) -> None:
        self.keep_for = keep_for
        self._entries: dict[uuid.UUID, Revocation] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: uuid.UUID) -> Revocation | None:
        return self._entries.get(user_id)

    def disabled(self, user_id: uuid.UUID) -> bool:
        entry = self._entries.get(user_id)
        return entry is not None and entry.disabled

    def check(self, principal: Principal) -> Principal:
        """The principal as the account stands now: refused (:class:`Revoked`) when disabled or its
        session was ended, and with the account's current roles when they changed since issue."""
        entry = self._entries.get(principal.user_id)
        if entry is None:
            return principal
        if entry.disabled:
            raise Revoked("This account is disabled.")
        if principal.token_version < entry.valid_from and (
            principal.session_id is None or principal.session_id != entry.kept_session
        ):
            raise Revoked("This session was revoked: sign in again.")
        if principal.token_version < entry.version and principal.roles != entry.roles:
            # Built directly: dataclasses.replace costs several times as much on this path.
            p = principal
            return Principal(p.user_id, entry.roles, p.token_id, p.expires_at, p.session_id, p.token_version)
        return principal

    def apply(self, rows: Iterable[Sequence[Any]], *, replace: bool = False) -> None:
        """Take up rows of ``auth.revocations``; with ``replace``, they are the whole table."""
        entries: dict[uuid.UUID, Revocation] = {} if replace else self._entries
        for user_id, version, roles, disabled, valid_from, kept_session, changed_at in rows:
            known = self._entries.get(user_id)
            if not replace and known is not None and known.version > version:
                continue  # an older row read after a newer one
            entries[user_id] = Revocation(
                version=version,
                roles=frozenset(_KNOWN_ROLES[r] for r in roles if r in _KNOWN_ROLES),
                disabled=disabled,
                valid_from=valid_from,
                kept_session=kept_session,
                changed_at=changed_at,
            )
        self._entries = entries


class RevocationFeed:
    """Keeps a :class:`Revocations` table current from ``auth.revocations`` over ``engine``."""

    def __init__(
        self,
        engine: AsyncEngine,
        revocations: Revocations,
        *,
        interval: float,
        listener: Listener | None = None,
    ) -> None:
        self.engine = engine
        self.revocations = revocations
        self.interval = interval
        self.listener = listener
        self._wake = asyncio.Event()
        self._loaded_at: float | None = None  # monotonic time of the last full read
        self._polled_at: float | None = None  # of the last successful read of any kind
        self._failing = False
        # Set after every successful read (tests wait for it).
        self.polled = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def poll(self) -> None:
        """Read what changed: everything when the last read is too old to bridge the gap."""
        now = time.monotonic()
        full = self._polled_at is None or now - self._polled_at > OVERLAP / 2 or now - (self._loaded_at or 0) > 60
        async with self.engine.connect() as conn:
            if full:
                seconds = self.revocations.keep_for
                rows = (await conn.execute(_ALL_LIVE, {"seconds": seconds})).all()
            else:
                rows = (await conn.execute(_RECENT, {"seconds": OVERLAP})).all()
            await conn.rollback()
        self.revocations.apply(rows, replace=full)
        if full:
            self._loaded_at = now
        self._polled_at = now
        self.polled.set()

    async def _poll_logged(self) -> None:
        try:
            await self.poll()
        except Exception as exc:
            if not self._failing:  # one warning per outage
                logger.opt(exception=exc).warning("could not read the revocations; trying again")
            self._failing = True
        else:
            if self._failing:
                logger.info("reading the revocations again")
            self._failing = False

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self._poll_logged()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RevocationFeed]:
        """Read the table once (so the first request is checked), then keep it current."""
        await self._poll_logged()
        if self.listener is not None:
            # Only on a connection the process holds anyway: this alone opens none.
            self.listener.listen(CHANNEL, self.wake, connect=False)
        task = asyncio.create_task(self.run(), name="revocation-feed")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
