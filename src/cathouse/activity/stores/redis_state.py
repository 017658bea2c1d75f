"""The projection's memory in Redis, read for a whole batch at once.

The state a batch may ask for is read in one pipeline before the projection runs; what an event
of the batch changes is remembered, so a later event of the same aggregate sees it before the
batch's scripts have run. Should a script find its event applied already (a redelivery racing
its original), the state it would have left is there anyway: the other delivery left the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from cathouse.activity.projection import payload_ids
from cathouse.activity.readmodel import CatState, Effects, InstallationState, ReviewState
from cathouse.platform.outbox.relay import Event


def _opt(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _cat(cat_id: uuid.UUID, found: dict[str, str]) -> CatState | None:
    return CatState(cat_id, _opt(found.get("publisher_id")), found["status"]) if found else None


def _installation(installation_id: uuid.UUID, found: dict[str, str]) -> InstallationState | None:
    if not found:
        return None
    return InstallationState(
        installation_id,
        uuid.UUID(found["cat_id"]),
        uuid.UUID(found["user_id"]),
        found["status"],
        found["activated"] == "1",
    )


def _review(review_id: uuid.UUID, found: dict[str, str]) -> ReviewState | None:
    if not found:
        return None
    return ReviewState(
        review_id,
        uuid.UUID(found["cat_id"]),
        uuid.UUID(found["user_id"]),
        int(found["rating"]),
        found["visible"] == "1",
    )


_KINDS: dict[str, Any] = {"cat": _cat, "installation": _installation, "review": _review}


class BatchState:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.known: dict[tuple[str, uuid.UUID], Any] = {}

    async def load(self, events: Sequence[Event]) -> None:
        """Read, in one pipeline, the state every event of the batch may ask for."""
        wanted = [
            (kind, i) for kind in _KINDS for i in payload_ids(events, f"{kind}_id") if (kind, i) not in self.known
        ]
        if not wanted:
            return
        pipe = self.client.pipeline(transaction=False)
        for kind, i in wanted:
            pipe.hgetall(f"{self.prefix}state:{kind}:{i}")
        for (kind, i), found in zip(wanted, await pipe.execute(), strict=True):
            self.known[(kind, i)] = _KINDS[kind](i, found)

    async def _get(self, kind: str, key: uuid.UUID) -> Any:
        if (kind, key) not in self.known:
            found = await self.client.hgetall(f"{self.prefix}state:{kind}:{key}")
            self.known[(kind, key)] = _KINDS[kind](key, found)
        return self.known[(kind, key)]

    async def cat(self, cat_id: uuid.UUID) -> CatState | None:
        found: CatState | None = await self._get("cat", cat_id)
        return found

    async def installation(self, installation_id: uuid.UUID) -> InstallationState | None:
        found: InstallationState | None = await self._get("installation", installation_id)
        return found

    async def review(self, review_id: uuid.UUID) -> ReviewState | None:
        found: ReviewState | None = await self._get("review", review_id)
        return found

    def remember(self, effects: Effects) -> None:
        if effects.cat is not None:
            self.known[("cat", effects.cat.cat_id)] = effects.cat
        if effects.installation is not None:
            self.known[("installation", effects.installation.installation_id)] = effects.installation
        if effects.review is not None:
            self.known[("review", effects.review.review_id)] = effects.review
        if effects.review_removed is not None:
            self.known[("review", effects.review_removed)] = None
