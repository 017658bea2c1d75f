"""Kafka: one topic, keyed by aggregate, a consumer group per subscriber group.

Written on aiokafka rather than FastStream's ``KafkaBroker``: a failed handler must be retried
before anything after it in its partition, without stopping the consumer's other partitions,
which takes seeking back and pausing just that partition, and committing each offset only once
its handler returned; FastStream's subscriber commits or skips per message and hides the
consumer needed for that.

- topic ``<prefix>.events`` (created with ``broker_partitions`` partitions if missing; create
  it yourself with the replication your cluster needs);
- the message key is ``"<aggregate_type>:<aggregate_id>"``: the producer's murmur2 partitioner
  puts an aggregate's events on one partition, in order; the value is the wire JSON;
- the producer waits for ``acks=all`` and is idempotent, so ``publish`` returns once the event
  is replicated, and its own retries do not duplicate it;
- group ``g`` consumes as Kafka consumer group ``<prefix>.<g>``, auto-commit off, from the
  earliest kept offset when new. Each partition's messages are handled one at a time and its
  offset committed after the handler returns. A failure seeks the partition back to the failed
  message and pauses it for the backoff; the other partitions go on.

``kafka://host1:9092,host2:9092`` names the bootstrap servers (plaintext; no SASL/TLS yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError
from loguru import logger

from cathouse.platform.broker.base import BaseBroker, ConsumerOptions, Subscription, handle
from cathouse.platform.broker.wire import EVENT_ID_HEADER, WireError, decode, encode, key_of, token
from cathouse.platform.outbox.relay import Event, Handler

DEFAULT_PORT = 9092


def bootstrap_servers(url: str) -> list[str]:
    """``kafka://a:9092,b`` → ``["a:9092", "b:9092"]``."""
    netloc = urlsplit(url).netloc or url.split("://", 1)[-1]
    servers = []
    for part in netloc.split(","):
        host = part.strip().rsplit("@", 1)[-1]
        if not host:
            continue
        servers.append(host if ":" in host.rsplit("]", 1)[-1] else f"{host}:{DEFAULT_PORT}")
    if not servers:
        raise ValueError(f"no Kafka bootstrap servers in {url!r}")
    return servers


class KafkaBroker(BaseBroker[Subscription]):
    kind = "kafka"
    event_errors = (MessageSizeTooLargeError,)
    unavailable_errors = (KafkaError, OSError, TimeoutError)

    def __init__(
        self,
        servers: list[str],
        *,
        prefix: str = "cathouse",
        partitions: int = 8,
        replication_factor: int = 1,
        publish_timeout: float = 5.0,
        options: ConsumerOptions | None = None,
    ) -> None:
        super().__init__(prefix=prefix, partitions=partitions, publish_timeout=publish_timeout, options=options)
        self.servers = servers
        self.topic = f"{prefix}.events"
        self.replication_factor = replication_factor
        self._producer: Any = None

    def producer_config(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.servers,
            "client_id": f"{self.prefix}-relay",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 0,
            "request_timeout_ms": int(self.publish_timeout * 1000),
        }

    def consumer_config(self, group: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.servers,
            "group_id": self.group_id(group),
            "client_id": f"{self.prefix}-{token(group)}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            # A handler may be retried for a while; past this the member is replaced.
            "max_poll_interval_ms": 300_000,
        }

    def group_id(self, group: str) -> str:
        return f"{self.prefix}.{token(group)}"

    @staticmethod
    def message(event: Event) -> dict[str, Any]:
        """What ``send_and_wait`` gets for an event (besides the topic)."""
        return {
            "key": key_of(event).encode(),
            "value": encode(event),
            "headers": [(EVENT_ID_HEADER, event.id.encode())],
        }

    # -- connection ----------------------------------------------------------------------------

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.servers, client_id=f"{self.prefix}-admin")
        await admin.start()
        try:
            topic = NewTopic(self.topic, num_partitions=self.partitions, replication_factor=self.replication_factor)
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
        finally:
            await admin.close()

    async def _connect(self) -> None:
        try:
            await self._ensure_topic()
        except KafkaError as exc:  # no rights to create topics, say: it may exist already
            logger.warning("could not make sure the Kafka topic exists", topic=self.topic, error=str(exc))
        producer = AIOKafkaProducer(**self.producer_config())
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _disconnect(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
            self._producer = None

    async def _send(self, event: Event) -> None:
        await asyncio.wait_for(self._producer.send_and_wait(self.topic, **self.message(event)), self.publish_timeout)

    # -- consuming -----------------------------------------------------------------------------

    def _subscription(self, group: str, handler: Handler) -> Subscription:
        return Subscription(group, handler)

    def _start_consuming(self, subscription: Subscription) -> None:
        group, handler = subscription.group, subscription.handler
        self._loops.spawn(
            self._keep_consuming(
                group, functools.partial(self._consumer, group), functools.partial(self._poll, group, handler)
            ),
            name=f"kafka-{group}",
        )

    @contextlib.asynccontextmanager
    async def _consumer(self, group: str) -> AsyncIterator[Any]:
        consumer = AIOKafkaConsumer(self.topic, **self.consumer_config(group))
        try:
            await consumer.start()
            yield consumer
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _poll(self, group: str, handler: Handler, consumer: Any) -> None:
        paused: dict[TopicPartition, float] = {}
        failures: dict[tuple[TopicPartition, int], int] = {}
        while not self._loops.stopping:
            now = time.monotonic()
            due = [tp for tp, at in paused.items() if at <= now]
            for tp in due:
                del paused[tp]
            assigned = consumer.assignment()
            if resumable := [tp for tp in due if tp in assigned]:
                consumer.resume(*resumable)
            batch = await consumer.getmany(timeout_ms=500, max_records=100)
            with self._loops.busy():
                await asyncio.gather(
                    *(self._partition(group, handler, consumer, tp, rs, paused, failures) for tp, rs in batch.items())
                )

    async def _partition(
        self,
        group: str,
        handler: Handler,
        consumer: Any,
        tp: TopicPartition,
        records: list[Any],
        paused: dict[TopicPartition, float],
        failures: dict[tuple[TopicPartition, int], int],
    ) -> None:
        for record in records:
            try:
                event = decode(record.value, attempts=failures.get((tp, record.offset), 0))
            except WireError as exc:
                logger.error("skipping a non-event message", group=group, offset=record.offset, error=str(exc))
                ok = True
            else:
                ok = await handle(group, handler, event)
            if not ok:
                n = failures[(tp, record.offset)] = failures.get((tp, record.offset), 0) + 1
                # Back to the failed message, and nothing of this partition until the backoff is over.
                consumer.seek(tp, record.offset)
                consumer.pause(tp)
                paused[tp] = time.monotonic() + self.options.retry_in(n)
                return
            failures.pop((tp, record.offset), None)
            try:
                await consumer.commit({tp: record.offset + 1})
            except KafkaError as exc:  # a rebalance took the partition: its new owner starts here
                logger.info("kafka commit refused; the partition moved", group=group, error=str(exc))
                return
