"""Signing the chain's head at a cadence, off the hot path: the audit writer's helper.

After each committed append the writer tells the checkpointer what its own transaction stored
(seq, hash): several processes append under the head's lock, so that is the only head a process
knows to be committed. A checkpoint is signed once ``every`` records were committed since the
last one, or ``interval`` seconds after a commit no checkpoint covers yet (the writer's idle
ticks check), and at shutdown. Signing costs tens of microseconds; storing (a file append and
fsync, or an S3 PUT) happens in a task of its own, retried while the store is away, so a slow
store never holds up audit batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from loguru import logger
from prometheus_client import Counter

from cathouse.platform.settings import Settings
from cathouse.proxy.audit.chain import Appended
from cathouse.proxy.audit.checkpoints import Checkpoint, CheckpointStore, iso, store_from_settings
from cathouse.proxy.audit.records import retry_delay
from cathouse.proxy.audit.signing import Signer, signer_from_settings

CHECKPOINTS_STORED = Counter("cathouse_proxy_audit_checkpoints_total", "Audit checkpoints signed and stored.")
CHECKPOINT_FAILURES = Counter(
    "cathouse_proxy_audit_checkpoint_failures_total", "Tries to store an audit checkpoint that failed (retried)."
)
CHECKPOINTS_LOST = Counter(
    "cathouse_proxy_audit_checkpoints_lost_total", "Audit checkpoints signed but never stored (queue full, shutdown)."
)


class Checkpointer:
    def __init__(
        self,
        signer: Signer,
        store: CheckpointStore,
        *,
        every: int = 1000,
        interval: float = 60.0,
        max_pending: int = 10_000,
        retry_backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.signer = signer
        self.store = store
        self._every = every
        self._interval = interval
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._latest: Appended | None = None  # the newest commit no checkpoint covers yet
        self._since = 0  # records committed since the last checkpoint
        self._ranges: list[tuple[int, int]] = []  # their seqs, run by run
        self._signed_at: float | None = None  # a process's first commit is signed at once
        self._queue: deque[Checkpoint] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Checkpointer:
        audit = settings.audit
        return cls(
            signer_from_settings(settings),
            store_from_settings(settings),
            every=audit.checkpoint_records,
            interval=audit.checkpoint_seconds,
        )

    @property
    def pending(self) -> int:
        return len(self._queue)

    def committed(self, appended: Appended) -> None:
        """Note a committed append; sign it when the cadence says so."""
        if appended.records == 0:
            return
        self._latest = appended
        self._since += appended.records
        first = appended.seq - appended.records + 1
        if self._ranges and self._ranges[-1][1] + 1 == first:
            self._ranges[-1] = (self._ranges[-1][0], appended.seq)
        else:
            self._ranges.append((first, appended.seq))
        if self._since >= self._every or self._due():
            self._sign()

    def tick(self) -> None:
        """Sign the newest commit if it has waited ``interval`` seconds: called when the writer idles."""
        if self._latest is not None and self._due():
            self._sign()

    def _due(self) -> bool:
        return self._signed_at is None or self._clock() - self._signed_at >= self._interval

    def _sign(self) -> None:
        appended, self._latest, self._since = self._latest, None, 0
        ranges, self._ranges = tuple(self._ranges), []
        self._signed_at = self._clock()
        if appended is None or appended.record_at is None:
            return
        checkpoint = Checkpoint.sign(
            self.signer,
            seq=appended.seq,
            hash_=appended.hash,
            records=max(0, appended.seq - appended.pruned_through_seq),
            record_at=appended.record_at,
            ranges=ranges,
        )
        # The log line is a copy of its own, kept wherever the logs go.
        logger.info(
            "audit checkpoint",
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            records=checkpoint.records,
            at=iso(checkpoint.at),
            record_at=iso(checkpoint.record_at),
            ranges=checkpoint.ranges,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()  # the newest covers more of the chain than the oldest
            CHECKPOINTS_LOST.inc()
        self._queue.append(checkpoint)
        self._drained.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-checkpoints")

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self.store.put(self._queue[0])
            except Exception as exc:
                failures += 1
                CHECKPOINT_FAILURES.inc()
                delay = retry_delay(failures, self._retry_backoff, self._max_backoff)
                logger.warning(
                    "audit checkpoint not stored; retrying",
                    store=self.store.where,
                    pending=len(self._queue),
                    retry_in=delay,
                    error=str(exc),
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._queue.popleft()
            CHECKPOINTS_STORED.inc()
            if not self._queue:
                self._drained.set()

    async def stop(self, grace: float) -> None:
        """Sign the newest commit not yet covered, store what is queued within ``grace`` seconds."""
        if self._latest is not None:
            self._sign()
        task, self._task = self._task, None
        if task is None:
            task = asyncio.create_task(self._run(), name="audit-checkpoints-drain")
        if self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._queue:
            CHECKPOINTS_LOST.inc(len(self._queue))
            logger.error("audit checkpoints not stored at shutdown", lost=len(self._queue), store=self.store.where)
            self._queue.clear()
