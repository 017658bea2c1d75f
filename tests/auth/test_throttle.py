from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cathouse.auth.throttle import HARD_LIMIT, failures_after, is_locked, lockout

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_four_failures_are_free_and_the_fifth_locks_for_a_minute() -> None:
    assert [lockout(n) for n in range(1, 5)] == [None] * 4
    assert lockout(5) == timedelta(minutes=1)


def test_each_further_failure_doubles_the_lockout_up_to_a_day() -> None:
    assert [lockout(n) for n in (6, 7, 8)] == [timedelta(minutes=m) for m in (2, 4, 8)]
    assert lockout(40) == timedelta(days=1)


def test_a_quiet_quarter_hour_forgives_free_failures_but_not_a_lockout() -> None:
    assert failures_after(3, NOW - timedelta(minutes=16), NOW) == 1
    assert failures_after(3, NOW - timedelta(minutes=5), NOW) == 4
    assert failures_after(6, NOW - timedelta(hours=2), NOW) == 7


def test_one_hundred_consecutive_failures_lock_for_good() -> None:
    assert is_locked(HARD_LIMIT, None, NOW)
    assert not is_locked(HARD_LIMIT - 1, NOW - timedelta(seconds=1), NOW)
    assert is_locked(5, NOW + timedelta(seconds=30), NOW)


def test_guesses_before_the_hard_limit_take_at_least_a_month() -> None:
    waited = sum((lockout(n) or timedelta(0) for n in range(1, HARD_LIMIT)), timedelta(0))
    assert waited > timedelta(days=30)
