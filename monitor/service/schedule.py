"""When to poll a source next: pure arithmetic on intervals, errors and Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_BACKOFF = 6 * 3600.0  # a failing source is still tried at least every 6 hours
GAP_FLOOR = 30.0  # a possible gap halves the interval, but never below this (nor above it)


def after_success(
    interval: float, now: datetime, *, jitter: float = 0.0, gap: bool = False
) -> datetime:
    """Next poll after a good poll; `jitter` in [0, 1) spreads sources over up to 10 % of it.

    `gap`: every item of the poll was new on a source that had stored articles, so items may
    have scrolled off the feed unseen; the next poll comes after half the interval (not under
    GAP_FLOOR seconds, and never later than the plain interval).
    """
    if gap:
        interval = min(interval, max(interval / 2, GAP_FLOOR))
    return now + timedelta(seconds=interval * (1.0 + 0.1 * jitter))


def after_failure(
    interval: float,
    consecutive_errors: int,
    now: datetime,
    *,
    retry_after: float | None = None,
    cap: float = MAX_BACKOFF,
) -> datetime:
    """Exponential backoff from the source's interval, capped, never sooner than Retry-After."""
    exponent = max(0, min(consecutive_errors - 1, 20))
    delay = min(interval * (2**exponent), max(cap, interval))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)
