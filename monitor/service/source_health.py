"""Source health: when a failing source counts as down, and the alerts that say so. Pure.

Why "down" is separate from "failing": one failed poll is routine (a timeout, a 503, a broken
selector for an hour) and backoff handles it quietly. A source whose last success is older than
`failing_after` while it keeps failing (or that has never succeeded for that long since it was
added) needs a person: `sources` shows it as down, the metrics count it and, with
`health_channel`, one alert says so and one more says when it recovers (by itself, on the next
good poll). An episode is named by the last success before it (or the time the source was
added), so its keys are the same at every check and after restarts: the outbox's unique key
makes a repeated check harmless.

A feed whose polls succeed on a malformed body (cut off mid-item: its first items read, the
rest lost) is failing too: it is down once it has had no well-formed body for `failing_after`.
`polling_ok` is the whole monitor's health (`sources --check`, the Docker HEALTHCHECK): polls
are succeeding when some enabled source had a good poll within three of its intervals plus a
minute and is not down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from monitor.alerts.escape import clean, escape_html, escape_markdown
from monitor.alerts.render import format_time
from monitor.models import Alert, Message
from monitor.secrets import mask

HEALTH_RULE = "source-health"  # the rule name health alerts carry in the outbox


@dataclass(frozen=True, slots=True)
class Health:
    """One source as the health check sees it; `since` is set while it is down."""

    name: str
    url: str
    enabled: bool
    down: bool
    since: datetime | None  # last success (or when added) before the failures: the episode
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_errors: int
    recorded: datetime | None = None  # the episode already announced (None: none)
    warning: str | None = None  # the last good poll read a malformed body ("malformed: ...")
    last_clean: datetime | None = None  # the last good poll of a well-formed body


def _malformed(h: Health) -> bool:
    """Its polls succeed, but on a malformed body."""
    return h.consecutive_errors <= 0 and bool(h.warning)


def _problem(h: Health) -> str:
    """What is wrong, cleaned and masked: a malformed feed's warning, else the last error."""
    return mask(clean(h.warning if _malformed(h) else h.last_error or "unknown error"))


@dataclass(frozen=True, slots=True)
class Change:
    """A transition to announce (`alert`) or just to record (`record` = new stored episode)."""

    name: str
    kind: Literal["down", "up"]
    since: datetime
    alert: bool
    record: datetime | None


def down_since(
    *,
    last_success: datetime | None,
    added_at: datetime | None,
    consecutive_errors: int,
    now: datetime,
    failing_after: float,
    malformed: bool = False,
) -> datetime | None:
    """The start of the episode if the source is down now, else None; `last_success` is the
    last good poll of a well-formed body, `malformed` whether the last good one was not."""
    if consecutive_errors <= 0 and not malformed:
        return None
    start = last_success or added_at
    if start is None or (now - start).total_seconds() < failing_after:
        return None
    return start


def assess(rows: Iterable[dict], now: datetime, failing_after: float) -> list[Health]:
    """Health of each source row (`Store.health_rows`: times already parsed)."""
    out = []
    for row in rows:
        since = None
        if row["enabled"]:
            since = down_since(
                last_success=row.get("last_clean", row["last_success"]),
                added_at=row["added_at"],
                consecutive_errors=row["consecutive_errors"] or 0,
                now=now,
                failing_after=failing_after,
                malformed=bool(row.get("last_warning")),
            )
        out.append(
            Health(
                name=row["name"],
                url=row["url"],
                enabled=bool(row["enabled"]),
                down=since is not None,
                since=since,
                last_success=row["last_success"],
                last_error=row["last_error"],
                last_error_at=row["last_error_at"],
                consecutive_errors=row["consecutive_errors"] or 0,
                recorded=row.get("down_since"),
                warning=row.get("last_warning") or None,
                last_clean=row.get("last_clean"),
            )
        )
    return out


