"""Orchestration only: one poll of one source, from fetch to one store transaction.

The steps themselves live in their own modules (fetch, parse, normalize, rules, store); this
module decides their order and what a failure at each step means for the source's schedule.
`poll_source` reads as the list of its steps: skip an unchanged body, analyse the changed one,
enrich new articles with their full text, pick the candidates to store (pure), save them in one
transaction, and report the result. The data each step hands on is in `monitor.models`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from monitor.alerts.held import Hold
from monitor.errors import FetchError, ParseError
from monitor.ingest.fetch import Fetcher
from monitor.ingest.fulltext import FullText
from monitor.ingest.identity import has_link
from monitor.ingest.normalize import detect_language, to_articles
from monitor.ingest.parse import ParsedFeed, parse_feed, scan_items, without_items
from monitor.models import (
    Alert,
    Analysed,
    Article,
    Candidate,
    Fetched,
    Found,
    GoodPoll,
    Known,
    Match,
    Normalized,
    Outcome,
    PollResult,
    RawEntry,
    Rule,
    Saved,
    Source,
    SourceState,
)
from monitor.rules.query import Document, RuleSet
from monitor.service import schedule as schedule
from monitor.store import Store
from monitor.stories import copies, terms
from monitor.stories.lexicon import Lexicon, default_lexicon

__all__ = [
    "ANALYSE_SLOTS",
    "Direct",
    "Writes",
    "analyse",
    "analyse_items",
    "candidate",
    "candidates",
    "poll_failed",
    "poll_source",
]


# Bodies parsed at once across concurrent polls. Parsing holds several times the body (trees,
# feedparser's dicts, decoded text); with asyncio's default pool (6 threads here) up to 6
# parses overlapped, each in its own malloc arena, while parsing is mostly GIL-bound Python.
# With this and Monitor.polling, the corpus `once` of bench/bench_memory.py peaked 20-40 MB
# lower (194 -> 151-170 MB), in the same CPU and wall time.
ANALYSE_SLOTS = 2


class Writes(Protocol):
    """Where a poll's store writes run (store/writer.py runs them on a thread of its own)."""

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...


