"""Memory held down (issue 13): bodies and parse trees do not pile up across concurrent polls.

The figures are bench/bench_memory.py's; these tests pin the mechanisms: parses bounded across
polls, body checks that copy nothing yet say what the copying ones said, feedparser's bozo
exception cut loose from the parse it came from.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.ingest import parse
from monitor.ingest.charsets import blank, is_utf8
from monitor.ingest.fetch import Fetcher
from monitor.models import Source
from monitor.rules.query import RuleSet
from monitor.service import pipeline
from monitor.store import SqliteStore
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


def test_blank_and_is_utf8_say_what_strip_and_decode_say() -> None:
    rng = random.Random(13)
    pieces = [b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x85", b"\xa0", b"a",
              codecs.BOM_UTF8, b"\xef", b"\x00"]  # fmt: skip
    for _ in range(5000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        assert blank(body) == (not body.strip()), body
        assert blank(body, bom=True) == (not body.removeprefix(codecs.BOM_UTF8).strip()), body
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            assert not is_utf8(raw), raw
        else:
            assert is_utf8(raw), raw
    text = ("é€😀" * 300_000).encode()  # sequences cut at the 1 MB steps, at every offset
    for shift in range(4):
        assert is_utf8(b"a" * shift + text)
        assert not is_utf8(b"a" * shift + text[:-1])


def test_the_bozo_exception_keeps_no_frames() -> None:
    """Its traceback's frames held feedparser's whole result: a cycle only the collector frees."""
    broken = rss([Item("g1", "One"), Item("g2", "Two")]).replace(b"</channel>", b"")
    try:
        raise ValueError("inner")
    except ValueError as inner:
        try:
            raise KeyError("outer") from inner
        except KeyError as outer:
            caught = outer
    cause = caught.__context__
    assert caught.__traceback__ is not None and cause is not None
    assert parse._without_traceback(caught) is caught
    assert caught.__traceback__ is None and cause.__traceback__ is None
    assert parse.parse_feed(broken, url="https://x.example/").warning.startswith("malformed")


async def test_concurrent_polls_parse_at_most_analysing_bodies_at_once(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    analyse = pipeline.analyse_items

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # long enough for the other polls' bodies to arrive meanwhile
        try:
            return analyse(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(pipeline, "analyse_items", counted)
    sources = []
    for n in range(8):
        server.route(f"/f{n}", Reply(body=rss([Item(f"g{n}", f"Item {n}")])))
        sources.append(Source(f"f{n}", server.url(f"/f{n}")))
    gate = asyncio.Semaphore(2)
    with SqliteStore(tmp_path / "monitor.db") as store:
        store.sync_sources(sources, NOW)
        async with Fetcher(concurrency=8, per_host=8) as fetcher:
            results = await asyncio.gather(*(
                pipeline.poll_source(s, fetcher=fetcher, store=store, rules=RuleSet([]),
                                     now=NOW, analysing=gate)
                for s in sources
            ))  # fmt: skip
    assert [r.outcome for r in results] == ["new"] * 8
    assert most == 2
