"""Is a later article of a story news? The story-mode alert decision, pure.

A story alerts when it first matches a rule. A later article alerts again (a follow-up) only if
it brings a development and, except for doubt, the rule's cooldown has passed since the
story's last alert:

- new facts: names, numbers and quotations the story's articles did not have, weighed by how rare
  they are in the window (`fact_weight`), adding up to `NEW_FACTS`; or
- new content: the article is far (cosine below `FAR`) from every article that already
  alerted for the rule; or
- doubt: the article only just reached the join threshold (`UNSURE`). It may be another event,
  and a missed event is worse than one extra message, so the cooldown does not hold it back.

A development held back by the cooldown is still news for the next article after it: the store
passes every fact added since the last alert (`StoryContext.fresh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from monitor.models import Fact, StoryContext

OPENING = "first report"  # why a story's first alert went
NEW_FACTS = 2.0  # summed weight of new names/numbers that makes a development
RARE = 3.0  # idf at which a new fact counts fully (1.0); commoner facts count less
FAR = 0.15  # cosine to every alerted article below which the content itself is new
UNSURE = 1.15  # a join score below this (1.0 = the threshold) is a doubtful join
MIN_WINDOW = 50  # fact weights presume a window of at least this many articles
SHOWN_FACTS = 6  # at most this many new facts named in a follow-up's "what is new" line


def fact_weight(idf: float) -> float:
    """How much one new name or number counts towards a development (rare ones count fully)."""
    return min(1.0, max(0.0, idf - 1.0) / (RARE - 1.0))


def doubtful(ctx: StoryContext) -> bool:
    """Did the article only just make it into the story? Then it may be another event."""
    return 0.0 < ctx.score < UNSURE


def development(ctx: StoryContext) -> str | None:
    """What makes this article news for a story that already alerted, or None."""
    if sum(ctx.fresh.values()) >= NEW_FACTS:
        return "new: " + describe(ctx.fresh)
    if ctx.novelty >= 1.0 - FAR:
        return "new angle: little in common with what was already sent"
    if doubtful(ctx):
        return "may be a separate event: only loosely like the story"
    return None


def describe(fresh: Mapping[Fact, float]) -> str:
    """The heaviest new facts, readable: `Hamilton, Verstappen, 100`."""
    shown = sorted(fresh.items(), key=lambda fw: (-fw[1], fw[0]))[:SHOWN_FACTS]
    return ", ".join(readable(f) for f, _w in shown)


def readable(fact: Fact) -> str:
    """A fact as a reader would write it: the name `sturgeon` -> `Sturgeon`, a quotation in
    guillemets; numbers (and facts of old databases) as they are."""
    if fact.kind == "name":
        return fact.text.title()
    if fact.kind == "quote":
        return f"«{fact.text}…»"
    return fact.text


def story_alert(
    ctx: StoryContext, article_id: int, *, cooldown: float, now: datetime
) -> int | None:
    """Which alert of the story this article triggers: 0 opens, n > 0 is the n-th follow-up,
    None is silence (nothing new, or within the cooldown). Replaying an article that already
    triggered one gives the same n, so its outbox key is the same.
    """
    for sent in ctx.sent:
        if sent.article_id == article_id:
            return sent.n
    if not ctx.sent:
        return 0
    if development(ctx) is None:
        return None
    last = max(s.at for s in ctx.sent)
    if now - last < timedelta(seconds=cooldown) and not doubtful(ctx):
        return None
    return max(s.n for s in ctx.sent) + 1
