"""The audit log: one record per call through the proxy, chained by hashes so that editing,
deleting or reordering a stored record shows.

The hot path builds an :class:`AuditRecord` and hands it to :meth:`AuditWriter.record`, which
only appends to a queue; the writer's task stores the queue in batches. Each record's hash
covers the previous record's hash and the record's own canonical bytes, its ``seq`` included,
so the stored rows form one chain. Its head (``proxy.audit_chain``, one row) is locked by every
flush, which is what keeps the chain linear when several proxy processes write at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import uuid
import weakref
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import unquote_plus

import asyncpg
from loguru import logger
from prometheus_client import Counter, Gauge
from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.platform.db import sessionmaker
from cathouse.platform.settings import Settings
from cathouse.proxy.models import AuditChain, AuditLog

Decision = Literal[
    "allowed",
    "unauthenticated",
    "not_found",
    "inactive",
    "no_permission",
    "rate_limited",
    "circuit_open",
    "upstream_error",
    "upstream_timeout",
    "too_large",
    "blocked_address",
    "limiter_unavailable",
    "bad_request",
    "client_closed",
    "error",
]
DECISIONS: tuple[str, ...] = get_args(Decision)

# The first record's prev_hash; the migration writes the same value into the head row.
GENESIS_HASH = bytes(32)
# Part of every hash, so a change of the canonical form can never collide with this one.
_HASH_DOMAIN = b"cathouse.audit.v1\n"
_UUID_FIELDS = ("user_id", "owner_id", "installation_id", "cat_id", "api_key_id")
MAX_PATH = 4096

_PENDING_GAUGE = Gauge("cathouse_proxy_audit_pending", "Audit records waiting to be written.")
AUDIT_WRITTEN = Counter("cathouse_proxy_audit_written_total", "Audit records written to the chain.")
AUDIT_LOST = Counter(
    "cathouse_proxy_audit_lost_total",
    "Audit records never written: the queue was full, the record malformed, or shutdown gave up.",
    ["reason"],
)
AUDIT_FLUSH_FAILURES = Counter(
    "cathouse_proxy_audit_flush_failures_total", "Audit batches that failed to write and are retried."
)
# The gauge is read at scrape time, so recording a call costs no metric update.
_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()
_PENDING_GAUGE.set_function(lambda: sum(w.pending for w in list(_WRITERS)))


@dataclass(slots=True, kw_only=True)
class AuditRecord:
    """One call, as the gateway saw it. ``path`` is already redacted (see :func:`audit_path`)."""

    at: datetime
    request_id: str
    method: str
    path: str
    decision: str
    status: int
    user_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    installation_id: uuid.UUID | None = None
    cat_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    upstream_status: int | None = None
    latency_ms: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


# --- the chain ---------------------------------------------------------------------------------


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
    return hashlib.sha256(_HASH_DOMAIN + prev_hash + canonical(row)).digest()


_CHAIN = cast(Table, AuditChain.__table__)
_LOG = cast(Table, AuditLog.__table__)
_HEAD = select(
    AuditChain.last_seq, AuditChain.last_hash, AuditChain.pruned_through_seq, AuditChain.pruned_through_hash
).where(AuditChain.id == 1)


async def _lock_head(session: AsyncSession) -> Row[int, bytes, int, bytes]:
    head = (await session.execute(_HEAD.with_for_update())).one_or_none()
    if head is None:
        # A wiped schema (TRUNCATE) starts the chain again from genesis rather than stopping audit.
        await session.execute(
            pg_insert(_CHAIN)
            .values(id=1, last_seq=0, last_hash=GENESIS_HASH, pruned_through_seq=0, pruned_through_hash=GENESIS_HASH)
            .on_conflict_do_nothing()
        )
        head = (await session.execute(_HEAD.with_for_update())).one()
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
    seq, prev, _, _ = await _lock_head(session)
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        prev = row["hash"] = link_hash(prev, row)
    await _copy(session, rows)
    await session.execute(update(_CHAIN).where(_CHAIN.c.id == 1).values(last_seq=seq, last_hash=prev))
    return len(rows)


_COLUMNS = tuple(column.name for column in _LOG.columns)


async def _copy(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Store ``rows`` with COPY on the session's own connection (so in its transaction): an
    INSERT of many rows spends more CPU building its parameters than the proxy spends on a call."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    await driver.copy_records_to_table(
        _LOG.name, schema_name=_LOG.schema, columns=_COLUMNS, records=[tuple(row[c] for c in _COLUMNS) for row in rows]
    )


# --- the writer --------------------------------------------------------------------------------


class AuditWriter:
    """Writes audit records off the hot path, in batches, and drains them when stopped.

    ``record()`` only appends to a queue. A task writes the queue every ``flush_interval``
    seconds, or as soon as ``batch_size`` records wait; a batch that fails (the database is down)
    stays queued and is retried with backoff. ``stop()`` writes everything still queued.
    """

    def __init__(
        self,
        target: AsyncEngine | async_sessionmaker[AsyncSession],
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_pending: int = 100_000,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._sessions = sessionmaker(target) if isinstance(target, AsyncEngine) else target
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self._stop_timeout = stop_timeout
        self._pending: deque[AuditRecord] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._overflowing = False
        _WRITERS.add(self)

    @classmethod
    def from_settings(cls, target: AsyncEngine | async_sessionmaker[AsyncSession], settings: Settings) -> AuditWriter:
        proxy = settings.proxy
        return cls(target, batch_size=proxy.audit_batch_size, flush_interval=proxy.audit_flush_interval)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, rec: AuditRecord) -> None:
        """Queue one record. Never waits: safe on the request path."""
        if len(self._pending) >= self._max_pending:
            # Memory is the limit while the database is away; past it, newer records are the ones lost.
            AUDIT_LOST.labels("overflow").inc()
            if not self._overflowing:
                self._overflowing = True
                logger.error("audit queue full; records are being dropped", limit=self._max_pending)
            return
        self._pending.append(rec)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def flush(self) -> None:
        """Write everything queued now; raises (records kept) if the database refuses."""
        async with self._lock:
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), self._batch_size))]
                try:
                    async with self._sessions() as session, session.begin():
                        written = await append(session, batch)
                except BaseException:
                    self._pending.extendleft(reversed(batch))
                    raise
                AUDIT_WRITTEN.inc(written)
                self._overflowing = False

    async def stop(self, grace: float | None = None) -> int:
        """Write what is queued, then stop. Gives up after ``grace`` seconds (default: ``stop_timeout``)
        and returns how many records were lost then: 0 when every one was written."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            task = asyncio.create_task(self._run(), name="audit-writer-drain")
        done, _ = await asyncio.wait({task}, timeout=self._stop_timeout if grace is None else grace)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lost = len(self._pending)
        if lost:
            AUDIT_LOST.labels("shutdown").inc(lost)
            logger.error("audit records lost at shutdown: the database did not take them in time", lost=lost)
            self._pending.clear()
        return lost

    async def __aenter__(self) -> AuditWriter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        failures = 0
        while not (self._stopping and not self._pending):
            if not self._stopping and not failures and len(self._pending) < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            try:
                await self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                AUDIT_FLUSH_FAILURES.inc()
                delay = min(self._max_backoff, self._retry_backoff * 2 ** (failures - 1))
                logger.warning(
                    "audit batch not written; retrying", pending=len(self._pending), retry_in=delay, error=str(exc)
                )
                await asyncio.sleep(delay)


