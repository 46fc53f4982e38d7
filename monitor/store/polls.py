"""One poll's transaction: its articles, copies, stories, matches, alerts and source state.

Why one transaction: a crash can then lose a whole poll (done again at the next one) but never
half of it, and an alert is queued with the match that caused it (the outbox). The decisions
(is it a copy, which story, which alerts) are the pure `stories` core's and the planner's;
this module runs them on what the window holds, under the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from monitor.models import Alert, Candidate, GoodPoll, Known, Match, Saved
from monitor.store import copies, rows, stories
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
        alerts, queued in the same transaction (the outbox). `items`: (key, hash) of the feed
        items this poll processed (see item_hashes); `skipped`: (reason, count) of those it
        left out (normalize.to_articles), shown by `sources`; `poll.warning`: what was wrong
        with the body ("malformed: ...") though its items could be read.
        """
        new_ids: list[int] = []
        edited_ids: list[int] = []
        new_matches: list[tuple[int, Match]] = []
        copied: list[tuple[str, int]] = []
        source, now = poll.source, poll.now
        since = now - timedelta(seconds=window)
        with self.immediate() as conn:
            copies.prune_window(conn, since)
            stories.prune_window(conn, since)
            for candidate in candidates:
                known = rows.find_known(conn, candidate.article)
                copy = copies.check_copy(conn, candidate, known, now, since)
                if copy is not None:
                    if copy.new:
                        copied.append((candidate.article.url, copy.original))
                    continue
                if known is None:
                    article_id = _insert_new(conn, candidate, now, since)
                    new_ids.append(article_id)
                else:
                    article_id = known.id
                    if _update_known(conn, known, candidate, now, since):
                        edited_ids.append(article_id)
                for match in _new_matches(conn, article_id, candidate, now, plan):
                    new_matches.append((article_id, match))
            rows.save_item_hashes(conn, source, items, now)
            rows.touch_listed(conn, source, listed, now)
            # the body was read: no warning means a clean body (not "the last warning stands")
            clean = replace(poll, warning=poll.warning or "")
            record_success(conn, clean, len(new_ids), skipped)
        return Saved(tuple(new_ids), tuple(edited_ids), tuple(new_matches), tuple(copied))


def _insert_new(
    conn: sqlite3.Connection, candidate: Candidate, now: datetime, since: datetime
) -> int:
    """Store a new article with its sketch, word counts and story; its id."""
    article_id = rows.insert_article(conn, candidate.article)
    if candidate.sketch:
        copies.file_signature(conn, article_id, candidate.sketch, now)
    # every new article counts in the window's word frequencies
    stories.count_terms(conn, [candidate.terms] if candidate.terms else [], now)
    stories.place_story(conn, article_id, candidate, now, since)
    return article_id


def _update_known(
    conn: sqlite3.Connection, known: Known, candidate: Candidate, now: datetime, since: datetime
) -> bool:
    """Store an edit of an article stored before (True if it changed), and put it in a story
    when a rule matches it only now."""
    article = candidate.article
    edited = known.fingerprint != article.fingerprint or known.title != article.title
    if edited:
        rows.update_article(conn, known.id, article, now)
    stories.place_story(conn, known.id, candidate, now, since)
    return edited


def _new_matches(
    conn: sqlite3.Connection,
    article_id: int,
    candidate: Candidate,
    now: datetime,
    plan: Planner | None,
) -> list[Match]:
    """Record the candidate's matches; those not recorded before are new, and queue the alerts
    `plan` makes of them."""
    new: list[Match] = []
    for match in candidate.matches:
        if not rows.insert_match(conn, article_id, match, now):
            continue
        new.append(match)
        if plan is not None:
            planned = stories.plan_match(conn, plan, article_id, candidate.article, match, now)
            rows.insert_alerts(conn, planned, now)
    return new
