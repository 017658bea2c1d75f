"""The audit record's canonical form: the hand-written formatter against JSON encoders with sorted keys.

Every audit record is hashed over its canonical bytes when it is written, and again when the
chain is verified (``cathouse.proxy.audit.verify`` re-hashes every row it reads), so their
cost is paid per proxied call and per record verified. Four ways to make the same bytes from a
row as PostgreSQL hands it back are timed in one run, as CPU time of this process:

- ``json.dumps(doc, sort_keys=True, separators=(",", ":"))`` of the row with its values in
  their fixed spelling (time in UTC with microseconds, latency with three decimals, ids as
  text): the definition, and the reference;
- ``orjson.dumps(doc, option=OPT_SORT_KEYS)`` of the same, when orjson is installed;
- ``cathouse.proxy.audit.canonical``: one ``%`` template in sorted key order, strings escaped
  by the ``json`` module's own C escaper.

Two rows: what the gateway writes (ASCII text), and one with a non-ASCII path. Whether each
encoder gives the very bytes of the definition is printed too: orjson writes non-ASCII as UTF-8
where the definition escapes it, so it would change every such record's hash.

    .venv/bin/python bench/canonical.py --records 200000
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from cathouse.proxy.audit import UUID_FIELDS, canonical

orjson: ModuleType | None
try:
    import orjson
except ImportError:  # optional: the bench extra installs it
    orjson = None

ROW: dict[str, Any] = {
    "seq": 1_234_567,
    "at": datetime(2026, 5, 17, 9, 30, 12, 345678, tzinfo=UTC),
    "request_id": "5f0c8f0e6a2b4c1d9e7f3a2b1c0d9e8f",
    "user_id": uuid.UUID("0b8e5f4c-3d2a-4b1c-9e8f-7a6b5c4d3e2f"),
    "owner_id": uuid.UUID("1c9f6a5d-4e3b-4c2d-8f9a-8b7c6d5e4f3a"),
    "installation_id": uuid.UUID("2d0a7b6e-5f4c-4d3e-9a0b-9c8d7e6f5a4b"),
    "cat_id": uuid.UUID("3e1b8c7f-6a5d-4e4f-8b1c-0d9e8f7a6b5c"),
    "api_key_id": None,
    "method": "POST",
    "path": "/v1/events/purr?source=cathouse",
    "decision": "allowed",
    "status": 200,
    "upstream_status": 200,
    "latency_ms": 12.345,
    "bytes_in": 212,
    "bytes_out": 1830,
}
NON_ASCII = {**ROW, "path": "/v1/chats/café/ñam?q=über"}


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    """The row with each value in its one fixed spelling, as the definition has it."""
    doc = dict(row)
    doc["at"] = row["at"].astimezone(UTC).isoformat(timespec="microseconds")
    doc["latency_ms"] = f"{row['latency_ms']:.3f}"
    for name in UUID_FIELDS:
        if row[name] is not None:
            doc[name] = str(row[name])
    return doc


def with_json(row: dict[str, Any]) -> bytes:
    return json.dumps(_doc(row), sort_keys=True, separators=(",", ":")).encode()


def with_orjson(row: dict[str, Any]) -> bytes:
    assert orjson is not None
    encoded: bytes = orjson.dumps(_doc(row), option=orjson.OPT_SORT_KEYS)
    return encoded


def per_record(make: Callable[[dict[str, Any]], bytes], row: dict[str, Any], records: int) -> float:
    """CPU microseconds per record."""
    started = time.process_time()
    for _ in range(records):
        make(row)
    return (time.process_time() - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()

    makers: dict[str, Callable[[dict[str, Any]], bytes]] = {"json.dumps, sort_keys (reference)": with_json}
    if orjson is not None:
        makers["orjson, OPT_SORT_KEYS"] = with_orjson
    makers["cathouse.proxy.audit.canonical"] = canonical

    rows = {"gateway row (ASCII)": ROW, "non-ASCII path": NON_ASCII}
    results: dict[str, dict[str, tuple[float, bool]]] = {}
    for row_name, row in rows.items():
        expected = with_json(row)
        results[row_name] = {}
        for name, make in makers.items():
            per_record(make, row, min(args.records, 10_000))  # warm up
            results[row_name][name] = (per_record(make, row, args.records), make(row) == expected)

    if orjson is None:
        print("orjson is not installed: only json.dumps is compared (the bench extra installs it)")
    print(f"{args.records} records per encoder and row")
    print(f"{'row':<22} {'encoder':<36} {'µs CPU/record':>14} {'÷ json.dumps':>13} {'same bytes':>11}")
    for row_name, by_encoder in results.items():
        reference = next(iter(by_encoder.values()))[0]
        for name, (micros, same) in by_encoder.items():
            print(
                f"{row_name:<22} {name:<36} {micros:>14.2f} {micros / reference:>13.2f} {'yes' if same else 'NO':>11}"
            )


if __name__ == "__main__":
    main()
