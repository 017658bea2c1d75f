"""The writer: records queued on the hot path, stored in batches off it, drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from types import TracebackType

from loguru import logger
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.platform.db import sessionmaker
from cathouse.platform.settings import Settings
from cathouse.proxy.audit.chain import append
from cathouse.proxy.audit.checkpointer import Checkpointer
from cathouse.proxy.audit.records import AUDIT_FLUSH_FAILURES, AUDIT_LOST, AUDIT_WRITTEN, AuditRecord, retry_delay

_PENDING_GAUGE = Gauge("cathouse_proxy_audit_pending", "Audit records waiting to be written.")
# The gauge is read at scrape time, so recording a call costs no metric update.
_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()
_PENDING_GAUGE.set_function(lambda: sum(w.pending for w in list(_WRITERS)))


class AuditWriter:
    """Writes audit records off the hot path, in batches, and drains them when stopped.

    ``record()`` only appends to a queue. A task writes the queue every ``flush_interval``
    seconds, and whole batches as soon as ``batch_size`` records wait (each batch is a
    transaction, whose fixed cost a busy proxy pays once per batch, not once per handful of
    records); a batch that fails (the database is down)
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
        checkpoints: Checkpointer | None = None,
    ) -> None:
        self._sessions = sessionmaker(target) if isinstance(target, AsyncEngine) else target
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self._stop_timeout = stop_timeout
        self.checkpoints = checkpoints
        self._pending: deque[AuditRecord] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._overflowing = False
        _WRITERS.add(self)

    @classmethod
    def from_settings(cls, target: AsyncEngine | async_sessionmaker[AsyncSession], settings: Settings) -> AuditWriter:
        """The proxy's writer, checkpoints signed with the configured key (see ``Checkpointer``)."""
        proxy = settings.proxy
        return cls(
            target,
            batch_size=proxy.audit_batch_size,
            flush_interval=proxy.audit_flush_interval,
            checkpoints=Checkpointer.from_settings(settings),
        )

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
        if self.checkpoints is not None:
            self.checkpoints.start()

    async def flush(self) -> None:
        """Write everything queued now; raises (records kept) if the database refuses."""
        await self._write(whole_batches_only=False)

    async def _write(self, *, whole_batches_only: bool) -> None:
        async with self._lock:
            while self._pending and (len(self._pending) >= self._batch_size or not whole_batches_only):
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), self._batch_size))]
                try:
                    async with self._sessions() as session, session.begin():
                        appended = await append(session, batch)
                except BaseException:
                    self._pending.extendleft(reversed(batch))
                    raise
                AUDIT_WRITTEN.inc(appended.records)
                self._overflowing = False
                if self.checkpoints is not None:
                    self.checkpoints.committed(appended)  # committed: safe to sign

    async def stop(self, grace: float | None = None) -> int:
        """Write what is queued, then stop. Gives up after ``grace`` seconds (default: ``stop_timeout``)
        and returns how many records were lost then: 0 when every one was written."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            task = asyncio.create_task(self._run(), name="audit-writer-drain")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._stop_timeout if grace is None else grace)
        done, _ = await asyncio.wait({task}, timeout=deadline - loop.time())
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.checkpoints is not None:
            # What was committed last is signed now: a clean shutdown leaves no record uncovered.
            await self.checkpoints.stop(grace=max(1.0, deadline - loop.time()))
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
            # Woken by a full batch, only whole batches go: what arrived while one was written
            # waits for the next (or the interval) rather than costing a transaction of its own.
            whole_batches_only = False
            if not self._stopping and not failures:
                if len(self._pending) < self._batch_size:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._flush_interval)
                        whole_batches_only = not self._stopping
                    except TimeoutError:
                        if self.checkpoints is not None:
                            self.checkpoints.tick()
                else:
                    whole_batches_only = True
            try:
                await self._write(whole_batches_only=whole_batches_only)
                failures = 0
            except Exception as exc:
                failures += 1
                AUDIT_FLUSH_FAILURES.inc()
                delay = retry_delay(failures, self._retry_backoff, self._max_backoff)
                logger.warning(
                    "audit batch not written; retrying", pending=len(self._pending), retry_in=delay, error=str(exc)
                )
                await asyncio.sleep(delay)
