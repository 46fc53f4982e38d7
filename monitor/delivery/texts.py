"""Alert texts written at send time from what is stored: digests, story alerts that name the
outlets which joined their story after the alert was queued, and alerts that several rules
matched (one message per article and channel names them all) (service layer, no SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor.alerts.render import render_alert, render_digest
from monitor.errors import MonitorError
from monitor.models import Match, Message, Pending, Rule
from monitor.store import Store
from monitor.stories.developments import OPENING


def _matches(store: Store, article_id: int, rules: Sequence[str]) -> list[Match]:
    """The stored match of each rule, in the order given (a rule with none is left out)."""
    found = (store.match_for(article_id, rule) for rule in rules)
    return [m for m in found if m is not None]


def digest_message(
    store: Store, rules: Mapping[str, Rule], batch: Sequence[Pending], timezone: str, now: datetime
) -> Message:
    """One summary message for a digest rule's collected alerts; an article other rules
    matched too is listed once, with each rule's terms."""
    rule = rules.get(batch[0].rule)
    if rule is None:  # removed by a reload: say so instead of a bare StopIteration
        raise MonitorError(f"rule {batch[0].rule!r} is no longer in the config")
    items = []
    for row in batch:
        if row.article_id is None:
            continue
        article = store.article(row.article_id)
        matches = _matches(store, row.article_id, row.rules)
        if article is not None and matches:
            items.append((article, matches, article.source))
    return render_digest(items, rule=rule, timezone=timezone, now=now)


def complete_unsent(store: Store, timezone: str, now: datetime) -> None:
    """Write again the alerts due and not tried yet whose text may have changed since they
    were queued: a story alert names every outlet the story has by now (polls of other outlets
    that ran at the same time joined it after the alert was written), and an alert that other
    rules matched too names every one of them, with its terms."""
    for unsent in store.unsent_alerts(now):
        article = store.article(unsent.article_id)
        matches = _matches(store, unsent.article_id, unsent.rules)
        if article is None or not matches:
            continue
        others: list[str] = []
        if unsent.story_id is not None:
            outlets = store.story_outlets(unsent.story_id)
            others = [o for o in outlets if o != article.source]
        why = unsent.reason
        follow_up = why if why and why != OPENING else False
        message = render_alert(
            article, matches[0], source_title=article.source, timezone=timezone,
            also_reported_by=others, follow_up=follow_up, also_matched=matches[1:],
        )  # fmt: skip
        if message.text != unsent.text:  # only when something changed (no write per tick)
            store.rewrite_alert(unsent.outbox_id, message)
