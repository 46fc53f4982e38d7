"""Every file of two hostile real-world corpora, served over loopback and polled for real.

feedparser's own test suite (`illformed/`, `encoding/`, `entities/` are the hostile parts) and the
corpora of ten other feed parsers: thousands of small files, each one a source. Each must end as
a success or a recorded error with a message; no poll may raise. One server, one Store, one
Fetcher, polled concurrently. `pytest -s` prints the counts.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.ingest.fetch import Fetcher
from monitor.models import PollResult, Source
from monitor.rules.query import RuleSet
from monitor.service.pipeline import poll_source
from monitor.store import SqliteStore
from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.slow  # end-to-end over the real corpus / the benches

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
CORPORA = ("feedparser-tests", "parser-corpora")
TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html",
}
RULES = RuleSet([("ukraine", "ukraine OR ucraina OR kyiv"), ("any", "the OR a OR news")])
CONCURRENCY = 16


def _files(corpus: Path) -> list[Path]:
    return sorted(p for name in CORPORA for p in (corpus / name).rglob("*") if p.is_file())


def _kind(error: str) -> str:
    """The error's family, for the printed summary: text up to the first detail."""
    return re.split(r"[:(]", error.removeprefix("parse: "), maxsplit=1)[0].strip()[:60]


async def test_every_corpus_file_polled_without_a_crash(corpus: Path, tmp_path: Path) -> None:
    files = _files(corpus)
    assert len(files) > 2000
    with LoopbackServer() as server, SqliteStore(tmp_path / "monitor.db") as store:
        for n, path in enumerate(files):
            ctype = TYPES.get(path.suffix.lower(), "application/octet-stream")
            server.route(f"/f{n}", Reply(body=path.read_bytes(), headers={"Content-Type": ctype}))
        sources = [Source(f"f{n}", server.url(f"/f{n}")) for n in range(len(files))]
        store.sync_sources(sources, NOW)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(fetcher: Fetcher, source: Source) -> PollResult | BaseException:
            async with gate:
                try:
                    return await poll_source(
                        source, fetcher=fetcher, store=store, rules=RULES, now=NOW
                    )
                except Exception as exc:  # a crash: collected, reported below
                    return exc

        async with Fetcher(timeout=30, concurrency=CONCURRENCY, per_host=CONCURRENCY) as fetcher:
            results = await asyncio.gather(*(one(fetcher, s) for s in sources))

        crashes = [
            f"{files[n].relative_to(corpus)}: {r!r}"
            for n, r in enumerate(results)
            if isinstance(r, BaseException)
        ]
        assert not crashes, "\n".join(crashes[:20])
        states = [store.source_state(s.name) for s in sources]
        articles = store.count_articles()
        matches = len(store.matches(limit=1_000_000))

    ok = [r for r in results if isinstance(r, PollResult) and r.outcome != "error"]
    errors = [r for r in results if isinstance(r, PollResult) and r.outcome == "error"]
    for n, (result, state) in enumerate(zip(results, states, strict=True)):
        where = files[n].relative_to(corpus)
        assert isinstance(result, PollResult)
        if result.outcome == "error":
            assert state.last_error and state.consecutive_errors == 1, where
            assert not state.last_error.startswith("internal error"), f"{where}: {state}"
        else:
            assert state.last_success == NOW and state.last_error is None, where

    kinds = Counter(_kind(r.error or "") for r in errors)
    per_corpus = Counter(
        (files[n].relative_to(corpus).parts[0], r.outcome == "error")
        for n, r in enumerate(results)
        if isinstance(r, PollResult)
    )
    print(f"\ncorpus poll: {len(files)} files, {len(ok)} ok, {len(errors)} recorded errors")
    for name in CORPORA:
        print(f"  {name}: {per_corpus[name, False]} ok, {per_corpus[name, True]} errors")
    print(f"  {articles} articles stored, {matches} matches")
    for kind, count in kinds.most_common(12):
        print(f"  {count:5d}  {kind}")
    assert len(ok) + len(errors) == len(files)
    assert len(ok) > len(files) // 2  # most of these are real, readable feeds
    assert articles > 1000
