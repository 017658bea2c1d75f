"""Redis Streams: a stream per partition, a consumer group per subscriber group, a lease per partition.

Written on redis-py rather than FastStream's ``RedisBroker``: a Redis consumer group hands
entries to whichever member asks, so two members would handle one aggregate's events at once,
and a failed entry waits for a claim while later ones go ahead. Per-aggregate order needs one
reader per partition at a time, which this module arranges with leases.

Layout (``<prefix>`` from ``EventSettings.broker_prefix``, ``<g>`` a subscriber group):

- ``<prefix>:events:<n>``: the stream of partition ``n`` (an event's partition comes from its
  key); each entry holds ``event`` (the wire JSON), ``key`` and ``id``. ``XADD`` trims it to
  about ``max_len`` entries, so size it above what the slowest group may lag behind.
- consumer group ``<g>`` on every partition stream, created at ``0`` (a new group reads all
  that is kept), and inside it one consumer per partition, ``p<n>``, whichever process holds
  the partition. A new owner reads ``p<n>``'s pending entries first (``XREADGROUP … 0``): what
  a dead or departing owner read but did not acknowledge comes again, in order, before new
  entries (``>``). No entry is ever stuck with a consumer that is gone, so no ``XAUTOCLAIM``.
- ``<prefix>:group:<g>:members``: a sorted set of live members (score: heartbeat deadline).
  Each member takes the partitions ``n`` with ``n % members == its rank``.
- ``<prefix>:group:<g>:lease:<n>``: who reads partition ``n`` now (``SET NX PX``, renewed
  every third of the lease, dropped when given up). A member that cannot renew (Redis away)
  stops reading when the lease runs out, since someone else may then hold it.

A failed handler is retried in place after a growing pause; nothing behind it in the partition
is read meanwhile. Publishing is durable as far as Redis is: run it with ``appendonly yes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from loguru import logger

from cathouse.platform.broker.base import (
    BaseBroker,
    ConsumerOptions,
    Loops,
    Subscription,
    handle,
    reconnect_delay,
)
from cathouse.platform.broker.wire import WireError, decode, encode, key_of, partition_of, token
from cathouse.platform.outbox.relay import Event, Handler

READ_COUNT = 50
BLOCK_MS = 1000

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass
class _Reader:
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # asked to give the partition up
    done: asyncio.Event = field(default_factory=asyncio.Event)  # it has: the lease may go


@dataclass
class _Subscription(Subscription):
    member: str = field(kw_only=True)
    owned: dict[int, _Reader] = field(default_factory=dict)


class RedisStreamsBroker(BaseBroker[_Subscription]):
    kind = "redis"
    unavailable_errors = (redis.exceptions.RedisError, OSError, TimeoutError)

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cathouse",
        partitions: int = 8,
        publish_timeout: float = 5.0,
        max_len: int = 1_000_000,
        options: ConsumerOptions | None = None,
    ) -> None:
        super().__init__(prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=options)
        self.url = url
        self.max_len = max_len
        self._redis: aioredis.Redis | None = None
        self._readers = Loops()

    # -- names ---------------------------------------------------------------------------------

    def stream(self, partition: int) -> str:
        return f"{self.prefix}:events:{partition}"

    def _members(self, group: str) -> str:
        return f"{self.prefix}:group:{group}:members"

    def _lease(self, group: str, partition: int) -> str:
        return f"{self.prefix}:group:{group}:lease:{partition}"

    # -- connection ----------------------------------------------------------------------------

    async def _connect(self) -> None:
        client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=2,
            # Above the blocking read's wait, so a read that waits is not taken for a dead server.
            socket_timeout=max(self.publish_timeout, BLOCK_MS / 1000 + 5),
        )
        try:
            await client.ping()
            for sub in self._subscriptions:
                await self._ensure_group(client, sub.group)
        except BaseException:
            await client.aclose()
            raise
        self._redis = client

    async def _ensure_group(self, client: aioredis.Redis, group: str) -> None:
        for partition in range(self.partitions):
            try:
                await client.xgroup_create(self.stream(partition), group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _disconnect(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- publishing ----------------------------------------------------------------------------

    async def _send(self, event: Event) -> None:
        assert self._redis is not None
        key = key_of(event)
        stream = self.stream(partition_of(key, self.partitions))
        await asyncio.wait_for(
            self._redis.xadd(stream, {"event": encode(event), "key": key, "id": event.id}, maxlen=self.max_len),
            self.publish_timeout,
        )

    # -- consuming -----------------------------------------------------------------------------

    def _subscription(self, group: str, handler: Handler) -> _Subscription:
        member = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return _Subscription(token(group), handler, member=member)

    def _start_consuming(self, subscription: _Subscription) -> None:
        self._loops.spawn(self._coordinate(subscription), name=f"redis-{subscription.group}-coordinator")

    async def _leave(self) -> None:
        """Hand the partitions over at once rather than after the lease runs out."""
        await self._readers.stop()
        if self._redis is None:
            return
        for sub in self._subscriptions:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                for partition in list(sub.owned):
                    await self._redis.eval(_RELEASE, 1, self._lease(sub.group, partition), sub.member)
                await self._redis.zrem(self._members(sub.group), sub.member)
            sub.owned.clear()

    async def _coordinate(self, sub: _Subscription) -> None:
        """Keep this member's heartbeat and leases, and start or stop its partitions' readers."""
        lease_ms = int(self.options.lease * 1000)
        renewed = time.monotonic()
        # Also checked here: redis-py can swallow the cancellation that stopping sends mid-command.
        while not self._loops.stopping:
            await self._connector.ready.wait()
            assert self._redis is not None
            try:
                await self._rebalance(sub, lease_ms)
                renewed = time.monotonic()
            except (redis.exceptions.RedisError, OSError) as exc:
                logger.debug("redis coordinator could not renew", group=sub.group, error=str(exc))
                if time.monotonic() - renewed > self.options.lease * 0.9:
                    # Someone else may hold them by now: stop reading until they are ours again.
                    for reader in sub.owned.values():
                        reader.stop.set()
                    sub.owned.clear()
            await asyncio.sleep(self.options.lease / 3)

    async def _rebalance(self, sub: _Subscription, lease_ms: int) -> None:
        assert self._redis is not None
        r, members_key = self._redis, self._members(sub.group)
        now_ms = int(time.time() * 1000)
        await r.zadd(members_key, {sub.member: now_ms + lease_ms})
        await r.zremrangebyscore(members_key, "-inf", now_ms)
        members = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in await r.zrange(members_key, 0, -1))
        rank = members.index(sub.member) if sub.member in members else 0
        wanted = {p for p in range(self.partitions) if p % max(len(members), 1) == rank}
        for partition, reader in list(sub.owned.items()):
            lease = self._lease(sub.group, partition)
            if reader.done.is_set():  # its reader has finished: free the partition
                await r.eval(_RELEASE, 1, lease, sub.member)
                del sub.owned[partition]
                continue
            if partition not in wanted:
                reader.stop.set()  # it finishes its current entry; the lease is kept until then
            if not await r.eval(_RENEW, 1, lease, sub.member, lease_ms):
                reader.stop.set()  # lost (expired while Redis was away): someone else may read it
                del sub.owned[partition]
        for partition in wanted - sub.owned.keys():
            if await r.set(self._lease(sub.group, partition), sub.member, nx=True, px=lease_ms):
                reader = _Reader()
                sub.owned[partition] = reader
                self._readers.spawn(self._read(sub, partition, reader), name=f"redis-{sub.group}-{partition}")

    async def _read(self, sub: _Subscription, partition: int, reader: _Reader) -> None:
        try:
            await self._read_partition(sub, partition, reader.stop)
        finally:
            reader.done.set()

    async def _read_partition(self, sub: _Subscription, partition: int, stop: asyncio.Event) -> None:
        """Handle one partition in order while this member holds it: its pending entries first."""
        stream, consumer = self.stream(partition), f"p{partition}"
        backlog = True
        failures = 0
        while not stop.is_set() and not self._readers.stopping:
            assert self._redis is not None
            try:
                reply: Any = await self._redis.xreadgroup(
                    sub.group,
                    consumer,
                    {stream: "0" if backlog else ">"},
                    count=READ_COUNT,
                    block=None if backlog else BLOCK_MS,
                )
                failures = 0
            except (redis.exceptions.RedisError, OSError) as exc:
                failures += 1
                logger.debug("redis read failed", group=sub.group, partition=partition, error=str(exc))
                await asyncio.sleep(reconnect_delay(failures, cap=5.0))
                if "NOGROUP" in str(exc):  # Redis came back without its data: start the group again
                    with contextlib.suppress(redis.exceptions.RedisError, OSError):
                        await self._ensure_group(self._redis, sub.group)
                continue
            entries = reply[0][1] if reply else []
            if backlog and not entries:
                backlog = False
                continue
            for entry_id, fields in entries:
                with self._readers.busy():
                    if not await self._deliver(sub, stream, entry_id, fields, stop):
                        stop.set()  # given up mid-retry: the next owner gets it again
                        return

    async def _deliver(
        self, sub: _Subscription, stream: str, entry_id: bytes, fields: dict[bytes, bytes] | None, stop: asyncio.Event
    ) -> bool:
        """Handle one entry until it succeeds (then acknowledge it) or the partition is given up."""
        assert self._redis is not None
        failures = 0
        while True:
            try:
                event = decode((fields or {})[b"event"], attempts=failures)
            except (WireError, KeyError):
                # Trimmed away while pending, or not ours: nothing to handle.
                logger.error("dropping a stream entry that is not an event", group=sub.group, entry=entry_id)
                break
            if await handle(sub.group, sub.handler, event):
                break
            failures += 1
            if stop.is_set() or self._readers.stopping:
                return False
            await asyncio.sleep(self.options.retry_in(failures))
        for attempt in range(5):
            try:
                await self._redis.xack(stream, sub.group, entry_id)
                return True
            except (redis.exceptions.RedisError, OSError):
                # Unacknowledged, it comes again (handlers dedupe by event id); try a little first.
                await asyncio.sleep(0.2 * 2**attempt)
        return False
