"""Verifying the chain against its signed checkpoints: what a database writer cannot forge.

A chain rewritten consistently (every later hash and the head recomputed), cut short, emptied
or with its oldest records deleted still links up; it no longer fits the checkpoints signed
before. Each checkpoint is checked on its own (several proxy processes sign, interleaved):

- its signature, by a key given (otherwise: forged);
- above the prune anchor, the record at its seq must have its hash (otherwise: rewritten), and
  the chain must reach it (otherwise: records deleted);
- at the anchor, the anchor's hash must be its hash;
- at or below the anchor it cannot be compared with a record, which pruning removed; it is
  counted, and the record it names must have been older than the retention (pruning deletes
  nothing younger), and the log must not hold fewer records before its seq than it says were
  pruned when it was signed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.proxy.audit.checkpoints import Checkpoint, Stored
from cathouse.proxy.audit.signing import PublicKey
from cathouse.proxy.audit.verify import VerifyReport, walk


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    total: int
    # Compared with the record (or the prune anchor) at their seq.
    matched: int
    # Below the prune anchor: their records were pruned.
    pruned: int
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


async def verify_with_checkpoints(
    engine: AsyncEngine,
    stored: Sequence[Stored],
    keys: Iterable[PublicKey],
    *,
    retention_days: int,
    batch_size: int = 1000,
    now: datetime | None = None,
) -> tuple[VerifyReport, CheckpointReport]:
    """The chain's own report, and the first checkpoint that does not fit it (or none).

    ``stored`` must be read before this is called: a checkpoint is signed after its commit, so
    every one read earlier names a seq the chain's snapshot holds.
    """
    by_id = {key.key_id: key for key in keys}
    checkpoints: list[Checkpoint] = []
    for entry in stored:
        if entry.checkpoint is None:
            return await _chain_only(
                engine, batch_size, len(stored), f"{entry.where}: not a checkpoint ({entry.error})"
            )
        checkpoints.append(entry.checkpoint)
    checkpoints.sort(key=lambda c: (c.seq, c.at))
    for checkpoint in checkpoints:
        problem = _signature_problem(checkpoint, by_id)
        if problem is not None:
            return await _chain_only(engine, batch_size, len(stored), problem)
    report, hashes = await walk(engine, batch_size=batch_size, want={c.seq for c in checkpoints})
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    matched = pruned = 0
    fitting: Checkpoint | None = None  # the newest that fitted so far: the change is after it
    for checkpoint in checkpoints:
        problem = _misfit(checkpoint, report, hashes, cutoff, retention_days, fitting)
        if problem is not None:
            return report, CheckpointReport(len(checkpoints), matched, pruned, problem)
        if checkpoint.seq < report.pruned_through_seq:
            pruned += 1
        else:
            matched += 1
            fitting = checkpoint
    return report, CheckpointReport(len(checkpoints), matched, pruned, None)


async def _chain_only(
    engine: AsyncEngine, batch_size: int, total: int, problem: str
) -> tuple[VerifyReport, CheckpointReport]:
    report, _ = await walk(engine, batch_size=batch_size)
    return report, CheckpointReport(total, 0, 0, problem)


def _signature_problem(checkpoint: Checkpoint, keys: dict[str, PublicKey]) -> str | None:
    key = keys.get(checkpoint.key_id)
    if key is None:
        known = ", ".join(sorted(keys)) or "none"
        return (
            f"{checkpoint.describe()} is signed by key {checkpoint.key_id}, not by a key given ({known}): "
            "forged, or pass that key's public key"
        )
    if not checkpoint.signed_by(key):
        return f"{checkpoint.describe()}: signature invalid: forged (or edited after signing)"
    return None


def _misfit(
    checkpoint: Checkpoint,
    report: VerifyReport,
    hashes: dict[int, bytes],
    cutoff: datetime,
    retention_days: int,
    fitting: Checkpoint | None,
) -> str | None:
    seq, anchor, named = checkpoint.seq, report.pruned_through_seq, checkpoint.describe()
    if seq > report.last_seq:
        end = "the chain is empty" if report.last_seq == 0 else f"the chain ends at {report.last_seq}"
        return f"{named}, but {end}: records deleted"
    if anchor < checkpoint.pruned_through:
        return (
            f"{named} says the log held {checkpoint.records} records, pruned through seq "
            f"{checkpoint.pruned_through}, but the chain is pruned only through seq {anchor}: "
            "the record count does not fit (the chain was replaced)"
        )
    if seq <= anchor and checkpoint.record_at >= cutoff:
        return (
            f"{named} names a record written at {checkpoint.record_at:%Y-%m-%dT%H:%M:%SZ}, inside the "
            f"{retention_days}-day retention, but the chain is pruned through seq {anchor}: records deleted"
        )
    if seq < anchor:
        return None
    found = hashes.get(seq)
    if found is None:
        return f"{named}, but the chain has no record at seq {seq}: records deleted"
    if found.hex() != checkpoint.hash:
        place = "the prune anchor" if seq == anchor else "the record there"
        since = f"; the checkpoint at seq {fitting.seq} before it still fits" if fitting is not None else ""
        return f"{named} names hash {checkpoint.hash}, {place} has hash {found.hex()}: rewritten{since}"
    return None
