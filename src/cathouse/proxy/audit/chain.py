"""The chain: a record's canonical bytes, its hash, and appending a batch under the head's lock.

Each record's hash covers the previous record's hash and the record's own canonical bytes, its
``seq`` included, so the stored rows form one chain. Its head (``proxy.audit_chain``, one row)
is locked by every append, which keeps the chain linear when several proxy processes write.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, cast

import asyncpg
from loguru import logger
from sqlalchemy import Row, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.proxy.audit.records import AUDIT_LOST, GENESIS_HASH, HASH_DOMAIN, MAX_PATH, AuditRecord
from cathouse.proxy.models import AuditChain, AuditLog


def _text(value: object, limit: int) -> str:
    if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
        return value  # what the gateway hands over: checked in a fraction of the slow path's time
    # PostgreSQL text holds neither NUL nor lone surrogates; either would fail the whole batch.
    text = str(value).replace("\x00", "\ufffd")[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def _int(value: Any, bits: int) -> int:
    number = value if type(value) is int else int(value)
    if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise ValueError(f"{number} does not fit in {bits} bits")
    return number


def _uuid(value: Any) -> uuid.UUID | None:
    # asyncpg hands out its own subclass of UUID, which COPY takes as it is.
    return value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _row(rec: AuditRecord) -> dict[str, Any]:
    """The record as it is stored, so that what is hashed now re-hashes the same when read back.

    Timestamps keep microseconds in UTC and latency three decimals: exactly what PostgreSQL returns.
    """
    at = rec.at if rec.at.tzinfo is not None else rec.at.replace(tzinfo=UTC)
    latency = float(rec.latency_ms)
    return {
        "at": at.astimezone(UTC),
        "request_id": _text(rec.request_id, 128),
        "user_id": _uuid(rec.user_id),
        "owner_id": _uuid(rec.owner_id),
        "installation_id": _uuid(rec.installation_id),
        "cat_id": _uuid(rec.cat_id),
        "api_key_id": _uuid(rec.api_key_id),
        "method": _text(rec.method, 16),
        "path": _text(rec.path, MAX_PATH),
        "decision": _text(rec.decision, 32),
        "status": _int(rec.status, 32),
        "upstream_status": None if rec.upstream_status is None else _int(rec.upstream_status, 32),
        "latency_ms": round(latency, 3) if math.isfinite(latency) else 0.0,
        "bytes_in": _int(rec.bytes_in, 64),
        "bytes_out": _int(rec.bytes_out, 64),
    }


# The JSON string escaping json.dumps(ensure_ascii=True) uses (its C version where there is one).
_json_string = json.encoder.encode_basestring_ascii
# The canonical form, its keys in sorted order. Formatting by hand is four times faster than a
# JSON encoder with sort_keys, and gives the same bytes (tests/proxy/test_audit.py checks that).
_CANONICAL = (
    '{"api_key_id":%s,"at":"%s","bytes_in":%d,"bytes_out":%d,"cat_id":%s,"decision":%s,'
    '"installation_id":%s,"latency_ms":"%.3f","method":%s,"owner_id":%s,"path":%s,"request_id":%s,'
    '"seq":%d,"status":%d,"upstream_status":%s,"user_id":%s}'
)


def _json_uuid(value: object) -> str:
    return "null" if value is None else f'"{value}"'


def canonical(row: Mapping[Any, Any]) -> bytes:
    """The bytes a record's hash covers: sorted-key JSON (no spaces, ASCII only), every value in
    one fixed spelling: the time in UTC with microseconds, the latency with three decimals."""
    upstream = row["upstream_status"]
    return (
        _CANONICAL
        % (
            _json_uuid(row["api_key_id"]),
            row["at"].astimezone(UTC).isoformat(timespec="microseconds"),
            int(row["bytes_in"]),
            int(row["bytes_out"]),
            _json_uuid(row["cat_id"]),
            _json_string(row["decision"]),
            _json_uuid(row["installation_id"]),
            row["latency_ms"],
            _json_string(row["method"]),
            _json_uuid(row["owner_id"]),
            _json_string(row["path"]),
            _json_string(row["request_id"]),
            int(row["seq"]),
            int(row["status"]),
            "null" if upstream is None else int(upstream),
            _json_uuid(row["user_id"]),
        )
    ).encode()


def link_hash(prev_hash: bytes, row: Mapping[Any, Any]) -> bytes:
    # prev_hash is always 32 bytes, so the concatenation cannot be read two ways.
    return hashlib.sha256(HASH_DOMAIN + prev_hash + canonical(row)).digest()


CHAIN = cast(Table, AuditChain.__table__)
LOG = cast(Table, AuditLog.__table__)
HEAD = select(
    AuditChain.last_seq, AuditChain.last_hash, AuditChain.pruned_through_seq, AuditChain.pruned_through_hash
).where(AuditChain.id == 1)


async def lock_head(session: AsyncSession) -> Row[int, bytes, int, bytes]:
    head = (await session.execute(HEAD.with_for_update())).one_or_none()
    if head is None:
        # A wiped schema (TRUNCATE) starts the chain again from genesis rather than stopping audit.
        await session.execute(
            pg_insert(CHAIN)
            .values(id=1, last_seq=0, last_hash=GENESIS_HASH, pruned_through_seq=0, pruned_through_hash=GENESIS_HASH)
            .on_conflict_do_nothing()
        )
        head = (await session.execute(HEAD.with_for_update())).one()
    return head


async def append(session: AsyncSession, records: Sequence[AuditRecord]) -> int:
    """Chain ``records`` after the head, in the caller's transaction (which holds the head's lock
    until it ends). Returns how many were stored; a malformed record is dropped and logged."""
    rows = []
    for rec in records:
        try:
            rows.append(_row(rec))
        except (TypeError, ValueError, AttributeError) as exc:
            AUDIT_LOST.labels("malformed").inc()
            logger.error("audit record malformed; dropped", request_id=getattr(rec, "request_id", None), error=str(exc))
    if not rows:
        return 0
    seq, prev, _, _ = await lock_head(session)
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        prev = row["hash"] = link_hash(prev, row)
    await _copy(session, rows)
    await session.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_seq=seq, last_hash=prev))
    return len(rows)


_COLUMNS = tuple(column.name for column in LOG.columns)


async def _copy(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Store ``rows`` with COPY on the session's own connection (so in its transaction): an
    INSERT of many rows spends more CPU building its parameters than the proxy spends on a call."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    await driver.copy_records_to_table(
        LOG.name, schema_name=LOG.schema, columns=_COLUMNS, records=[tuple(row[c] for c in _COLUMNS) for row in rows]
    )
