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
  nothing younger);
- the prune anchor may not be behind the one the checkpoint saw (its record count).

Then every record from the first one a checkpoint claims to the newest checkpoint must be
claimed by one (each names the runs of seqs its process appended): a record slipped in by
someone else, even one the proxy then chained after, is claimed by none. A record not claimed
yet, or newer than every checkpoint, is expected only within the cadence: each process signs
its commits within ``interval`` seconds, so past that (and a slack) it is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.proxy.audit.checkpoints import Checkpoint, CheckpointStore, Stored
from cathouse.proxy.audit.signing import PublicKey
from cathouse.proxy.audit.verify import VerifyReport, walk

# Added to the cadence before records newer than every checkpoint count as unsigned: the writer's
# idle tick, storing, and the clocks of the proxy and of whoever verifies.
TAIL_SLACK = 60.0


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
    store: CheckpointStore,
    keys: Iterable[PublicKey],
    *,
    retention_days: int,
    interval: float,
    batch_size: int = 1000,
    now: datetime | None = None,
) -> tuple[VerifyReport, CheckpointReport]:
    """The chain's own report, and the first checkpoint (or record) that does not fit (or none).

    ``interval`` is the proxy's cadence (``CATHOUSE_AUDIT__CHECKPOINT_SECONDS``): records newer
    than every checkpoint are expected only while a checkpoint was signed that recently.
    """
    by_id = {key.key_id: key for key in keys}
    # Read before the chain's snapshot: each was signed after its records were committed, so
    # every one read names a seq the snapshot holds.
    stored = await store.load()
    # When they were read: what a process signs within the cadence of a commit is in by then.
    now = now or datetime.now(UTC)
    checkpoints, problem = _valid(stored, by_id)
    if problem is not None:
        report, _ = await walk(engine, batch_size=batch_size)
        return report, CheckpointReport(len(stored), 0, 0, problem)
    report, hashes = await walk(engine, batch_size=batch_size, want={c.seq for c in checkpoints})
    cutoff = now - timedelta(days=retention_days)
    matched = pruned = 0
    fitting: Checkpoint | None = None  # the newest that fitted so far: a change is after it
    for checkpoint in checkpoints:
        problem = _misfit(checkpoint, report, hashes, cutoff, retention_days, fitting)
        if problem is not None:
            return report, CheckpointReport(len(checkpoints), matched, pruned, problem)
        if checkpoint.seq < report.pruned_through_seq:
            pruned += 1
        else:
            matched += 1
            fitting = checkpoint
    problem = _unclaimed(checkpoints, report, now - timedelta(seconds=interval + TAIL_SLACK))
    if problem is None and report.problem is None:
        problem = await _unsigned_tail(checkpoints, report, store, by_id, interval, now)
    return report, CheckpointReport(len(checkpoints), matched, pruned, problem)


def _valid(stored: Sequence[Stored], keys: dict[str, PublicKey]) -> tuple[list[Checkpoint], str | None]:
    """The checkpoints by seq, or the first entry that is not one or whose signature fails."""
    checkpoints: list[Checkpoint] = []
    for entry in stored:
        if entry.checkpoint is None:
            return [], f"{entry.where}: not a checkpoint ({entry.error})"
        checkpoints.append(entry.checkpoint)
    checkpoints.sort(key=lambda c: (c.seq, c.at))
    for checkpoint in checkpoints:
        problem = _signature_problem(checkpoint, keys)
        if problem is not None:
            return [], problem
    return checkpoints, None


def _unclaimed(checkpoints: Sequence[Checkpoint], report: VerifyReport, late: datetime) -> str | None:
    """The first record, between the first one a checkpoint claims and the newest checkpoint,
    that no checkpoint claims though one was due: every process signs the runs of seqs it
    appended, within the cadence of their commit. A record was committed before any later seq
    was, so before the first checkpoint of a later seq was signed; a claim still missing a
    cadence after that (``late``) will never come."""
    runs = sorted((first, last, c.at) for c in checkpoints for first, last in c.ranges)
    if not runs or report.problem is not None:
        return None
    newest = checkpoints[-1].seq
    expected = max(runs[0][0], report.pruned_through_seq + 1)
    for first, last, _ in runs:
        if first > expected and expected <= newest:
            signed_after = min(c.at for c in checkpoints if c.seq > expected)
            if signed_after < late:
                gap = f"record {expected} is" if first == expected + 1 else f"records {expected} to {first - 1} are"
                return (
                    f"{gap} claimed by no checkpoint, though later records are: not written by the proxy "
                    "(forged), or by a proxy process that died before signing them (its log would hold no "
                    "checkpoint for them)"
                )
        expected = max(expected, last + 1)
    return None


async def _unsigned_tail(
    checkpoints: Sequence[Checkpoint],
    report: VerifyReport,
    store: CheckpointStore,
    keys: dict[str, PublicKey],
    interval: float,
    now: datetime,
) -> str | None:
    """Records after the newest checkpoint, when none was signed for longer than the cadence."""
    if not checkpoints:
        return None
    late = now - timedelta(seconds=interval + TAIL_SLACK)
    if report.last_seq <= max(c.seq for c in checkpoints) or max(c.at for c in checkpoints) >= late:
        return None
    # A commit after the checkpoints were read is signed at once after so long an idle spell:
    # read them again before calling its record unsigned.
    again, problem = _valid(await store.load(), keys)
    if problem is not None:
        return problem
    newest = max((c.seq for c in again), default=0)
    if report.last_seq <= newest:
        return None
    signed = max(c.at for c in again)
    gap = (
        f"record {report.last_seq} is"
        if newest + 1 == report.last_seq
        else f"records {newest + 1} to {report.last_seq} are"
    )
    return (
        f"{gap} newer than every checkpoint, and none was signed since {signed:%Y-%m-%dT%H:%M:%SZ} though the proxy "
        f"signs within {interval:g} s of a commit: appended by someone else (forged), or the proxy stopped before it "
        "could sign them"
    )


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
    if found is None and report.problem is not None:
        return None  # the chain's own problem says why
    if found is None:
        return f"{named}, but the chain has no record at seq {seq}: records deleted"
    if found.hex() != checkpoint.hash:
        place = "the prune anchor" if seq == anchor else "the record there"
        since = f"; the checkpoint at seq {fitting.seq} before it still fits" if fitting is not None else ""
        return f"{named} names hash {checkpoint.hash}, {place} has hash {found.hex()}: rewritten{since}"
    return None
