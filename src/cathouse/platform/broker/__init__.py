"""Broker adapters: the relay publishes outbox events to a broker and workers consume them there.

``CATHOUSE_BROKER_URL`` picks one by scheme: ``nats://`` (JetStream), ``redis://`` or
``rediss://`` (Streams), ``kafka://host:port,…``. Unset, there is no broker: the relay hands
events to the workers' handlers in process and PostgreSQL's outbox is the log.

Each adapter implements :class:`Broker`; :mod:`cathouse.platform.broker.wire` is the message
format they share. A broker is itself a :class:`~cathouse.platform.outbox.relay.Publisher`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cathouse.platform.broker.base import Broker, BrokerUnavailable, ConsumerOptions
from cathouse.platform.settings import Settings

__all__ = ["Broker", "BrokerUnavailable", "ConsumerOptions", "broker_from_settings"]


def broker_from_settings(settings: Settings) -> Broker | None:
    """The broker ``CATHOUSE_BROKER_URL`` names (not started), or None when it is unset."""
    if settings.broker_url is None or not settings.broker_url.get_secret_value().strip():
        return None
    url = settings.broker_url.get_secret_value().strip()
    events = settings.events
    options = ConsumerOptions(
        backoff=events.consumer_backoff, max_backoff=events.consumer_max_backoff, lease=events.consumer_lease
    )
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("nats", "tls"):
        from cathouse.platform.broker.nats_js import NatsBroker

        return NatsBroker(
            [u.strip() for u in url.split(",") if u.strip()],
            prefix=events.broker_prefix,
            partitions=events.broker_partitions,
            publish_timeout=events.broker_publish_timeout,
            options=options,
        )
    if scheme in ("redis", "rediss"):
        from cathouse.platform.broker.redis_streams import RedisStreamsBroker

        return RedisStreamsBroker(
            url,
            prefix=events.broker_prefix,
            partitions=events.broker_partitions,
            publish_timeout=events.broker_publish_timeout,
            options=options,
        )
    if scheme == "kafka":
        from cathouse.platform.broker.kafka import KafkaBroker, bootstrap_servers

        return KafkaBroker(
            bootstrap_servers(url),
            prefix=events.broker_prefix,
            partitions=events.broker_partitions,
            publish_timeout=events.broker_publish_timeout,
            options=options,
        )
    raise ValueError(f"CATHOUSE_BROKER_URL: unknown scheme {scheme!r}; use nats://, redis://, rediss:// or kafka://")
