"""Orchestration only: one poll of one source, from fetch to one store transaction.

The steps themselves live in their own modules (fetch, parse, normalize, rules, store); this
module decides their order and what a failure at each step means for the source's schedule.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from monitor.errors import FetchError, ParseError
from monitor.ingest.fetch import Fetcher
from monitor.ingest.fulltext import enrich
from monitor.ingest.normalize import Normalized, detect_language, has_link, to_articles
from monitor.ingest.pages import parse_listing
from monitor.ingest.parse import parse_feed, scan_items, without_items
from monitor.models import Alert, Article, Candidate, Match, Source
from monitor.rules.query import Document, RuleSet
from monitor.service import schedule as schedule
from monitor.store.sqlite import Store
from monitor.stories import copies, terms
from monitor.stories.lexicon import Lexicon, default_lexicon

Outcome = Literal["new", "unchanged", "not_modified", "error"]


class Writes(Protocol):
    """Where a poll's store writes run (monitor/writer.py runs them on a thread of its own)."""

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...


class Direct:
    """Writes on the caller's own store, in the caller's thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.store, method)(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Found:
    """A new match: the stored article id, the article and the rule that matched it."""

    article_id: int
    article: Article
    match: Match


@dataclass(frozen=True, slots=True)
class PollResult:
    source: str
    outcome: Outcome
    new: int = 0
    edited: int = 0
    found: tuple[Found, ...] = ()
    error: str | None = None
    skipped_items: tuple[tuple[str, int], ...] = ()  # (reason, count): items not stored, and why
    warning: str = ""  # what was wrong with a body read all the same ("malformed: ...")


def analyse(
    body: bytes, source: Source, *, url: str, charset: str | None, now: datetime
) -> list[Article]:
    """Parse and normalize a feed or listing page; CPU-bound, so run it off the event loop."""
    return _analyse(body, source, url=url, charset=charset, now=now)[0].articles


def _analyse(
    body: bytes, source: Source, *, url: str, charset: str | None, now: datetime
) -> tuple[Normalized, str]:
    """The articles, and the parser's warning about the body ("" if none)."""
    if source.kind == "html":
        parsed = parse_listing(body, url=url, charset=charset, source=source)
    else:
        parsed = parse_feed(body, url=url, charset=charset)
    got = to_articles(parsed.entries, source=source, feed_language=parsed.language, now=now)
    return got, parsed.warning


@dataclass(frozen=True, slots=True)
class Analysed:
    """A changed body's new or changed articles, the (key, hash) of the items to record as
    processed, how many items were skipped as unchanged since their last processing, and the
    items of those analysed that were not kept, by reason (normalize.to_articles); `warning`:
    what was wrong with the body, though its items could be read (parse.ParsedFeed)."""

    articles: list[Article]
    items: tuple[tuple[str, str], ...] = ()
    skipped: int = 0
    skipped_items: tuple[tuple[str, int], ...] = ()
    warning: str = ""
    listed: tuple[str, ...] = ()  # every item key the body lists (kept as "seen" while listed)
    reseen: frozenset[str] = frozenset()  # URLs of articles from items processed before


def analyse_items(
    body: bytes,
    source: Source,
    *,
    url: str,
    charset: str | None,
    now: datetime,
    seen: Mapping[str, str],
) -> Analysed:
    """`analyse`, minus the items whose hash (parse.scan_items) equals the one recorded when they
    were last processed: those skip normalizing, rule matching and story work. An item key that
    occurs twice is never skipped. When lxml cannot pre-scan the body, everything is analysed."""
    scanned = (
        scan_items(body, url=url, context=source.language or "") if source.kind != "html" else None
    )
    if scanned is None:
        got, warning = _analyse(body, source, url=url, charset=charset, now=now)
        return Analysed(got.articles, skipped_items=got.skipped, warning=warning)
    counts = Counter(key for key, _ in scanned)
    listed = tuple(counts)
    skip = frozenset(key for key, digest in scanned if counts[key] == 1 and seen.get(key) == digest)
    items = tuple((key, digest) for key, digest in scanned if key not in skip)
    if not items:
        return Analysed([], (), len(skip), listed=listed)
    reduced = without_items(body, skip, url=url, charset=charset) if skip else None
    if reduced is not None:  # the parsers read only the changed items
        parsed = parse_feed(reduced, url=url, charset="utf-8")
    else:
        parsed = parse_feed(body, url=url, charset=charset)
    got = to_articles(
        parsed.entries, source=source, feed_language=parsed.language, now=now, skip=skip, seen=seen
    )
    return Analysed(got.articles, items, len(skip), got.skipped, parsed.warning, listed, got.reseen)


