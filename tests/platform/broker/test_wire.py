from __future__ import annotations

import json

import pytest

from cathouse.platform.broker.wire import WireError, decode, encode, key_of, partition_of, token
from tests.platform.broker.conftest import event


def test_an_event_survives_encoding_with_every_field() -> None:
    e = event("cat-1", 3)
    assert decode(encode(e)) == e


def test_the_wire_json_names_every_field_and_not_the_outbox_attempts() -> None:
    body = json.loads(encode(event("cat-1", 3)))
    assert set(body) == {
        "id",
        "seq",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "schema_version",
        "payload",
        "occurred_at",
        "request_id",
    }


def test_a_consumer_sees_earlier_deliveries_as_attempts() -> None:
    assert decode(encode(event("cat-1", 0)), attempts=2).attempts == 2


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"id": "x"}', b"[1, 2]"])
def test_what_is_not_an_event_is_refused_clearly(data: bytes) -> None:
    with pytest.raises(WireError, match="not a Cat House event"):
        decode(data)


def test_the_key_is_the_aggregate_and_fixes_the_partition() -> None:
    e = event("9b1e", 0, aggregate_type="installation")
    assert key_of(e) == "installation:9b1e"
    # Stable across processes (unlike hash()): these values are what other processes compute too.
    assert partition_of("installation:9b1e", 8) == partition_of("installation:9b1e", 8)
    assert partition_of("cat:a", 8) == 5  # CRC-32: changing it would move keys between partitions
    assert {partition_of(f"cat:{i}", 8) for i in range(200)} == set(range(8))


def test_names_become_safe_tokens() -> None:
    assert token("catalog") == "catalog"
    assert token("a.b c*>") == "a_b_c__"