# --- verification and pruning ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Break:
    """The first record that does not fit the chain (or, for ``missing``, the first absent seq)."""

    seq: int
    reason: Literal["edited", "missing", "reordered", "unlinked", "unexpected", "head"]
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    pruned_through_seq: int
    last_seq: int
    last_hash: bytes
    problem: Break | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainBroken(Exception):
    """Pruning refused: the records it would delete do not fit the chain, and are evidence."""

    def __init__(self, problem: Break) -> None:
        super().__init__(f"seq {problem.seq}: {problem.detail}")
        self.problem = problem


def _first_fault(row: Mapping[Any, Any], expected: int, prev: bytes, last_seq: int) -> Break | None:
    seq = int(row["seq"])
    if seq != expected:
        gap = f"record {expected} is" if seq == expected + 1 else f"records {expected} to {seq - 1} are"
        return Break(expected, "missing", f"{gap} missing: deleted")
    if seq > last_seq:
        return Break(seq, "unexpected", f"it comes after the chain's head ({last_seq}): not written by the proxy")
    if row["prev_hash"] != prev:
        return Break(seq, "unlinked", "its prev_hash is not the hash of the record before it: one of them was changed")
    if link_hash(prev, row) != row["hash"]:
        return Break(seq, "edited", "its content does not match its hash: the record was changed")
    return None