def changes(report: Sequence[Health]) -> list[Change]:
    """What to announce: a new episode goes down; a recorded one ends with a real recovery.

    A recorded episode that ends without a newer success (the source was disabled, or
    `failing_after` was raised) is forgotten quietly.
    """
    out = []
    for h in report:
        if h.recorded is not None and h.recorded != h.since:
            good = h.last_success if not h.warning else None  # a malformed poll is no recovery
            recovered = good is not None and good > h.recorded
            out.append(Change(h.name, "up", h.recorded, alert=recovered, record=None))
        if h.since is not None and h.recorded != h.since:
            out.append(Change(h.name, "down", h.since, alert=True, record=h.since))
    return out


def episode_key(kind: str, name: str, since: datetime) -> str:
    return f"source-{kind}:{name}:{since.isoformat()}"


def health_alert(
    change: Change, health: Health, *, channel: str, timezone: str, now: datetime
) -> Alert:
    """The message of one transition; server-supplied error text is escaped per format."""
    name = health.name
    when = format_time(change.since, timezone)
    if change.kind == "down":
        title = f"news-monitor: source {name} is down"
        error = _problem(health)[:300]
        if _malformed(health):
            what = "no well-formed feed since" if health.last_clean else "never well-formed, added"
            lead = f"{name} is down: {what} {when} (its feed is malformed)."
        else:
            what = "no successful poll since" if health.last_success else "never polled OK, added"
            lead = f"{name} is down: {what} {when} ({health.consecutive_errors} failures in a row)."
        text = f"{lead}\nLast error: {error}\n{mask(health.url)}"
        markdown = f"{escape_markdown(lead)}\n\nLast error: {escape_markdown(error)}"
        html = f"<p>{escape_html(lead)}</p><p>Last error: {escape_html(error)}</p>"
    else:
        title = f"news-monitor: source {name} recovered"
        ok = format_time(health.last_success, timezone)
        lead = f"{name} recovered: polled OK at {ok}, after no success since {when}."
        text, markdown, html = lead, escape_markdown(lead), f"<p>{escape_html(lead)}</p>"
    return Alert(
        key=episode_key(change.kind, name, change.since),
        rule=HEALTH_RULE,
        channel=channel,
        message=Message(title=title, text=text, markdown=markdown, html=html),
        due_at=now,
    )


def describe(h: Health, timezone: str) -> str:
    """One line for `sources`: since when, and the last error (or what is malformed)."""
    if _malformed(h):
        what = "no well-formed feed since" if h.last_clean else "never a well-formed feed; added"
        return f"  {h.name}: {what} {format_time(h.since, timezone)}; {_problem(h)}"
    what = "no success since" if h.last_success else "never polled OK; added"
    return f"  {h.name}: {what} {format_time(h.since, timezone)}; last error: {_problem(h)}"


def polling_ok(
    report: Sequence[Health], intervals: Mapping[str, float], now: datetime
) -> tuple[bool, str]:
    """Are polls succeeding? Yes when some source of `intervals` (the enabled ones: name ->
    poll interval) had a good poll within 3 intervals + 60 s and is not down. Says why."""
    good, bad = [], []
    for h in (h for h in report if h.name in intervals):
        limit = 3 * intervals[h.name] + 60
        age = None if h.last_success is None else int((now - h.last_success).total_seconds())
        if h.down:
            bad.append(f"{h.name}: down ({_problem(h)})")
        elif age is None:
            bad.append(f"{h.name}: never polled OK")
        elif age > limit:
            bad.append(f"{h.name}: last good poll {age} s ago (more than {limit:g} s)")
        else:
            good.append(h.name)
    if good:
        return True, f"ok: {len(good)} of {len(intervals)} sources polled OK recently"
    more = f"; {len(bad) - 5} more" if len(bad) > 5 else ""
    return False, "no source is polling OK: " + ("; ".join(bad[:5]) or "none polled yet") + more
