"""One poll's transaction, batched (store/batch.py): the items of one poll still see each other
as if each were saved alone, in order, and a poll runs a few statements, not several per item.
On either backend (the `store` fixture), but for the SQLite file's own migration."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from monitor.models import Article, Candidate, GoodPoll, Match, Source
from monitor.service import pipeline
from monitor.store import SqliteStore, Store
from monitor.store.schema import MIGRATIONS
from monitor.stories import copies
from monitor.stories.lexicon import default_lexicon

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
TEXT = (
    "Negotiators from both delegations met again in Abu Dhabi on Tuesday to discuss a prisoner "
    "exchange and the reopening of the grain corridor, officials said after the talks ended."
)


def article(source: str, n: int, title: str, *, guid: str = "", fingerprint: str = "") -> Article:
    url = f"https://{source}.example/{n}"
    return Article(
        source, guid or url, url, title, TEXT, language="en", first_seen=NOW,
        fingerprint=fingerprint or f"fp-{title}",
    )  # fmt: skip


def poll(source: str, at: datetime = NOW) -> GoodPoll:
    return GoodPoll(source, at, at + timedelta(minutes=5), f"http://{source}/")


@pytest.fixture
def store(store: Store) -> Store:
    """conftest's store (once per backend), with this module's two sources."""
    store.sync_sources([Source(s, f"http://{s}/") for s in ("wire", "paper")], NOW)
    return store


def test_an_item_sees_the_items_before_it_in_the_same_poll(store: Store) -> None:
    first = article("wire", 1, "Talks resume", guid="tag:wire,1")
    same_text = article("wire", 2, "Talks resume")  # the first one's fingerprint: a copy
    again = article("wire", 1, "Talks resume again", fingerprint="fp-again")  # its URL: an edit
    by_guid = article("wire", 3, "Talks resume, day two", guid="tag:wire,1", fingerprint="fp-3")
    items = [Candidate(a) for a in (first, same_text, again, by_guid)]
    saved = store.save_poll(poll("wire"), items)
    assert saved.new_ids == (1,)
    assert saved.copies == ((same_text.url, 1),)
    assert saved.edited_ids == (1, 1)  # by URL, then by GUID
    assert store.article(1).title == "Talks resume, day two"  # type: ignore[union-attr]


def test_an_edit_moves_the_fingerprint_for_later_items(store: Store) -> None:
    store.save_poll(poll("wire"), [Candidate(article("wire", 1, "Talks resume"))])
    edited = article("wire", 1, "Talks resume", fingerprint="fp-new")
    old_text = article("paper", 7, "Talks resume")  # the fingerprint article 1 just gave up
    new_text = article("paper", 8, "Talks resume", fingerprint="fp-new")
    later = poll("paper", NOW + timedelta(minutes=1))
    saved = store.save_poll(later, [Candidate(edited), Candidate(old_text), Candidate(new_text)])
    assert saved.edited_ids == (1,)
    assert saved.new_ids == (2,)  # nobody has the old fingerprint any more
    assert saved.copies == ((new_text.url, 1),)


def test_a_matched_item_is_compared_with_the_sketches_of_the_same_poll(store: Store) -> None:
    lexicon = default_lexicon()
    match = (Match("talks", ("abu dhabi",)),)
    original = pipeline.candidate(article("wire", 1, "Abu Dhabi talks resume"), (), lexicon)
    rewrite = article("wire", 2, "Abu Dhabi talks resume, officials say", fingerprint="fp-x")
    copy = pipeline.candidate(rewrite, match, lexicon)
    saved = store.save_poll(poll("wire"), [original, copy])
    assert saved.new_ids == (1,) and saved.new_matches == ()
    assert saved.copies == ((rewrite.url, 1),)


class _Counted:
    """A SQLite connection, counting the statements handed to SQLite (an executemany is one)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.calls = conn, 0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self.calls += 1
        return self.conn.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self.calls += 1
        return self.conn.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.mark.parametrize("size", [1, 40])
def test_a_poll_runs_a_few_statements_however_many_items(store: Store, size: int) -> None:
    lexicon = default_lexicon()
    items = [
        pipeline.candidate(article("wire", n, f"Headline number {n} about a thing"), (), lexicon)
        for n in range(size)
    ]
    calls = _count_statements(store)
    saved = store.save_poll(poll("wire"), items, items=[(f"k{n}", "h") for n in range(size)])
    assert len(saved.new_ids) == size
    assert calls() <= 20  # 16 either way; one at a time, 40 items took 330


def _count_statements(store: Store) -> Callable[[], int]:
    """Count the statements the store hands its engine from now on (an executemany is one):
    SQLite's through its connection, PostgreSQL's through the store's `db`, which a
    transaction runs its statements on too."""
    conn = store.db.conn  # type: ignore[attr-defined]
    if isinstance(conn, sqlite3.Connection):
        counted = _Counted(conn)
        store.db.conn = counted  # type: ignore[attr-defined]
        return lambda: counted.calls
    calls = [0]
    for name in ("execute", "executemany"):
        method = getattr(conn, name)

        def counting(*args: Any, _method: Callable = method) -> Any:
            calls[0] += 1
            return _method(*args)

        setattr(conn, name, counting)
    return lambda: calls[0]


def test_sketches_filed_before_the_hash_change_are_refiled(tmp_path: Path) -> None:
    """Schema v10: sketches of the window hashed with blake2b are computed again with xxh3, so
    a copy of an article stored before the upgrade is still found."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for n, migration in enumerate(MIGRATIONS[:9], start=1):
        migration(db)
        db.execute(f"PRAGMA user_version = {n}")
    old = article("wire", 1, "Abu Dhabi talks resume")
    at = NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    db["articles"].insert(
        {"id": 1, "source": "wire", "guid": old.guid, "url": old.url, "title": old.title,
         "summary": old.summary, "text": "", "language": "en", "first_seen": at,
         "fingerprint": old.fingerprint}
    )  # fmt: skip
    blake = (7, 8, 9)  # as the old hash filed it: never equal to a new key
    db["signatures"].insert({"article_id": 1, "at": at, "sig": array("q", blake).tobytes()})
    db["sig_keys"].insert_all([{"key": k, "article_id": 1, "at": at} for k in blake])
    db.close()
    with SqliteStore(path) as store:
        sketch = copies.sketch(copies.lead(old.title, old.summary, ""), "en")
        keys = store.db.execute("SELECT key FROM sig_keys ORDER BY key").fetchall()
        assert [k for (k,) in keys] == sorted(copies.index_keys(sketch))
        match = (Match("talks", ("abu dhabi",)),)
        rewrite = article("paper", 2, "Abu Dhabi talks resume, officials say")
        copy = pipeline.candidate(rewrite, match, default_lexicon())
        saved = store.save_poll(poll("paper"), [copy])
        assert saved.copies == ((rewrite.url, 1),)
