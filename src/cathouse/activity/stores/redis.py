"""The read model in Redis, for replicas that share it and feeds read many times a second.

Feeds are sorted sets scored by entry id, capped by rank (the global feed keeps the newest
``global_cap`` entries, each user's ``user_cap``), whose members are ``"<id>:<entry JSON>"``.
Statistics and the projection's state are hashes. Applying an event is one Lua script: it sets
the event's marker with NX (already there: the event was applied, nothing happens), numbers the
entry with INCR and writes every effect, all atomically, so a redelivery changes nothing and a
crash leaves the event either wholly applied or not at all. The projection reads the state it
needs before the scripts (``redis_state``); one aggregate's events arrive in order and are applied
by one consumer at a time, so that state cannot change in between (a redelivery racing its
original is stopped by the marker). A batch is four round trips: the markers, the state, a
check that the script is loaded (redis-py's registered script loads it if not), and every
event's script in one pipeline.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from loguru import logger

from cathouse.activity.projection import Malformed, project, triage
from cathouse.activity.readmodel import (
    CAT_COUNTERS,
    PLATFORM_COUNTERS,
    Effects,
    Entry,
    Feed,
    NewEntry,
    Outcome,
    Rebuilding,
)
from cathouse.activity.stores.redis_state import BatchState
from cathouse.platform.outbox.relay import Event

# KEYS: marker, entry counter, rebuild flag, then the keys the operations name by index.
# ARGV: marker TTL (0: none), rebuild token ('' when live), operations (JSON), entry JSON ('' if none).
# Returns the entry's id, -1 when applied without an entry, 0 for a duplicate, -2 while rebuilding.
_APPLY = """
local flag = redis.call('GET', KEYS[3])
if flag and flag ~= ARGV[2] then return -2 end
local ttl = tonumber(ARGV[1])
local fresh
if ttl > 0 then
  fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ttl)
else
  fresh = redis.call('SET', KEYS[1], '1', 'NX')
end
if not fresh then return 0 end
local id = -1
if ARGV[4] ~= '' then id = redis.call('INCR', KEYS[2]) end
for _, op in ipairs(cjson.decode(ARGV[3])) do
  local key = KEYS[op[2]]
  if op[1] == 'entry' then
    redis.call('ZADD', key, id, id .. ':' .. ARGV[4])
    redis.call('ZREMRANGEBYRANK', key, 0, -op[3] - 1)
  elseif op[1] == 'incr' then
    redis.call('HINCRBY', key, op[3], op[4])
  elseif op[1] == 'hset' then
    redis.call('HSET', key, unpack(op[3]))
  elseif op[1] == 'del' then
    redis.call('DEL', key)
  end
end
return id
"""
_REBUILD_FLAG_TTL = 600

Announce = Callable[[int], Awaitable[None]]


def _dump(new: NewEntry) -> str:
    return json.dumps(
        {
            "event_id": new.event_id,
            "seq": new.seq,
            "type": new.type,
            "occurred_at": new.occurred_at.isoformat(),
            "cat_id": str(new.cat_id) if new.cat_id else None,
            "user_id": str(new.user_id) if new.user_id else None,
            "audience": sorted(str(u) for u in new.audience),
            "public": new.public,
            "anonymous": new.anonymous,
            "data": new.data,
            "details": new.details,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def _load(member: str) -> Entry:
    number, _, body = member.partition(":")
    doc = json.loads(body)
    return Entry(
        id=int(number),
        event_id=doc["event_id"],
        seq=doc["seq"],
        type=doc["type"],
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        cat_id=uuid.UUID(doc["cat_id"]) if doc["cat_id"] else None,
        user_id=uuid.UUID(doc["user_id"]) if doc["user_id"] else None,
        audience=frozenset(uuid.UUID(u) for u in doc["audience"]),
        public=doc["public"],
        anonymous=doc["anonymous"],
        data=doc["data"],
        details=doc["details"],
    )


class _Plan:
    """The script's operations for one event, naming keys by their index in KEYS."""

    def __init__(self, fixed: list[str]) -> None:
        self.keys = list(fixed)
        self.ops: list[list[Any]] = []

    def key(self, name: str) -> int:
        if name not in self.keys:
            self.keys.append(name)
        return self.keys.index(name) + 1  # Lua counts from 1

    def add(self, op: str, key: str, *args: Any) -> None:
        self.ops.append([op, self.key(key), *args])


