"""Which new matches are recorded but never alerted: too old, a new source's backlog, muted.

Why: a source's first poll used to alert everything its feed held, a 2017 item included; a
10,000-item archive meant ~83 hours of messages at 20 per 10 minutes. A new match is held when

- its rule or its source is muted (`news-monitor mute`): "muted";
- its article is dated before now - max_age: "old". max_age is the rule's, else its source's,
  else `[monitor] max_age` (the config hands each source that default when it sets none);
- its article has no date and the poll is the source's first successful one: "backlog".
  Nothing says such an item is news; on a later poll an undated item counts as published when
  first seen, so it alerts.

A rule with `backfill = true` is never held for age (a mute still holds it). A held match is
stored like any other: the article is searchable and joins its story, and the match is recorded,
so an edit of the article never alerts it later. It plans no alert and opens no story alert: the
story's next article that is not held opens it (store/polls.py never calls the planner for it).

Pure: the caller says what time it is, whether the poll is the source's first, what is muted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from monitor.models import Article, Rule, Source

HeldReason = Literal["muted", "old", "backlog"]

# how the summaries say each reason
REASON_WORDS: Mapping[str, str] = {
    "old": "older than max_age",
    "backlog": "undated, on the source's first poll",
    "muted": "muted",
}


def max_age(rule: Rule | None, source: Source) -> float:
    """Seconds: the rule's max_age wins over the source's (which is [monitor]'s by default)."""
    if rule is not None and rule.max_age is not None:
        return rule.max_age
    return source.max_age


def age_reason(
    article: Article, limit: float, *, now: datetime, first_poll: bool
) -> HeldReason | None:
    """Why an article is too old to alert with max_age `limit` (seconds), or None."""
    if article.undated or article.published is None:
        return "backlog" if first_poll else None
    if article.published < now - timedelta(seconds=limit):
        return "old"
    return None


@dataclass(frozen=True, slots=True)
class Hold:
    """One poll of one source: what decides which of its new matches are held.

    `rules`: the configured rules by name (their max_age and backfill; a rule missing here gets
    the source's max_age); `muted_rules`: the rules muted now; `source_muted`: the source is."""

    source: Source
    now: datetime
    first_poll: bool = False
    rules: Mapping[str, Rule] = field(default_factory=dict)
    muted_rules: frozenset[str] = frozenset()
    source_muted: bool = False

    def reason(self, article: Article, rule_name: str) -> HeldReason | None:
        """Why the match of `rule_name` on `article` is recorded but not alerted, or None."""
        if self.source_muted or rule_name in self.muted_rules:
            return "muted"
        rule = self.rules.get(rule_name)
        if rule is not None and rule.backfill:
            return None
        limit = max_age(rule, self.source)
        return age_reason(article, limit, now=self.now, first_poll=self.first_poll)


def describe(counts: Mapping[str, int]) -> str:
    """'12 older than max_age, 1 muted' for (reason -> count)."""
    return ", ".join(f"{n} {REASON_WORDS.get(reason, reason)}" for reason, n in counts.items())
