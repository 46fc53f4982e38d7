"""Full article text for feeds with one line per item: fetch each NEW item's page, politely.

`FullText` does it. Make one and keep it (the Monitor owns one): it holds the robots.txt cache.
Politeness, per poll of one source:
- at most `max_per_poll` pages (default `MAX_PER_POLL`); the rest keep their feed text (they
  are stored, not lost, and are not fetched later: a page is fetched once, when its item is new);
- one request at a time per host (hosts run in parallel) and `delay` seconds (default `DELAY`)
  between two requests to one host;
- robots.txt honoured when `source.robots`: fetched once per host per `ROBOTS_TTL` (cached by
  the `FullText` object, keyed by scheme://host:port), parsed with urllib.robotparser on the
  text we fetched (robotparser never fetches by itself). A 4xx robots.txt allows everything;
  a 5xx or unreachable one disallows this poll (RFC 9309) and is retried at the next poll.
- unless `source.allow_private`, an article URL whose host is or resolves to a loopback,
  private, link-local or reserved address is not fetched: the Fetcher trusts the first URL it is
  given (the user wrote the feed URL, but not the links inside it), and checks only redirects.

Any failure leaves that article exactly as the feed gave it; nothing here raises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import structlog

from monitor.errors import FetchError, MonitorError
from monitor.ingest.fetch import Fetcher, host_addresses, is_public_address
from monitor.ingest.normalize import TEXT_CHARS, fingerprint, normalize_language
from monitor.models import Article, Source

__all__ = ["DELAY", "MAX_PER_POLL", "ROBOTS_TTL", "FullText", "RobotsCache"]

MAX_PER_POLL = 10
DELAY = 1.0  # seconds between two article requests to one host
ROBOTS_TTL = timedelta(hours=6)
_HTML_TYPES = {None, "text/html", "application/xhtml+xml", "text/plain", "application/xml"}

# structlog's own logger, as runtime.logs.get_logger makes it: runtime configures the output,
# and ingest does not import runtime (imports flow down).
log = structlog.stdlib.get_logger("monitor.fulltext")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


async def _is_public(url: str) -> bool:
    """True when every address of the URL's host is public (resolved with the event loop)."""
    parts = urlsplit(url)
    try:
        addresses = await host_addresses(parts.hostname or "", parts.port or 443)
    except OSError:
        return False
    return bool(addresses) and all(is_public_address(a) for a in addresses)


class RobotsCache:
    """Parsed robots.txt files by origin, each kept for `ttl` from when it was fetched."""

    def __init__(self, ttl: timedelta = ROBOTS_TTL) -> None:
        self.ttl = ttl
        # scheme://host:port -> (fetched at, parser); None: everything allowed (4xx robots.txt)
        self._by_origin: dict[str, tuple[datetime, RobotFileParser | None]] = {}

    async def allows(self, url: str, *, fetcher: Fetcher, source: Source, now: datetime) -> bool:
        """May `fetcher`'s user agent fetch `url`? False while robots.txt is unavailable."""
        origin = _origin(url)
        cached = self._by_origin.get(origin)
        if cached is None or now - cached[0] > self.ttl or now < cached[0]:
            robots_url = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/robots.txt"
            try:
                fetched = await fetcher.fetch(robots_url, allow_private=source.allow_private)
            except FetchError as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    cached = (now, None)  # no robots.txt: everything is allowed
                else:
                    log.info("robots.txt unavailable; not fetching", host=origin, error=str(exc))
                    return False
            else:
                parser = RobotFileParser()
                parser.parse(fetched.body.decode("utf-8", errors="replace").splitlines())
                cached = (now, parser)
            self._by_origin[origin] = cached
        parser = cached[1]
        return parser is None or parser.can_fetch(fetcher.user_agent, url)


def _merge(
    article: Article,
    extracted_title: str,
    author: str | None,
    published: datetime | None,
    text: str,
    language: str | None,
) -> Article:
    """The article with the page's body; feed fields win where the feed had them."""
    title = article.title or " ".join(extracted_title.split())
    lacked_date = article.published is None or article.published == article.first_seen
    body = text if len(text) > len(article.text) else article.text
    body = body[:TEXT_CHARS]
    return replace(
        article,
        title=title,
        text=body,
        author=article.author or author,
        published=published if lacked_date and published is not None else article.published,
        language=article.language or normalize_language(language),
        fingerprint=fingerprint(title, body),
    )


class FullText:
    """Replaces new articles' feed text with their pages' text, politely (see the module doc)."""

    def __init__(
        self,
        *,
        max_per_poll: int = MAX_PER_POLL,
        delay: float = DELAY,
        robots: RobotsCache | None = None,
        parsing: asyncio.Semaphore | None = None,
    ) -> None:
        self.max_per_poll = max_per_poll
        self.delay = delay  # seconds between two article requests to one host
        self.robots = robots if robots is not None else RobotsCache()
        # pages parsed at once, shared with the polls' feed parsing (the Monitor passes its
        # own): a bs4 tree is several times its page, and every poll's pages would otherwise
        # be parsed at the same time, one thread each
        self.parsing = parsing

    async def enrich(
        self, articles: Sequence[Article], *, fetcher: Fetcher, source: Source, now: datetime
    ) -> list[Article]:
        """`articles` with the first `max_per_poll` replaced by their full-text versions."""
        if not source.fetch_article or not articles:
            return list(articles)
        cap = self.max_per_poll
        result = list(articles)
        by_host: dict[str, list[int]] = {}
        for index, article in enumerate(result[: max(cap, 0)]):
            by_host.setdefault(_origin(article.url), []).append(index)

        async def host_queue(indexes: list[int]) -> None:
            for n, index in enumerate(indexes):
                if n and self.delay > 0:
                    await asyncio.sleep(self.delay)
                result[index] = await self._one(
                    result[index], fetcher=fetcher, source=source, now=now
                )

        try:
            await asyncio.gather(*(host_queue(ix) for ix in by_host.values()))
        except Exception as exc:  # defensive: _one never raises, but never lose the poll
            log.warning("full-text enrichment failed", source=source.name, error=repr(exc))
        if len(articles) > cap:
            log.info(
                "full-text cap reached", source=source.name, fetched=cap, kept=len(articles) - cap
            )
        return result

    async def _one(
        self, article: Article, *, fetcher: Fetcher, source: Source, now: datetime
    ) -> Article:
        """The article with its page's text, or unchanged when the page cannot be had."""
        url = article.url
        try:
            if not source.allow_private and not await _is_public(url):
                log.info("article not fetched: private or unresolvable address", url=url)
                return article
            if source.robots and not await self.robots.allows(
                url, fetcher=fetcher, source=source, now=now
            ):
                log.info("article not fetched: disallowed by robots.txt", url=url)
                return article
            fetched = await fetcher.fetch(url, allow_private=source.allow_private)
            if fetched.content_type not in _HTML_TYPES:
                return article
            # bs4 and soupsieve (~50 ms of start-up) only for sources that fetch article pages
            from monitor.ingest.extract import extract_article

            async with self.parsing or contextlib.nullcontext():
                got = await asyncio.to_thread(
                    extract_article, fetched.body, url=fetched.url, charset=fetched.charset
                )
        except (MonitorError, OSError, ValueError) as exc:
            log.info("article not fetched", url=url, error=str(exc))
            return article
        except Exception as exc:  # a bug in extraction must never cost the feed's article
            log.warning("article extraction failed", url=url, error=repr(exc))
            return article
        if not got.text.strip():
            return article
        return _merge(article, got.title, got.author, got.published, got.text, got.language)
