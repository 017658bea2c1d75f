"""How failed logins slow an account down.

Five failures in fifteen minutes are free; after that each failure locks the account for
twice as long as the one before (1 minute, 2, 4 … up to a day). After 100 consecutive
failures the account stays locked until an admin enables it again (SP 800-63B's ceiling).
"""

from __future__ import annotations

from datetime import datetime, timedelta

FREE_FAILURES = 5
FREE_WINDOW = timedelta(minutes=15)
FIRST_LOCKOUT = timedelta(minutes=1)
LONGEST_LOCKOUT = timedelta(days=1)
HARD_LIMIT = 100


def failures_after(previous: int, last_failure: datetime | None, now: datetime) -> int:
    """The consecutive-failure count once this failure is counted; a quiet window forgives
    the free ones."""
    if previous < FREE_FAILURES and last_failure is not None and now - last_failure > FREE_WINDOW:
        previous = 0
    return previous + 1


def lockout(failures: int) -> timedelta | None:
    if failures < FREE_FAILURES:
        return None
    return min(LONGEST_LOCKOUT, FIRST_LOCKOUT * (1 << min(failures - FREE_FAILURES, 20)))


def is_locked(failures: int, locked_until: datetime | None, now: datetime) -> bool:
    return failures >= HARD_LIMIT or (locked_until is not None and locked_until > now)