class Direct:
    """Writes on the caller's own store, in the caller's thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.store, method)(*args, **kwargs)


# -- analyse: bytes to articles (CPU-bound, run off the event loop) ----------------------------


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
        from monitor.ingest.pages import parse_listing  # bs4 + soupsieve: html sources only

        return _normalize(parse_listing(body, url=url, charset=charset, source=source), source, now)
    return _normalize(parse_feed(body, url=url, charset=charset), source, now)


def _normalize(
    parsed: ParsedFeed,
    source: Source,
    now: datetime,
    skip: frozenset[str] = frozenset(),
    seen: Mapping[str, str] | None = None,
) -> tuple[Normalized, str]:
    """The parsed entries as articles, and the parser's warning. Callers hand the ParsedFeed
    over without keeping it: each entry is let go once normalized, so a big feed's entries and
    its articles are not all held at once (~60 MB each for a 60 MB feed of long items)."""
    language, warning = parsed.language, parsed.warning
    pending = list(parsed.entries)
    pending.reverse()
    del parsed
    got = to_articles(
        _drain(pending), source=source, feed_language=language, now=now, skip=skip,
        seen=seen if seen is not None else frozenset(),
    )  # fmt: skip
    return got, warning


def _drain(pending: list[RawEntry]) -> Iterator[RawEntry]:
    """The entries of a reversed list in order, each removed from it as it is handed out."""
    while pending:
        yield pending.pop()


def analyse_items(
    body: bytes,
    source: Source,
    *,
    url: str,
    charset: str | None,
    now: datetime,
    processed: Mapping[str, str],
) -> Analysed:
    """`analyse`, minus the items whose hash (parse.scan_items) equals the one in `processed`
    (item key -> hash recorded when the item was last processed): those skip normalizing, rule
    matching and story work. An item key that occurs twice is never skipped. When lxml cannot
    pre-scan the body, everything is analysed."""
    scanned = (
        scan_items(body, url=url, context=source.language or "") if source.kind != "html" else None
    )
    if scanned is None:
        got, warning = _analyse(body, source, url=url, charset=charset, now=now)
        return Analysed(got.articles, skipped_items=got.skipped, warning=warning)
    counts = Counter(key for key, _ in scanned)
    listed = tuple(counts)
    skip = frozenset(
        key for key, digest in scanned if counts[key] == 1 and processed.get(key) == digest
    )
    items = tuple((key, digest) for key, digest in scanned if key not in skip)
    if not items:
        return Analysed([], (), len(skip), listed=listed)
    reduced = without_items(body, skip, url=url, charset=charset) if skip else None
    if reduced is not None:  # the parsers read only the changed items
        body, charset = reduced, "utf-8"
    got, warning = _normalize(
        parse_feed(body, url=url, charset=charset), source, now, skip=skip, seen=processed
    )
    return Analysed(got.articles, items, len(skip), got.skipped, warning, listed, got.reseen)


# -- the poll ----------------------------------------------------------------------------------


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
    fulltext: FullText | None = None,
    analysing: asyncio.Semaphore | None = None,
    rule_config: Mapping[str, Rule] | None = None,
) -> PollResult:
    """Poll one source once. Every outcome, failures included, is recorded in the store.

    `plan(article_id, article, match, story)` turns each new match into outbox rows, written in
    the poll's own transaction. `window` (seconds) bounds copy detection and story grouping.
    Between reading what is known and saving there is no `await`, so within one event loop
    the decisions cannot race. `lexicon` (default: the shipped one) joins words of several
    languages for story grouping. `writes` runs the store's writes (default: here, on `store`;
    the daemon passes its writer thread, so a big save never blocks the event loop).
    `fulltext` fetches article pages for `fetch_article` sources; pass the same one to every
    poll, since it caches robots.txt (default: a new one for this poll). `analysing` bounds
    how many bodies concurrent polls parse at once (the Monitor passes one: ANALYSE_SLOTS).
    `rule_config`: the configured rules by name, for their `max_age` and `backfill`; with the
    store's mutes and whether this is the source's first good poll, they decide which new
    matches are held: recorded, never alerted (alerts/held.py).
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
        return await poll_failed(writes, source, str(exc), now, errors, exc.retry_after)
    next_poll = schedule.after_success(source.interval, now, jitter=jitter())
    update = _SourceUpdate(writes, source, replace(fetched, body=b""), now, next_poll)
    if fetched.not_modified or fetched.body_hash == state.body_hash:
        await update.unchanged()
        return PollResult(source.name, "not_modified" if fetched.not_modified else "unchanged")
    try:
        analysed = await _analyse_changed(fetched, source, store, now, analysing)
    except ParseError as exc:
        return await poll_failed(writes, source, f"parse: {exc}", now, state.consecutive_errors)
    del fetched  # the body: not held while the articles wait for rules, pages and the writer
    if not analysed.items and analysed.skipped:  # a changed body, but not one changed item
        await update.unchanged(analysed.warning)
        await writes.call("still_listed", source.name, analysed.listed, now)
        return PollResult(source.name, "unchanged")
    stored = store.known(analysed.articles)
    if _may_have_gap(analysed, stored) and store.has_articles(source.name):
        # every item is new on a feed we know: items may have scrolled off unseen, look sooner
        update.next_poll = schedule.after_success(source.interval, now, jitter=jitter(), gap=True)
    full = fulltext or FullText()
    articles = await _enrich_fresh(analysed.articles, stored, full, fetcher, source, now)
    hold = _hold(store, source, state, now, rule_config or {})
    wanted = candidates(articles, stored, analysed.reseen, rules, lexicon, hold)
    saved = await update.save(wanted, analysed, plan=plan, window=window)
    return _result(source.name, saved, wanted, analysed, store)


@dataclass(slots=True)
class _SourceUpdate:
    """What a successful fetch writes back to the source's row, whatever the body held: when
    to poll next, and the validators (ETag, Last-Modified, body hash) that let the next poll
    skip an unchanged body."""

    writes: Writes
    source: Source
    fetched: Fetched
    now: datetime
    next_poll: datetime

    def _poll(self, warning: str | None) -> GoodPoll:
        f = self.fetched
        return GoodPoll(
            self.source.name, self.now, self.next_poll, self.source.shown_url,
            f.etag, f.last_modified, f.body_hash, warning,
        )  # fmt: skip

    async def unchanged(self, warning: str | None = None) -> None:
        """`warning` None: the body was not read again, so its last warning stands."""
        await self.writes.call("record_unchanged", self._poll(warning))

    async def save(
        self,
        wanted: Sequence[Candidate],
        analysed: Analysed,
        *,
        plan: Callable[..., Sequence[Alert]] | None,
        window: float,
    ) -> Saved:
        """The poll's one transaction: articles, matches, alerts, items and the source row."""
        return await self.writes.call(
            "save_poll",
            self._poll(analysed.warning),
            wanted,
            plan=plan,
            window=window,
            items=analysed.items,
            listed=analysed.listed,
            skipped=analysed.skipped_items,
        )


async def _analyse_changed(
    fetched: Fetched,
    source: Source,
    store: Store,
    now: datetime,
    analysing: asyncio.Semaphore | None = None,
) -> Analysed:
    """A changed body's articles, off the event loop; a feed's items processed before with the
    same hash are skipped (a listing page has no item keys to compare). Waits for a slot of
    `analysing` first: see ANALYSE_SLOTS."""
    async with analysing or contextlib.nullcontext():
        processed = store.item_hashes(source.name) if source.kind != "html" else {}
        return await asyncio.to_thread(
            analyse_items,
            fetched.body,
            source,
            url=fetched.url,
            charset=fetched.charset,
            now=now,
            processed=processed,
        )


