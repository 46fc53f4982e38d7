"""Workers storing reports of the same event at the same moment: one story, one alert.

Several store handles (as several workers have: each its own connection), released together by
a barrier, each save one poll of a different outlet's report of the same event. Whatever the
interleaving, the event is one article (the other reports its copies) in one story, with one
alert. On both backends: SQLite serialises writers on the file, PostgreSQL on the cluster-wide
write lock a poll that stores articles takes (store/pg/connection.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from monitor.models import Alert, Article, GoodPoll, Match, Message, Source
from monitor.service.pipeline import candidate
from monitor.store import open_store
from monitor.stories.lexicon import load_lexicon

WORKERS = 4
EVENTS = 6
NOW = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
LEXICON = load_lexicon(())
# six events that share no words but the rule's: none is a copy of another
PLACES = ["Abu Dhabi", "Geneva", "Istanbul", "Riyadh", "Doha", "Vienna"]
TOPICS = ["prisoner swaps", "grain corridors", "energy strikes", "border monitors",
          "nuclear plant inspections", "humanitarian convoys"]  # fmt: skip
WHO = ["mediators", "foreign ministers", "military envoys", "parliament speakers",
       "Red Cross officials", "security advisers"]  # fmt: skip


def plan(article_id: int, article: Article, match: Match, story: object) -> list[Alert]:
    message = Message(article.title, article.title, article.title, article.title)
    return [Alert(f"{match.rule}:{article_id}", match.rule, "desk", message, NOW, article_id)]


def report(event: int, outlet: int) -> Article:
    """Outlet `outlet`'s report of event `event`: the same wire text under its own URL."""
    place, topic, who = PLACES[event], TOPICS[event], WHO[event]
    title = f"Ceasefire talks in {place}, round {event}: {who} agree on {topic}"
    lead = (
        f"The meeting in {place} ended with an agreement on {topic}, {who} told reporters, "
        f"and a schedule for round {event + 1} of the negotiations."
    )
    return Article(
        f"outlet{outlet}", f"o{outlet}-e{event}", f"https://outlet{outlet}.example/e{event}",
        title, lead, "", language="en", published=NOW, first_seen=NOW,
    )  # fmt: skip


def test_reports_of_one_event_saved_at_once_make_one_story_and_one_alert(
    database: str | Path,
) -> None:
    sources = [Source(f"outlet{n}", f"https://outlet{n}.example/feed") for n in range(WORKERS)]
    with open_store(database) as store:
        store.sync_sources(sources, NOW)
    barrier = threading.Barrier(WORKERS, timeout=30)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with open_store(database) as own:  # a worker's own connection, in its thread
                for event in range(EVENTS):
                    found = candidate(report(event, n), (Match("truce", ("x",)),), LEXICON)
                    barrier.wait()  # every worker saves this event's report at the same moment
                    poll = GoodPoll(f"outlet{n}", NOW, NOW, sources[n].url)
                    own.save_poll(poll, [found], plan=plan)
        except BaseException as exc:  # noqa: BLE001  # reported below, with the others
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    with open_store(database) as store:
        for event in range(EVENTS):
            title = f"%round {event}:%"
            stored = store.db.execute(
                "SELECT id FROM articles WHERE title LIKE ?", (title,)
            ).fetchall()
            copied = store.db.execute(
                "SELECT COUNT(*) FROM copies WHERE url LIKE ?", (f"%/e{event}",)
            ).fetchone()[0]
            stories = store.db.execute(
                "SELECT DISTINCT story_id FROM story_articles sa JOIN articles a "
                "ON a.id = sa.article_id WHERE a.title LIKE ?",
                (title,),
            ).fetchall()
            alerts = store.db.execute(
                "SELECT COUNT(*) FROM outbox o JOIN articles a ON a.id = o.article_id "
                "WHERE a.title LIKE ?",
                (title,),
            ).fetchone()[0]
            assert (len(stored), copied, len(stories), alerts) == (1, WORKERS - 1, 1, 1), event
