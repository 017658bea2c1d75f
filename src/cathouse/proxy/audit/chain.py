"""The chain: a record's canonical bytes, its hash, and appending a batch under the head's lock.

Each record's hash covers the previous record's hash and the record's own canonical bytes, its
``seq`` included, so the stored rows form one chain. Its head (``proxy.audit_chain``, one row)
is locked by every append, which keeps the chain linear when several proxy processes write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import uuid
from binascii import hexlify
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

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
# The canonical form, its keys in sorted order. Formatting by hand is about twice as fast as
# json.dumps with sort_keys, and gives the same bytes (tests/proxy/test_audit.py checks that);
# orjson is faster on ASCII but spells non-ASCII differently (bench/canonical.py).
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


class Appended(NamedTuple):
    """What one append stored: how many records, and the chain after it (what a checkpoint signs)."""

    records: int
    seq: int = 0
    hash: bytes = GENESIS_HASH
    pruned_through_seq: int = 0
    # The ``at`` of the record at ``seq``.
    record_at: datetime | None = None


async def append(session: AsyncSession, records: Sequence[AuditRecord]) -> Appended:
    """Chain ``records`` after the head, in the caller's transaction (which holds the head's lock
    until it ends). Returns how many were stored and where the chain then ends; a malformed
    record is dropped and logged."""
    prepared = []
    last_at = None
    for rec in records:
        try:
            prepared.append(_prepare(rec))
            last_at = rec.at
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            AUDIT_LOST.labels("malformed").inc()
            logger.error("audit record malformed; dropped", request_id=getattr(rec, "request_id", None), error=str(exc))
    if not prepared or last_at is None:
        return Appended(0)
    seq, prev, anchor, _ = await lock_head(session)
    lines = []
    for record in prepared:
        seq += 1
        line, prev = _link(record, seq, prev)
        lines.append(line)
    await _copy(session, b"".join(lines))
    await session.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_seq=seq, last_hash=prev))
    record_at = last_at if last_at.tzinfo is not None else last_at.replace(tzinfo=UTC)
    return Appended(len(prepared), seq, prev, anchor, record_at)


# What _prepare makes of a record: its canonical form up to ``"seq":`` and after the number, and
# its row in COPY's text format after the seq and the two hashes.
_Prepared = tuple[bytes, bytes, bytes]
_HEAD = (
    '{"api_key_id":%s,"at":"%s","bytes_in":%d,"bytes_out":%d,"cat_id":%s,"decision":%s,'
    '"installation_id":%s,"latency_ms":"%.3f","method":%s,"owner_id":%s,"path":%s,"request_id":%s,"seq":'
)
_TAIL = ',"status":%d,"upstream_status":%s,"user_id":%s}'
_STORED = "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.3f\t%d\t%d\n"
_COPY_COLUMNS = (
    "seq",
    "prev_hash",
    "hash",
    "at",
    "request_id",
    "user_id",
    "owner_id",
    "installation_id",
    "cat_id",
    "api_key_id",
    "method",
    "path",
    "decision",
    "status",
    "upstream_status",
    "latency_ms",
    "bytes_in",
    "bytes_out",
)
_INT32 = 2**31
_INT64 = 2**63
_NULL_UUID = ("null", "\\N")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_sha256 = hashlib.sha256


def _plain(value: object, limit: int) -> bool:
    """Whether ``value`` is stored and hashed as it is: short printable ASCII with no backslash,
    which COPY's text format and the canonical JSON both take unescaped."""
    return type(value) is str and len(value) <= limit and value.isascii() and value.isprintable() and "\\" not in value


def _uuid_forms(value: object) -> tuple[str, str]:
    """An id's canonical spelling (quoted JSON) and its spelling in COPY's text format."""
    if value is None:
        return _NULL_UUID
    return _spellings(value.int if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).int)


# A call's ids repeat (the same installation, cat, owner and key, call after call): their
# spellings are remembered rather than formatted afresh for every record.
@functools.lru_cache(maxsize=4096)
def _spellings(number: int) -> tuple[str, str]:
    text = str(uuid.UUID(int=number))
    return f'"{text}"', text