async def _explain(conn: AsyncConnection, fault: Break, row: Mapping[Any, Any], later: Sequence[Any]) -> Break:
    """Tell a moved record from an edited one, when the evidence says so."""
    seq = fault.seq
    if fault.reason == "unlinked":
        # Whole rows moved: the record this one claims to follow sits elsewhere.
        follows = await conn.scalar(select(AuditLog.seq).where(AuditLog.hash == row["prev_hash"]).limit(1))
        if follows is not None and follows != seq - 1:
            return Break(seq, "reordered", f"it claims to follow record {follows}: records were moved")
    elif fault.reason == "edited":
        # Contents moved between seqs, hashes left in place: this content fits another position.
        for other in later:
            if link_hash(other["prev_hash"], {**row, "seq": other["seq"]}) == other["hash"]:
                return Break(seq, "reordered", f"its content belongs at seq {other['seq']}: records were swapped")
    return fault


async def verify(engine: AsyncEngine, *, batch_size: int = 1000) -> VerifyReport:
    """Recompute the chain from the pruned anchor to the head; report the first record that does
    not fit. Reads one snapshot, so writers appending meanwhile cause no false alarm."""
    async with engine.connect() as conn:
        snapshot = await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with snapshot.begin():
            return await _walk(snapshot, batch_size)


async def _walk(conn: AsyncConnection, batch_size: int) -> VerifyReport:
    head = (await conn.execute(_HEAD)).one_or_none()
    if head is None:
        first = await conn.scalar(select(AuditLog.seq).order_by(AuditLog.seq).limit(1))
        problem = None if first is None else Break(first, "head", "the chain's head row (proxy.audit_chain) is gone")
        return VerifyReport(0, 0, 0, GENESIS_HASH, problem)
    last_seq, last_hash, anchor, prev = head
    expected, checked, after = anchor + 1, 0, anchor
    while True:
        statement = select(_LOG).where(_LOG.c.seq > after).order_by(_LOG.c.seq).limit(batch_size)
        rows = (await conn.execute(statement)).mappings().all()
        for i, row in enumerate(rows):
            fault = _first_fault(row, expected, prev, last_seq)
            if fault is not None:
                fault = await _explain(conn, fault, row, rows[i + 1 :])
                return VerifyReport(checked, anchor, last_seq, last_hash, fault)
            checked, expected, prev = checked + 1, expected + 1, row["hash"]
        if len(rows) < batch_size:
            break
        after = rows[-1]["seq"]
    problem = None
    if expected - 1 < last_seq:
        gap = f"record {last_seq} is" if expected == last_seq else f"records {expected} to {last_seq} are"
        problem = Break(expected, "missing", f"{gap} missing: the newest records were deleted")
    elif prev != last_hash:
        problem = Break(last_seq, "head", "the newest record does not match the chain's head: one of them was changed")
    return VerifyReport(checked, anchor, last_seq, last_hash, problem)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def prune(session: AsyncSession, older_than: datetime, *, limit: int = 5000) -> int:
    """Delete the chain's oldest records written before ``older_than`` (at most ``limit``, and only
    a prefix by seq), moving the anchor to the last one deleted so the rest still verifies.

    The records are verified before they go; if they do not fit, nothing is deleted and
    :class:`ChainBroken` is raised. The caller commits.
    """
    cutoff = _aware(older_than)
    last_seq, _, anchor, prev = await _lock_head(session)
    statement = select(_LOG).where(_LOG.c.seq > anchor).order_by(_LOG.c.seq).limit(limit)
    expected, through = anchor + 1, None
    for row in (await session.execute(statement)).mappings():
        if row["at"] >= cutoff:
            break
        fault = _first_fault(row, expected, prev, last_seq)
        if fault is not None:
            raise ChainBroken(fault)
        through, prev, expected = row, row["hash"], expected + 1
    if through is None:
        return 0
    await session.execute(delete(_LOG).where(_LOG.c.seq <= through["seq"]))
    await session.execute(
        update(_CHAIN)
        .where(_CHAIN.c.id == 1)
        .values(pruned_through_seq=through["seq"], pruned_through_hash=through["hash"])
    )
    return expected - 1 - anchor