async def poll_source(
    source: Source,
    *,
    fetcher: Fetcher,
    store: Store,
    rules: RuleSet,
    now: datetime,
    jitter: Callable[[], float] = random.random,
    plan: Callable[..., Sequence[Alert]] | None = None,
    window: float = 72 * 3600.0,
    lexicon: Lexicon | None = None,
    writes: Writes | None = None,
) -> PollResult:
    """Poll one source once. Every outcome, failures included, is recorded in the store.

    `plan(article_id, article, match, story)` turns each new match into outbox rows, written in
    the poll's own transaction. `window` (seconds) bounds copy detection and story grouping.
    Between reading what is known and saving there is no `await`, so within one event loop
    the decisions cannot race. `lexicon` (default: the shipped one) joins words of several
    languages for story grouping. `writes` runs the store's writes (default: here, on `store`;
    the daemon passes its writer thread, so a big save never blocks the event loop).
    """
    writes = writes or Direct(store)
    state = store.source_state(source.name)
    try:
        fetched = await fetcher.fetch(
            source.url,
            etag=state.etag,
            last_modified=state.last_modified,
            allow_private=source.allow_private,
        )
    except FetchError as exc:
        errors = state.consecutive_errors
        return await _failed(writes, source, errors, str(exc), now, exc.retry_after)

    next_poll = schedule.after_success(source.interval, now, jitter=jitter())

    async def unchanged(warning: str | None = None) -> None:
        """`warning` None: the body was not read again, so its last warning stands."""
        await writes.call(
            "record_unchanged",
            source.name,
            now,
            next_poll,
            url=source.shown_url,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            body_hash=fetched.body_hash,
            warning=warning,
        )

    if fetched.not_modified or fetched.body_hash == state.body_hash:
        await unchanged()
        return PollResult(source.name, "not_modified" if fetched.not_modified else "unchanged")

    seen = store.item_hashes(source.name) if source.kind != "html" else {}
    try:
        analysed = await asyncio.to_thread(
            analyse_items,
            fetched.body,
            source,
            url=fetched.url,
            charset=fetched.charset,
            now=now,
            seen=seen,
        )
    except ParseError as exc:
        errors = state.consecutive_errors
        return await _failed(writes, source, errors, f"parse: {exc}", now, None)
    if not analysed.items and analysed.skipped:  # a changed body, but not one changed item
        await unchanged(analysed.warning)
        await writes.call("still_listed", source.name, analysed.listed, now)
        return PollResult(source.name, "unchanged")

    articles = analysed.articles
    known = store.known(articles)
    gap = len(articles) > 1 and not known and not analysed.skipped
    if gap and store.has_articles(source.name):
        # every item is new on a feed we know: items may have scrolled off unseen, look sooner
        next_poll = schedule.after_success(source.interval, now, jitter=jitter(), gap=True)
    if source.fetch_article:
        fresh = [a for a in articles if a.url not in known and has_link(a)]
        if fresh:
            full = await enrich(fresh, fetcher=fetcher, source=source, now=now)
            by_url = {a.url: a for a in full}
            articles = [by_url.get(a.url, a) for a in articles]
    candidates = []
    for article in articles:
        stored = known.get(article.url)
        if (
            stored is not None
            and stored.source == article.source  # another source's item: a copy to record
            and stored.title == article.title
            and stored.fingerprint == article.fingerprint
        ):
            continue  # nothing new about it
        matches = tuple(rules.match(Document.from_article(article)))
        if stored is None and article.url in analysed.reseen:
            # its item was processed before and is still listed; retention deleted its row:
            # stored again, but never alerted twice
            matches = ()
        candidates.append(_candidate(article, matches, lexicon or default_lexicon()))
    saved = await writes.call(
        "save_poll",
        source.name,
        candidates,
        now,
        next_poll,
        url=source.shown_url,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        body_hash=fetched.body_hash,
        plan=plan,
        window=window,
        items=analysed.items,
        listed=analysed.listed,
        skipped=analysed.skipped_items,
        warning=analysed.warning,
    )
    by_id = {c.article.url: c.article for c in candidates}
    found = []
    for article_id, match in saved.new_matches:
        article = store.article(article_id)
        if article is not None:
            found.append(Found(article_id, by_id.get(article.url, article), match))
    outcome: Outcome = "new" if saved.new_ids or saved.edited_ids else "unchanged"
    return PollResult(
        source.name,
        outcome,
        len(saved.new_ids),
        len(saved.edited_ids),
        tuple(found),
        skipped_items=analysed.skipped_items,
        warning=analysed.warning,
    )


def _candidate(article: Article, matches: tuple[Match, ...], lexicon: Lexicon) -> Candidate:
    """Every article gets its title + lead sketch (for copies) and its weighted terms: all
    articles count in the window's word frequencies, though only matched ones join stories."""
    lead = terms.lead_text(article.summary, article.text)
    # the words decide which stemmer and stop words fit: a feed may mix languages under one tag
    language = detect_language(f"{article.title}\n{lead}") or article.language
    return Candidate(
        article,
        matches,
        sketch=copies.sketch(copies.lead(article.title, article.summary, article.text),
                             article.language),
        terms=terms.article_terms(article.title, lead, language, lexicon),
        language=language,
        facts=terms.article_facts(article.title, article.text or article.summary, language,
                                  lexicon) if matches else frozenset(),
    )  # fmt: skip


async def _failed(
    writes: Writes,
    source: Source,
    previous_errors: int,
    error: str,
    now: datetime,
    retry_after: float | None,
) -> PollResult:
    next_poll = schedule.after_failure(
        source.interval, previous_errors + 1, now, retry_after=retry_after
    )
    await writes.call("record_failure", source.name, error, now, next_poll, source.shown_url)
    return PollResult(source.name, "error", error=error)


async def poll_all(
    sources: Sequence[Source],
    *,
    fetcher: Fetcher,
    store: Store,
    rules: RuleSet,
    now: Callable[[], datetime],
    on_done: Callable[[PollResult], None] | None = None,
) -> list[PollResult]:
    """Poll every source concurrently (the fetcher enforces global and per-host limits)."""

    async def one(source: Source) -> PollResult:
        try:
            result = await poll_source(source, fetcher=fetcher, store=store, rules=rules, now=now())
        except Exception as exc:  # one bad source must never stop the others
            error = f"internal error: {exc!r}"
            result = await _failed(Direct(store), source, 0, error, now(), None)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(s) for s in sources if s.enabled)))
