"""Alert texts written at send time from what is stored: digests, and story alerts that name
the outlets which joined their story after the alert was queued (service layer, no SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor.alerts.render import render_alert, render_digest
from monitor.errors import MonitorError
from monitor.models import Message, Pending, Rule
from monitor.store import Store
from monitor.stories.developments import OPENING


def digest_message(
    store: Store, rules: Mapping[str, Rule], batch: Sequence[Pending], timezone: str, now: datetime
) -> Message:
    """One summary message for a digest rule's collected alerts."""
    rule = rules.get(batch[0].rule)
    if rule is None:  # removed by a reload: say so instead of a bare StopIteration
        raise MonitorError(f"rule {batch[0].rule!r} is no longer in the config")
    items = []
    for row in batch:
        if row.article_id is None:
            continue
        article = store.article(row.article_id)
        match = store.match_for(row.article_id, row.rule)
        if article is not None and match is not None:
            items.append((article, match, article.source))
    return render_digest(items, rule=rule, timezone=timezone, now=now)


def name_all_outlets(store: Store, rules: Mapping[str, Rule], timezone: str, now: datetime) -> None:
    """An unsent story alert names every outlet the story has by now: polls of other outlets
    that ran at the same time joined it after the alert was written."""
    for unsent in store.unsent_story_alerts(now):
        rule = rules.get(unsent.rule)
        article = store.article(unsent.article_id)
        match = store.match_for(unsent.article_id, unsent.rule)
        if rule is None or article is None or match is None:
            continue
        others = [o for o in store.story_outlets(unsent.story_id) if o != article.source]
        why = unsent.reason
        follow_up = why if why and why != OPENING else False
        message = render_alert(
            article, match, source_title=article.source, rule=rule, timezone=timezone,
            also_reported_by=others, follow_up=follow_up,
        )  # fmt: skip
        if message.text != unsent.text:  # only when another outlet joined (no write per tick)
            store.rewrite_alert(unsent.outbox_id, message)