def _prepare(rec: AuditRecord) -> _Prepared:
    """Everything of a record's canonical form and stored row but its place in the chain.

    A record as the gateway makes it is taken as it is; any other goes through :func:`_row`
    first, which normalises what it can and raises on what it cannot. Either way the bytes hashed
    are :func:`canonical` of the row as PostgreSQL gives it back (the tests check both).
    """
    at, request_id, method, path, decision = rec.at, rec.request_id, rec.method, rec.path, rec.decision
    status, upstream, latency, bytes_in, bytes_out = (
        rec.status,
        rec.upstream_status,
        rec.latency_ms,
        rec.bytes_in,
        rec.bytes_out,
    )
    if (
        at.tzinfo is UTC
        and _plain(request_id, 128)
        and _plain(method, 16)
        and _plain(path, MAX_PATH)
        and _plain(decision, 32)
        and type(status) is int
        and -_INT32 <= status < _INT32
        and (upstream is None or (type(upstream) is int and -_INT32 <= upstream < _INT32))
        and type(latency) is float
        and latency - latency == 0.0  # finite
        and type(bytes_in) is int
        and -_INT64 <= bytes_in < _INT64
        and type(bytes_out) is int
        and -_INT64 <= bytes_out < _INT64
    ):
        # COPY's text format takes these as they are.
        texts = (request_id, method, path, decision)
    else:
        row = _row(rec)
        at, request_id, method, path, decision = (
            row["at"],
            row["request_id"],
            row["method"],
            row["path"],
            row["decision"],
        )
        status, upstream, latency, bytes_in, bytes_out = (
            row["status"],
            row["upstream_status"],
            row["latency_ms"],
            row["bytes_in"],
            row["bytes_out"],
        )
        texts = (_copy_text(request_id), _copy_text(method), _copy_text(path), _copy_text(decision))
    user, owner, installation, cat, key = (
        _uuid_forms(rec.user_id),
        _uuid_forms(rec.owner_id),
        _uuid_forms(rec.installation_id),
        _uuid_forms(rec.cat_id),
        _uuid_forms(rec.api_key_id),
    )
    moment = at.isoformat(timespec="microseconds")
    head = _HEAD % (
        key[0],
        moment,
        bytes_in,
        bytes_out,
        cat[0],
        _json_string(decision),
        installation[0],
        latency,
        _json_string(method),
        owner[0],
        _json_string(path),
        _json_string(request_id),
    )
    upstream_json = "null" if upstream is None else str(upstream)
    tail = _TAIL % (status, upstream_json, user[0])
    stored = _STORED % (
        moment,
        texts[0],
        user[1],
        owner[1],
        installation[1],
        cat[1],
        key[1],
        texts[1],
        texts[2],
        texts[3],
        status,
        "\\N" if upstream is None else upstream_json,
        latency,
        bytes_in,
        bytes_out,
    )
    return head.encode(), tail.encode(), stored.encode()


def _link(prepared: _Prepared, seq: int, prev: bytes) -> tuple[bytes, bytes]:
    """A prepared record's row in COPY's text format at ``seq`` after ``prev``, and its hash."""
    head, tail, stored = prepared
    digest = _sha256(HASH_DOMAIN + prev + b"%s%d%s" % (head, seq, tail)).digest()
    return b"%d\t\\\\x%s\t\\\\x%s\t%s" % (seq, hexlify(prev), hexlify(digest), stored), digest


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


async def _copy(session: AsyncSession, data: bytes) -> None:
    """Store rows given in COPY's text format on the session's own connection (so in its
    transaction). The rows are formatted with the canonical forms, from the same pieces: an
    INSERT, or COPY's binary format, spends more CPU per record than the proxy spends on a call."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    # bytes would be taken for a file name: a memoryview is read as the data itself.
    await driver.copy_to_table(
        LOG.name, schema_name=LOG.schema, columns=_COPY_COLUMNS, source=memoryview(data), format="text"
    )