async def prune_expired(
    sessions: async_sessionmaker[AsyncSession], retention_days: int, *, now: datetime | None = None, limit: int = 5000
) -> int:
    """Prune everything older than the retention, ``limit`` records per transaction so writers wait
    on the head's lock only briefly."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions() as session, session.begin():
            count = await prune(session, cutoff, limit=limit)
        total += count
        if count < limit:
            break
    if total:
        logger.info("audit records pruned", records=total, cutoff=cutoff.isoformat())
    return total


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, interval: float = 3600.0
) -> None:
    """The retention loop a worker runs: prune, then wait ``interval`` seconds."""
    while True:
        try:
            await prune_expired(sessions, settings.proxy.audit_retention_days)
        except ChainBroken as exc:
            # Kept as evidence: pruning waits until someone looks (`cathouse audit verify`).
            logger.error("audit chain broken; nothing pruned", seq=exc.problem.seq, reason=exc.problem.reason)
        await asyncio.sleep(interval)


# --- redaction ---------------------------------------------------------------------------------

REDACTED = "[redacted]"
# A name that is one of these, or ends with "_" and one of these, holds a secret.
_SECRET_NAMES = frozenset(
    [
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "secret",
        "client_secret",
        "secret_key",
        "access_key",
        "private_key",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "session",
        "session_id",
        "sessionid",
    ]
)
# Secret only as the whole name: as suffixes they would hide `country_code` or `sort_key`.
_EXACT_NAMES = frozenset({"key", "code", "auth_code"})
# Run-together spellings (`apitoken`, `xapikey`) still end with one of these.
_SECRET_ENDINGS = ("token", "apikey", "secret", "password", "passwd", "signature", "credential", "credentials")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def _normalized(name: str) -> str:
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def looks_secret(name: str) -> bool:
    normal = _normalized(name)
    if normal in _EXACT_NAMES or normal in _SECRET_NAMES:
        return True
    if any(normal.endswith("_" + word) for word in _SECRET_NAMES):
        return True
    return normal.replace("_", "").endswith(_SECRET_ENDINGS)


def redact_query(query: str, extra: Collection[str] = ()) -> str:
    """``query`` as sent, but the values of parameters that look like secrets, and of those named
    in ``extra`` (any case), replaced by ``[redacted]``."""
    if not query:
        return query
    named = {n.lower() for n in extra}
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value:
            decoded = unquote_plus(name)
            if decoded.lower() in named or looks_secret(decoded):
                part = f"{name}={REDACTED}"
        parts.append(part)
    return "&".join(parts)


def audit_path(path: str, query: str = "", extra: Collection[str] = ()) -> str:
    """The path an audit record stores: ``path?query`` with secret-looking values redacted."""
    return f"{path}?{redact_query(query, extra)}" if query else path
