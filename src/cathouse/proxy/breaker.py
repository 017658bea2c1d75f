"""A circuit breaker per cat: after repeated failures, stop sending it calls for a while.

Closed: calls go through; ``failures`` consecutive failures open it. Open: calls are refused
at once (503 with ``Retry-After``) for ``open_seconds``. Then half-open: one trial call goes
through; its success closes the breaker, its failure opens it again. Per process: each proxy
process learns a cat is down from its own calls, which is soon enough and needs no store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    trial_running: bool = False


class CircuitBreakers:
    def __init__(self, *, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self._states: dict[object, _State] = {}

    def retry_after(self, key: object) -> int | None:
        """None when a call may go ahead (and, half-open, it is the trial); else seconds to wait."""
        state = self._states.get(key)
        if state is None or state.open_until == 0.0:
            return None
        remaining = state.open_until - self.clock()
        if remaining > 0:
            return max(1, math.ceil(remaining))
        if state.trial_running:
            return 1
        state.trial_running = True
        return None

    def succeeded(self, key: object) -> None:
        state = self._states.get(key)
        if state is not None:
            state.failures, state.open_until, state.trial_running = 0, 0.0, False

    def failed(self, key: object) -> None:
        state = self._states.setdefault(key, _State())
        state.failures += 1
        if state.trial_running or state.failures >= self.failures:
            state.open_until = self.clock() + self.open_seconds
            state.trial_running = False
