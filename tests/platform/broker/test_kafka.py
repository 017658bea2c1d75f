"""The Kafka adapter without a server: configuration, message shape, key and partition choice.

Its behaviour against a server is in test_base.py, run when ``CATHOUSE_TEST_KAFKA_URL`` is set.
"""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from cathouse.platform.broker import BrokerUnavailable, broker_from_settings
from cathouse.platform.broker.kafka import KafkaBroker, bootstrap_servers
from cathouse.platform.broker.wire import decode
from cathouse.platform.settings import Settings
from tests.platform.broker.conftest import event


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://k1:9092", ["k1:9092"]),
        ("kafka://k1:9093,k2,k3:9094", ["k1:9093", "k2:9092", "k3:9094"]),
        ("kafka://[::1]:9092", ["[::1]:9092"]),
    ],
)
def test_the_url_names_the_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert bootstrap_servers(url) == servers


def test_settings_make_a_kafka_broker_with_the_topic_and_partitions_asked_for() -> None:
    settings = Settings(
        _env_file=None,
        broker_url="kafka://k1:9092,k2:9092",  # type: ignore[arg-type]
        events={"broker_prefix": "shop", "broker_partitions": 12},  # type: ignore[arg-type]
    )
    broker = broker_from_settings(settings)
    assert isinstance(broker, KafkaBroker)
    assert broker.servers == ["k1:9092", "k2:9092"]
    assert (broker.topic, broker.partitions) == ("shop.events", 12)
    assert broker.group_id("activity") == "shop.activity"


def test_the_producer_waits_for_every_replica_and_does_not_duplicate_its_retries() -> None:
    config = KafkaBroker(["k:9092"]).producer_config()
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True


def test_consumers_commit_only_by_hand_and_a_new_group_reads_from_the_start() -> None:
    config = KafkaBroker(["k:9092"]).consumer_config("catalog")
    assert config["enable_auto_commit"] is False
    assert config["auto_offset_reset"] == "earliest"
    assert config["group_id"] == "cathouse.catalog"


def test_a_message_is_keyed_by_aggregate_and_carries_the_event() -> None:
    e = event("42", 1, aggregate_type="installation")
    message = KafkaBroker.message(e)
    assert message["key"] == b"installation:42"
    assert decode(message["value"]) == e
    assert ("cathouse-event-id", e.id.encode()) in message["headers"]


def test_one_aggregate_always_lands_on_one_partition() -> None:
    partitions = list(range(8))
    partition = DefaultPartitioner()
    keys = [KafkaBroker.message(event(f"agg-{i}", 0))["key"] for i in range(100)]
    chosen = {key: partition(key, partitions, partitions) for key in keys}
    assert all(partition(key, partitions, partitions) == chosen[key] for key in keys)
    assert len(set(chosen.values())) > 1, "different aggregates spread over partitions"


async def test_publishing_without_a_reachable_cluster_is_unavailable_not_lost() -> None:
    broker = KafkaBroker(["127.0.0.1:1"], publish_timeout=1.0)
    await broker.start()  # does not raise: it keeps connecting in the background
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.publish(event("a", 0))
    finally:
        await broker.stop()


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5672", "mqtt://x"])
def test_an_unknown_scheme_is_refused_with_the_choices(url: str) -> None:
    settings = Settings(_env_file=None, broker_url=url)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nats://, redis://, rediss:// or kafka://"):
        broker_from_settings(settings)


def test_no_broker_url_means_no_broker() -> None:
    assert broker_from_settings(Settings(_env_file=None)) is None