def _may_have_gap(analysed: Analysed, stored: Mapping[str, Known]) -> bool:
    """Every item of a multi-item body is new: some may have scrolled off between polls."""
    return len(analysed.articles) > 1 and not stored and not analysed.skipped


def _hold(
    store: Store, source: Source, state: SourceState, now: datetime, rules: Mapping[str, Rule]
) -> Hold:
    """What decides which of this poll's new matches are held (alerts/held.py). A source that
    never had a good poll is on its first; mutes are read at every poll, so one set by the CLI
    holds from the running daemon's next poll on, and ends by itself."""
    mutes = store.active_mutes(now)
    return Hold(
        source,
        now,
        first_poll=state.last_success is None,
        rules=rules,
        muted_rules=frozenset(m.name for m in mutes if m.kind == "rule"),
        source_muted=any(m.kind == "source" and m.name == source.name for m in mutes),
    )


async def _enrich_fresh(
    articles: list[Article],
    stored: Mapping[str, Known],
    fulltext: FullText,
    fetcher: Fetcher,
    source: Source,
    now: datetime,
) -> list[Article]:
    """With `fetch_article`, new linked articles get their page's full text."""
    if not source.fetch_article:
        return articles
    fresh = [a for a in articles if a.url not in stored and has_link(a)]
    if not fresh:
        return articles
    full = await fulltext.enrich(fresh, fetcher=fetcher, source=source, now=now)
    by_url = {a.url: a for a in full}
    return [by_url.get(a.url, a) for a in articles]


def candidates(
    articles: Sequence[Article],
    stored: Mapping[str, Known],
    reseen: frozenset[str],
    rules: RuleSet,
    lexicon: Lexicon | None = None,
    hold: Hold | None = None,
) -> list[Candidate]:
    """The articles worth storing, each with the rules it matches (pure). An article stored
    already, from this source and unchanged, is left out; `reseen`: URLs of articles whose
    item was processed before (Analysed.reseen); `hold` marks the matches to record but not
    alert (Candidate.held: too old, a first poll's undated backlog, muted).

    One stored already that no rule matches (an edit, or another source's item under a stored
    URL: a copy) gets no sketch and no terms: it is never compared as a copy, joins no story,
    and its words were counted when it was new. That saves the ~0.25 ms of language detection,
    terms and sketch per such item. (Should its row vanish before the poll's transaction, it
    is stored as new without them: not counted in the word frequencies, never the original
    of a similar copy; retention deletes only old rows.)"""
    wanted = []
    for article in articles:
        known = stored.get(article.url)
        if (
            known is not None
            and known.source == article.source  # another source's item: a copy to record
            and known.title == article.title
            and known.fingerprint == article.fingerprint
        ):
            continue  # nothing new about it
        matches = tuple(rules.match(Document.from_article(article)))
        if known is None and article.url in reseen:
            # its item was processed before and is still listed; retention deleted its row:
            # stored again, but never alerted twice
            matches = ()
        if known is not None and not matches:
            wanted.append(Candidate(article))
            continue
        held = {m.rule: r for m in matches if hold and (r := hold.reason(article, m.rule))}
        wanted.append(candidate(article, matches, lexicon or default_lexicon(), held))
    return wanted


def candidate(
    article: Article,
    matches: tuple[Match, ...],
    lexicon: Lexicon,
    held: Mapping[str, str] | None = None,
) -> Candidate:
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
        held=held or {},
    )  # fmt: skip


def _result(
    source: str, saved: Saved, wanted: Sequence[Candidate], analysed: Analysed, store: Store
) -> PollResult:
    """The poll's summary; each new match with the article as this poll read it."""
    by_url = {c.article.url: c.article for c in wanted}
    found = []
    for article_id, match in saved.new_matches:
        article = store.article(article_id)
        if article is not None:
            found.append(Found(article_id, by_url.get(article.url, article), match))
    outcome: Outcome = "new" if saved.new_ids or saved.edited_ids else "unchanged"
    return PollResult(
        source,
        outcome,
        len(saved.new_ids),
        len(saved.edited_ids),
        tuple(found),
        skipped_items=analysed.skipped_items,
        warning=analysed.warning,
        held=tuple(Counter(saved.held).items()),
    )


async def poll_failed(
    writes: Writes,
    source: Source,
    error: str,
    now: datetime,
    previous_errors: int,
    retry_after: float | None = None,
) -> PollResult:
    """Record a failed poll (the one failure recorder): the error, and the next try after an
    exponential backoff that honours the server's Retry-After."""
    next_poll = schedule.after_failure(
        source.interval, previous_errors + 1, now, retry_after=retry_after
    )
    await writes.call("record_failure", source.name, error, now, next_poll, source.shown_url)
    return PollResult(source.name, "error", error=error)
