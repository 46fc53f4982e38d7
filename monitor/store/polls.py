"""One poll's transaction: its articles, copies, stories, matches, alerts and source state.

Why one transaction: a crash can then lose a whole poll (done again at the next one) but never
half of it, and an alert is queued with the match that caused it (the outbox). The decisions
(is it a copy, which story, which alerts) are the pure `stories` core's and the planner's;
this module runs them on what the window holds, under the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from monitor.models import Alert, Candidate, GoodPoll, Match, Saved
from monitor.store import copies, rows, stories
from monitor.store.batch import Batch
from monitor.store.connection import SqliteBase
from monitor.store.sources import record_success

Planner = Callable[..., Sequence[Alert]]  # plan(article_id, article, match, story) -> alerts


class PollsMixin(SqliteBase):
    def save_poll(
        self,
        poll: GoodPoll,
        candidates: Sequence[Candidate],
        *,
        plan: Planner | None = None,
        window: float = 72 * 3600.0,
        items: Sequence[tuple[str, str]] = (),
        listed: Sequence[str] = (),
        skipped: Sequence[tuple[str, int]] = (),
    ) -> Saved:
        """Store one poll's articles, copies, stories, matches and source state in one transaction.

        Existing articles are looked up again under the write lock, so a concurrent poll of
        another feed of the same outlet cannot create a second row for the same item. A new item
        that is a copy of an article of the last `window` seconds (same URL or GUID from another
        source, same fingerprint, or a similar title + lead) is recorded as a copy and never
        matched again. `plan(article_id, article, match, story)` turns each new match into
        alerts, queued in the same transaction (the outbox); a match the candidate holds
        (Candidate.held) is recorded without any. `items`: (key, hash) of the feed
        items this poll processed (see item_hashes); `skipped`: (reason, count) of those it
        left out (normalize.to_articles), shown by `sources`; `poll.warning`: what was wrong
        with the body ("malformed: ...") though its items could be read.

        The lookups and writes of all the poll's items are batched (store/batch.py): a poll
        of 20 new items hands SQLite ~20 statements instead of ~175.
        """
        saved = _Saved()
        source, now = poll.source, poll.now
        since = now - timedelta(seconds=window)
        with self.immediate() as conn:
            copies.prune_window(conn, since)
            stories.prune_window(conn, since)
            batch = Batch(conn, [c.article for c in candidates], now, since)
            for candidate in candidates:
                _take(batch, candidate, plan, saved)
            batch.flush()
            rows.save_item_hashes(conn, source, items, now)
            processed = {key for key, _ in items}
            rows.touch_listed(conn, source, [k for k in listed if k not in processed], now)
            # the body was read: no warning means a clean body (not "the last warning stands")
            clean = replace(poll, warning=poll.warning or "")
            record_success(conn, clean, len(saved.new_ids), skipped)
        return Saved(
            tuple(saved.new_ids), tuple(saved.edited_ids), tuple(saved.new_matches),
            tuple(saved.copied), tuple(saved.held),
        )  # fmt: skip


@dataclass(slots=True)
class _Saved:
    new_ids: list[int] = field(default_factory=list)
    edited_ids: list[int] = field(default_factory=list)
    new_matches: list[tuple[int, Match]] = field(default_factory=list)
    copied: list[tuple[str, int]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def _take(batch: Batch, candidate: Candidate, plan: Planner | None, saved: _Saved) -> None:
    """One candidate, decided as if alone after the ones before it (store/batch.py): a copy is
    recorded; a new article is queued with its sketch and word counts (every new article
    counts in the window's word frequencies); an edit is queued. A matched one then joins a
    story (an edit too, when a rule matches it only now) and its new matches are planned, on
    what the poll wrote so far."""
    known = batch.known(candidate.article)
    copy = copies.check_copy(batch, candidate, known)
    if copy is not None:
        if copy.new:
            saved.copied.append((candidate.article.url, copy.original))
        return
    if known is None:
        article_id = batch.add_article(candidate)
        saved.new_ids.append(article_id)
    else:
        article_id = known.id
        if batch.edit_article(known, candidate.article):
            saved.edited_ids.append(article_id)
    if not candidate.matches:
        return
    batch.flush()  # placement and planning read the window, this poll's writes included
    conn, now = batch.conn, batch.now
    stories.place_story(conn, article_id, candidate, now, batch.since)
    for match in _new_matches(conn, article_id, candidate, now, plan):
        if match.rule in candidate.held:  # recorded, never alerted (alerts/held.py)
            saved.held.append(candidate.held[match.rule])
        else:
            saved.new_matches.append((article_id, match))


def _new_matches(
    conn: sqlite3.Connection,
    article_id: int,
    candidate: Candidate,
    now: datetime,
    plan: Planner | None,
) -> list[Match]:
    """Record the candidate's matches; those not recorded before are new, and queue the alerts
    `plan` makes of them, except for a held match: no alert, no story alert."""
    new: list[Match] = []
    for match in candidate.matches:
        held = candidate.held.get(match.rule)
        if not rows.insert_match(conn, article_id, match, now, held):
            continue
        new.append(match)
        if plan is not None and held is None:
            planned = stories.plan_match(conn, plan, article_id, candidate.article, match, now)
            rows.insert_alerts(conn, planned, now)
    return new
