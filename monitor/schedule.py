"""When to poll a source next: pure arithmetic on intervals, errors and Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_BACKOFF = 6 * 3600.0  # a failing source is still tried at least every 6 hours


def after_success(interval: float, now: datetime, *, jitter: float = 0.0) -> datetime:
    """Next poll after a good poll; `jitter` in [0, 1) spreads sources over up to 10 % of it."""
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
