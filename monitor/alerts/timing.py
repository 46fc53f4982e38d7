"""When an alert may go: retry backoff, quiet hours, rate limits. Pure: `now` and jitter are
passed in, so the outbox can be replayed and a test needs no clock.

Quiet hours arrive parsed (`models.QuietHours`, read once by the config); this module only does
their arithmetic in the monitor's time zone, including the nights when daylight saving time
starts or ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.models import QuietHours, Rule


def aware(dt: datetime) -> datetime:
    """Naive datetimes in this project are UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def backoff_delay(
    attempt: int, *, base: float = 30.0, cap: float = 6 * 3600.0, jitter: float
) -> float:
    """Seconds before retry `attempt` (1 = first retry): capped exponential, equal jitter.

    Equal jitter (half fixed, half random) rather than full jitter, so the delay always grows
    with the attempt until the cap while retries of many alerts still spread out.
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    step = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return step / 2 + jitter * step / 2


def _first_instant(day: date, wall: time, tz: ZoneInfo, after: datetime) -> datetime:
    """The first UTC instant after `after` when the local clock on `day` reaches `wall`.

    A wall time skipped by a DST jump resolves to the jump itself; a repeated one to whichever
    occurrence is still ahead.
    """
    naive = datetime.combine(day, wall)
    candidates = sorted(naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    lo, hi = candidates
    if lo.astimezone(tz).replace(tzinfo=None) != naive:  # in a gap: bisect for the jump
        while hi - lo > timedelta(minutes=1):
            mid = lo + (hi - lo) / 2
            lo, hi = (lo, mid) if mid.astimezone(tz).replace(tzinfo=None) >= naive else (mid, hi)
        return hi.replace(second=0, microsecond=0)
    return lo if lo > after else hi


def quiet_until(quiet: QuietHours | None, now: datetime, timezone: str) -> datetime | None:
    """None if `now` is outside `quiet` (local to `timezone`), else when they end (UTC).

    A window like 22:00-07:00 spans midnight; equal start and end means no quiet hours.
    """
    if quiet is None:
        return None
    start, end = quiet.start, quiet.end
    if start == end:
        return None
    tz = ZoneInfo(timezone)
    now = aware(now).astimezone(UTC)
    local = now.astimezone(tz)
    tod = local.time().replace(tzinfo=None)
    if (start <= tod < end) if start < end else not (end <= tod < start):
        day = local.date() + timedelta(days=1) if end < start <= tod else local.date()
        return _first_instant(day, end, tz, now)
    return None


def hold_until(rule: Rule, now: datetime, timezone: str) -> datetime | None:
    """When a non-urgent alert of `rule` may go, if quiet hours hold it now; urgent never waits."""
    return None if rule.urgent else quiet_until(rule.quiet_hours, now, timezone)


def rate_limit_until(
    sent_at: Sequence[datetime], *, limit: int, per: float, now: datetime
) -> datetime | None:
    """Sliding window: at most `limit` sends in any `per` seconds. None = one more may go now."""
    if limit < 1 or per <= 0:
        raise ValueError("rate limit needs limit >= 1 and per > 0")
    now = aware(now)
    window_start = now - timedelta(seconds=per)
    recent = sorted(t for t in map(aware, sent_at) if t > window_start)
    if len(recent) < limit:
        return None
    return recent[-limit] + timedelta(seconds=per)
