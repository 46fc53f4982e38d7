"""Which alerts a new match queues: idempotency keys, subjects, and the planner the store calls.

Pure: the planner reads the time from the clock it was given and computes the rest from its
arguments, so the same stored match always plans the same keys (a replay queues nothing new; the
outbox ignores a key it has). The store calls `AlertPlanner.plan` inside a poll's transaction,
on the writer thread, so the planner touches no store.

One message per article and channel: a key is (channel, article), whatever the rule, and a
story alert is keyed by the article that brings its news. When two rules match one article,
each plans its alert as if alone; the second joins the first's outbox row (store/rows.py
merge_alert), which then names both rules and goes at the earliest time either allows: a rule
in a digest and an immediate rule on one channel send it at once, and the digest leaves it out.
An article already sent (or dropped) on a channel is not sent there again when another rule
matches it later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime

from monitor.alerts.render import render_alert
from monitor.alerts.timing import hold_until
from monitor.clock import Clock
from monitor.models import Alert, Article, Match, Rule, StoryContext
from monitor.stories.developments import development, story_alert

STDOUT = "stdout"  # the channel of rules that name none: the alert is printed

NextDigest = Callable[[str, datetime, str], datetime]  # (cron, now, time zone) -> next summary


def alert_key(channel: str, subject: str) -> str:
    """Stable outbox key for (channel, subject): one message per subject and channel, whichever
    rules ask for it; JSON framing so no two pairs collide."""
    raw = json.dumps([channel, subject], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()


def article_subject(article_id: int) -> str:
    return f"article:{article_id}"


def plan_alerts(
    article_id: int,
    article: Article,
    match: Match,
    *,
    rule: Rule,
    source_title: str,
    timezone: str,
    now: datetime,
    digest_at: datetime | None = None,
    story: StoryContext | None = None,
) -> list[Alert]:
    """The outbox rows for a new match: one per channel of the rule, keyed by channel and
    article (`article:<id>`), so another rule's alert of the article joins the same row.

    With `alert = "story"` and a `story`, the article opens the story's alert, or sends a
    follow-up when it brings a new development and the rule's cooldown has passed since the
    story's last alert, or nothing. With `alert = "article"` (or no story) every distinct
    article alerts. The story's other outlets are listed as "also reported by".

    A digest rule's rows wait for `digest_at` and go out as one summary; otherwise quiet hours
    (unless the rule is urgent) hold them until the quiet hours end.
    """
    story_id: int | None = None
    follow_up: str | bool = False
    if story is not None and rule.alert == "story":
        n = story_alert(story, article_id, cooldown=rule.cooldown, now=now)
        if n is None:
            return []
        story_id = story.story_id
        follow_up = (development(story) or True) if n > 0 else False
    message = render_alert(
        article,
        match,
        source_title=source_title,
        rule=rule,
        timezone=timezone,
        also_reported_by=story.outlets if story is not None else (),
        follow_up=follow_up,
    )
    due = digest_at or hold_until(rule, now, timezone) or now
    return [
        Alert(
            key=alert_key(channel, article_subject(article_id)),
            rule=rule.name,
            channel=channel,
            message=message,
            due_at=due,
            article_id=article_id,
            story_id=story_id,
            digest=digest_at is not None,
        )
        for channel in (rule.channels or (STDOUT,))
    ]


class AlertPlanner:
    """The alerts of the config's rules, planned at the clock's time in the monitor's zone.

    Built again when the config is reloaded. `next_digest` says when a digest rule's next
    summary goes out: it is cron arithmetic from the scheduler library, which the pure core may
    not import, so the caller hands it in.
    """

    def __init__(
        self, rules: Iterable[Rule], timezone: str, *, clock: Clock, next_digest: NextDigest
    ) -> None:
        self.rules = {r.name: r for r in rules}
        self.timezone = timezone
        self.clock = clock
        self.next_digest = next_digest

    def plan(
        self, article_id: int, article: Article, match: Match, story: StoryContext | None = None
    ) -> list[Alert]:
        """The alerts a new match should queue; none when its rule has left the config."""
        rule = self.rules.get(match.rule)
        if rule is None:
            return []
        now = self.clock.now()
        tz = self.timezone
        digest_at = self.next_digest(rule.digest, now, tz) if rule.digest else None
        return plan_alerts(
            article_id,
            article,
            match,
            rule=rule,
            source_title=article.source,
            timezone=tz,
            now=now,
            digest_at=digest_at,
            story=story,
        )