class RedisReadModel:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        global_cap: int = 1000,
        user_cap: int = 100,
        cat_cap: int = 1000,
        dedupe_ttl: int = 30 * 86400,
        announce: Announce | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.global_cap = global_cap
        self.user_cap = user_cap
        self.cat_cap = cat_cap
        self.dedupe_ttl = dedupe_ttl
        self.announce = announce
        self._script = client.register_script(_APPLY)
        self._token = ""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisReadModel:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        return cls(client, **options)

    def feed_key(self, feed: Feed) -> str:
        if feed.kind in ("user", "cat"):
            return f"{self.prefix}{feed.kind}:{feed.key}"
        return f"{self.prefix}feed:{feed.kind}"

    # --- writing -------------------------------------------------------------------------------

    async def apply(self, events: Sequence[Event], *, rebuild: bool = False) -> list[Outcome]:
        if rebuild:
            assert self._token, "start_rebuild first"
            await self.client.expire(f"{self.prefix}rebuilding", _REBUILD_FLAG_TTL)
        outcomes = await self._apply(events, self._token if rebuild else "")
        newest = max((o.entry.id for o in outcomes if o.entry is not None), default=0)
        if newest and self.announce is not None:
            try:
                await self.announce(newest)
            except Exception as exc:  # streams also poll: a lost announcement only delays them
                logger.warning("could not announce new activity entries", error=f"{type(exc).__name__}: {exc}")
        return outcomes

    async def _apply(self, events: Sequence[Event], token: str) -> list[Outcome]:
        """The batch in four round trips: which ids are new, the state they need, whether the
        script is loaded, their scripts."""
        outcomes, candidates = triage(events)
        fresh = await self._fresh(events, candidates)
        for i in set(candidates.values()) - set(fresh):
            outcomes[i] = Outcome(events[i], "duplicate")
        state = BatchState(self.client, self.prefix)
        await state.load([events[i] for i in fresh])
        pipe = self.client.pipeline(transaction=False)
        bodies: list[tuple[int, str]] = []
        for i in fresh:
            try:
                effects = await project(events[i], state)
            except Malformed as exc:
                logger.warning("activity event malformed; skipped", error=str(exc))
                outcomes[i] = Outcome(events[i], "skipped", reason="malformed")
                continue
            state.remember(effects)
            marker = f"{self.prefix}applied:{events[i].id}"
            plan = self._plan(effects, [marker, f"{self.prefix}seq", f"{self.prefix}rebuilding"])
            body = _dump(effects.entry) if effects.entry is not None else ""
            args: list[str | int] = [self.dedupe_ttl, token, json.dumps(plan.ops), body]
            # Queued, not run: the pipeline loads the script first should the server lack it.
            await self._script(keys=plan.keys, args=args, client=pipe)
            bodies.append((i, body))
        results = await pipe.execute() if bodies else ()
        for (i, body), result in zip(bodies, map(int, results), strict=True):
            if result == -2:
                raise Rebuilding("the activity read model is being rebuilt")
            if result == 0:
                outcomes[i] = Outcome(events[i], "duplicate")
            else:
                outcomes[i] = Outcome(events[i], "applied", _load(f"{result}:{body}") if result > 0 else None)
        return [outcomes[i] for i in range(len(events))]

    async def _fresh(self, events: Sequence[Event], candidates: dict[str, int]) -> list[int]:
        """The places of the events not applied yet; a shortcut only: each script decides."""
        if not candidates:
            return []
        pipe = self.client.pipeline(transaction=False)
        for event_id in candidates:
            pipe.exists(f"{self.prefix}applied:{event_id}")
        found = await pipe.execute()
        return [i for i, seen in zip(candidates.values(), found, strict=True) if not seen]

    def _plan(self, effects: Effects, fixed: list[str]) -> _Plan:
        plan = _Plan(fixed)
        p = self.prefix
        new = effects.entry
        if new is not None:
            plan.add("entry", self.feed_key(Feed.everything()), self.global_cap)
            if new.public:
                plan.add("entry", self.feed_key(Feed.public()), self.global_cap)
                if new.cat_id is not None:
                    plan.add("entry", self.feed_key(Feed.cat(new.cat_id)), self.cat_cap)
            for user_id in sorted(new.audience):
                plan.add("entry", self.feed_key(Feed.user(user_id)), self.user_cap)
        for name, by in sorted(effects.cat_counters.items()):
            plan.add("incr", f"{p}stats:cat:{effects.cat_id}", name, by)
        for name, by in sorted(effects.platform_counters.items()):
            plan.add("incr", f"{p}stats:platform", name, by)
        if effects.cat is not None:
            cat = effects.cat
            fields = ["publisher_id", str(cat.publisher_id or ""), "status", cat.status]
            plan.add("hset", f"{p}state:cat:{cat.cat_id}", fields)
        if effects.installation is not None:
            i = effects.installation
            fields = ["cat_id", str(i.cat_id), "user_id", str(i.user_id), "status", i.status]
            plan.add("hset", f"{p}state:installation:{i.installation_id}", [*fields, "activated", int(i.activated)])
        if effects.review is not None:
            r = effects.review
            fields = ["cat_id", str(r.cat_id), "user_id", str(r.user_id), "rating", str(r.rating)]
            plan.add("hset", f"{p}state:review:{r.review_id}", [*fields, "visible", int(r.visible)])
        if effects.review_removed is not None:
            plan.add("del", f"{p}state:review:{effects.review_removed}")
        return plan

    # --- reading -------------------------------------------------------------------------------

    async def page(self, feed: Feed, *, before: int | None, limit: int) -> list[Entry]:
        top = f"({before}" if before is not None else "+inf"
        members = await self.client.zrange(
            self.feed_key(feed), top, "-inf", byscore=True, desc=True, offset=0, num=limit
        )
        return [_load(str(m)) for m in members]

    async def since(self, feeds: Sequence[Feed], after: int, *, limit: int) -> list[Entry]:
        found: dict[int, Entry] = {}
        for feed in feeds:
            members = await self.client.zrange(
                self.feed_key(feed), f"({after}", "+inf", byscore=True, offset=0, num=limit
            )
            for member in members:
                entry = _load(str(member))
                found[entry.id] = entry
        return [found[i] for i in sorted(found)[:limit]]

    async def latest_id(self) -> int:
        return int(await self.client.get(f"{self.prefix}seq") or 0)

    async def cat_counters(self, cat_id: uuid.UUID) -> dict[str, int]:
        found = await self.client.hgetall(f"{self.prefix}stats:cat:{cat_id}")
        return {name: int(found.get(name, 0)) for name in CAT_COUNTERS}

    async def platform_counters(self) -> dict[str, int]:
        found = await self.client.hgetall(f"{self.prefix}stats:platform")
        return {name: int(found.get(name, 0)) for name in PLATFORM_COUNTERS}

    # --- rebuilding ----------------------------------------------------------------------------

    async def start_rebuild(self) -> None:
        token = uuid.uuid4().hex
        flag = f"{self.prefix}rebuilding"
        if not await self.client.set(flag, token, nx=True, ex=_REBUILD_FLAG_TTL):
            raise Rebuilding("another rebuild of the activity read model is running")
        self._token = token
        # Every key but the entry counter (ids keep growing) and the flag itself.
        keep = {f"{self.prefix}seq", flag}
        batch: list[str] = []
        async for key in self.client.scan_iter(match=f"{_glob_escape(self.prefix)}*", count=1000):
            if key not in keep:
                batch.append(key)
            if len(batch) >= 500:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)

    async def finish_rebuild(self) -> None:
        if self._token:
            flag = f"{self.prefix}rebuilding"
            if await self.client.get(flag) == self._token:
                await self.client.delete(flag)
            self._token = ""

    async def close(self) -> None:
        await self.finish_rebuild()
        await self.client.aclose()


def _glob_escape(text: str) -> str:
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)
