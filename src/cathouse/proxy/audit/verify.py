"""Verifying the chain (the first record that does not fit, or none) and pruning it past the retention."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from loguru import logger
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.platform.settings import Settings
from cathouse.proxy.audit.chain import CHAIN, HEAD, LOG, link_hash, lock_head
from cathouse.proxy.audit.records import GENESIS_HASH
from cathouse.proxy.models import AuditLog


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
    report, _ = await walk(engine, batch_size=batch_size)
    return report


async def walk(
    engine: AsyncEngine, *, batch_size: int = 1000, want: Collection[int] = ()
) -> tuple[VerifyReport, dict[int, bytes]]:
    """:func:`verify`, and the hashes of the records at the seqs in ``want`` that it read (all of
    those the chain holds when it is intact), the prune anchor's among them."""
    async with engine.connect() as conn:
        snapshot = await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with snapshot.begin():
            found: dict[int, bytes] = {}
            return await _walk(snapshot, batch_size, frozenset(want), found), found


async def _walk(conn: AsyncConnection, batch_size: int, want: frozenset[int], found: dict[int, bytes]) -> VerifyReport:
    head = (await conn.execute(HEAD)).one_or_none()
    if head is None:
        first = await conn.scalar(select(AuditLog.seq).order_by(AuditLog.seq).limit(1))
        problem = None if first is None else Break(first, "head", "the chain's head row (proxy.audit_chain) is gone")
        return VerifyReport(0, 0, 0, GENESIS_HASH, problem)
    last_seq, last_hash, anchor, prev = head
    if anchor in want:
        found[anchor] = prev
    expected, checked, after = anchor + 1, 0, anchor
    while True:
        statement = select(LOG).where(LOG.c.seq > after).order_by(LOG.c.seq).limit(batch_size)
        rows = (await conn.execute(statement)).mappings().all()
        for i, row in enumerate(rows):
            fault = _first_fault(row, expected, prev, last_seq)
            if fault is not None:
                fault = await _explain(conn, fault, row, rows[i + 1 :])
                return VerifyReport(checked, anchor, last_seq, last_hash, fault)
            checked, expected, prev = checked + 1, expected + 1, row["hash"]
            if want and expected - 1 in want:
                found[expected - 1] = prev
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
    last_seq, _, anchor, prev = await lock_head(session)
    statement = select(LOG).where(LOG.c.seq > anchor).order_by(LOG.c.seq).limit(limit)
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
    await session.execute(delete(LOG).where(LOG.c.seq <= through["seq"]))
    await session.execute(
        update(CHAIN)
        .where(CHAIN.c.id == 1)
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
