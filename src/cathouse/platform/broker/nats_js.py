"""NATS JetStream: one stream, a durable pull consumer per group and partition.

Written on nats-py rather than FastStream's ``NatsBroker``: per-aggregate order across the
members of a group needs a consumer that lets exactly one message of a partition be in flight
(``max_ack_pending=1``), one such consumer per partition so a group still works in parallel,
and a redelivery delay that grows with the delivery count (``nak(delay=…)``). FastStream would
hide the consumer layout we depend on and add nothing we use.

Layout (``<prefix>`` from ``EventSettings.broker_prefix``):

- stream ``<PREFIX>_EVENTS`` on ``<prefix>.events.>``, file storage, duplicate window 2 min;
- an event goes to ``<prefix>.events.<partition>.<aggregate_type>`` with its key in the
  ``cathouse-key`` header and its id as ``Nats-Msg-Id``, so a relay that publishes again after a
  crash is deduplicated by the server (within the window; consumers dedupe beyond it);
- group ``g`` has a durable consumer ``<g>_p<n>`` per partition, filtered on that partition,
  explicit ack, ``max_ack_pending=1``, deliver-all: every member of the group pulls from every
  partition, and JetStream hands a partition's next message to someone only once the last one
  was acknowledged. A failed handler naks with a growing delay; JetStream redelivers it before
  anything after it. A slow handler sends "in progress" so the ack wait does not run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.errors
import nats.js.errors
from loguru import logger
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from cathouse.platform.broker.base import BaseBroker, ConsumerOptions, Subscription, handle
from cathouse.platform.broker.wire import EVENT_ID_HEADER, KEY_HEADER, WireError, decode, encode, key_of, partition_of
from cathouse.platform.broker.wire import token as subject_token
from cathouse.platform.outbox.relay import Event, Handler

DUPLICATE_WINDOW = 120.0
FETCH_TIMEOUT = 5.0


class NatsBroker(BaseBroker[Subscription]):
    kind = "nats"
    event_errors = (nats.errors.MaxPayloadError,)
    unavailable_errors = (nats.errors.Error, OSError, TimeoutError)

    def __init__(
        self,
        servers: list[str],
        *,
        prefix: str = "cathouse",
        partitions: int = 8,
        publish_timeout: float = 5.0,
        retention: float = 7 * 24 * 3600.0,
        options: ConsumerOptions | None = None,
    ) -> None:
        super().__init__(prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=options)
        self.servers = servers
        self.stream = f"{prefix.upper().replace('-', '_')}_EVENTS"
        self.retention = retention
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    # -- connection ----------------------------------------------------------------------------

    async def _connect(self) -> None:
        nc = Client()

        async def quiet(exc: Exception) -> None:
            logger.debug("nats connection error", error=str(exc))

        try:
            # Reconnect forever once connected; the first connection is bounded (Connector retries).
            await asyncio.wait_for(
                nc.connect(
                    self.servers,
                    name="cathouse",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    error_cb=quiet,
                ),
                timeout=5,
            )
            js = nc.jetstream(timeout=self.publish_timeout)
            await self._ensure_stream(js)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        self._nc, self._js = nc, js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.events.>"],
            storage=StorageType.FILE,
            max_age=self.retention,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # it exists with other limits: take ours

    async def _disconnect(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = self._js = None

    # -- publishing ----------------------------------------------------------------------------

    def subject(self, event: Event) -> str:
        partition = partition_of(key_of(event), self.partitions)
        return f"{self.prefix}.events.{partition}.{subject_token(event.aggregate_type)}"

    async def _send(self, event: Event) -> None:
        assert self._js is not None
        headers = {"Nats-Msg-Id": event.id, KEY_HEADER: key_of(event), EVENT_ID_HEADER: event.id}
        await self._js.publish(
            self.subject(event), encode(event), timeout=self.publish_timeout, stream=self.stream, headers=headers
        )

    # -- consuming -----------------------------------------------------------------------------

    def _subscription(self, group: str, handler: Handler) -> Subscription:
        return Subscription(group, handler)

    def _start_consuming(self, subscription: Subscription) -> None:
        group, handler = subscription.group, subscription.handler
        for partition in range(self.partitions):
            self._loops.spawn(
                self._keep_consuming(
                    group,
                    functools.partial(self._pull, group, partition),
                    functools.partial(self._fetch, group, handler),
                ),
                name=f"nats-{group}-{partition}",
            )

    def durable(self, group: str, partition: int) -> str:
        return f"{subject_token(group)}_p{partition}"

    @contextlib.asynccontextmanager
    async def _pull(self, group: str, partition: int) -> AsyncIterator[Any]:
        assert self._js is not None
        name = self.durable(group, partition)
        config = ConsumerConfig(
            durable_name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.options.lease,
            max_deliver=-1,
            max_ack_pending=1,
            filter_subject=f"{self.prefix}.events.{partition}.>",
        )
        with contextlib.suppress(nats.js.errors.BadRequestError):  # exists, with settings of its own
            await self._js.add_consumer(self.stream, config)
        yield await self._js.pull_subscribe_bind(durable=name, stream=self.stream)

    async def _fetch(self, group: str, handler: Handler, sub: Any) -> None:
        while True:
            try:
                messages = await sub.fetch(1, timeout=FETCH_TIMEOUT)
            except TimeoutError:
                continue  # nothing new (nats' TimeoutError is an asyncio one)
            for msg in messages:
                with self._loops.busy():
                    await self._deliver(group, handler, msg)
            if self._loops.stopping:
                return

    async def _deliver(self, group: str, handler: Handler, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered or 1
        try:
            event = decode(msg.data, attempts=delivered - 1)
        except WireError as exc:
            logger.error("dropping a message that is not an event", group=group, subject=msg.subject, error=str(exc))
            await msg.term()
            return
        beat = asyncio.create_task(self._keep_alive(msg))
        try:
            ok = await handle(group, handler, event)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if ok:
            await msg.ack()
        else:
            await msg.nak(delay=self.options.retry_in(delivered))

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.options.lease / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()
