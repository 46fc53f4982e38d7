"""`news-monitor discover URL`: the feeds of a web page, as `[[sources]]` blocks to paste.

The page is fetched through the project's `Fetcher` (its deadline, size cap and checked
redirects); if it is no feed itself, its advertised feeds and the common feed paths of its site
(`ingest.discover`) are probed a few at a time per host, and only what parses as a feed is
listed, each once (two paths often serve the same body). The URL the user gives is trusted, like
a configured one; a link the page advertises to another host is the page's choice, so a private
or loopback address there is refused unless `--allow-private`, as the daemon refuses such
redirects. The blocks go to stdout and the story around them to stderr, so
`discover URL >> monitor.toml` appends only TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from monitor.cli import blocks
from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx
from monitor.errors import FetchError, ParseError

if TYPE_CHECKING:
    from monitor.config.loader import Config
    from monitor.ingest.discover import Candidate, FeedFacts
    from monitor.ingest.fetch import Fetcher
    from monitor.models import Fetched


@dataclass
class _Discovery:
    """What `discover` found: the page's final URL, whether it was a feed itself, the feeds,
    and the advertised links that were no feed (with why)."""

    page: str
    itself: bool = False
    feeds: list[FeedFacts] = field(default_factory=list)
    not_feeds: list[tuple[Candidate, str]] = field(default_factory=list)
    probed: int = 0


@click.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--allow-private",
    is_flag=True,
    help="Let redirects and advertised links reach private or loopback addresses.",
)
@pass_ctx
def discover(ctx: Context, url: str, as_json: bool, allow_private: bool) -> None:
    """Find the feeds of a web page: the ones it advertises and the ones at common paths,
    each with its title, item count and newest item, as [[sources]] blocks."""
    import asyncio

    from monitor.config.values import valid_http_url

    try:
        url = valid_http_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    found = asyncio.run(_discover(ctx, url, allow_private))
    shown = _shown(found, ctx.config)
    if as_json:
        report.emit_json(_discovery_json(url, found, shown))
    else:
        _print_discovery(url, found, shown, ctx.config.settings.timezone)
    if not found.feeds:
        raise SystemExit(1)


async def _discover(ctx: Context, url: str, allow_private: bool) -> _Discovery:
    """Fetch the page; if it is no feed, probe its candidates, a few at a time per host (the
    fetcher's limits), and keep each feed once (two addresses may serve the same body)."""
    import asyncio

    from monitor.ingest import discover as finder
    from monitor.service.factories import make_fetcher

    async with make_fetcher(ctx.config.settings) as fetcher:
        try:
            page = await fetcher.fetch(url, allow_private=allow_private)
        except FetchError as exc:
            hint = " (--allow-private follows it)" if "private" in str(exc) else ""
            click.echo(f"error: cannot fetch {url}: {exc}{hint}", err=True)
            raise SystemExit(1) from None
        itself = _read_feed(page, finder.Candidate(page.url, "the URL itself"))
        if not isinstance(itself, str):
            return _Discovery(page.url, True, [itself])
        candidates = finder.candidates(page.body, url=page.url, charset=page.charset)
        probes = [_probe(fetcher, c, page.url, allow_private) for c in candidates]
        results = await asyncio.gather(*probes)
    found = _Discovery(page.url, probed=len(candidates))
    bodies: set[str | None] = set()
    for candidate, (result, body_hash) in zip(candidates, results, strict=True):
        if isinstance(result, str):
            if candidate.via == "advertised":
                found.not_feeds.append((candidate, result))
        elif body_hash not in bodies and result.url not in {f.url for f in found.feeds}:
            bodies.add(body_hash)
            found.feeds.append(result)
    return found


async def _probe(
    fetcher: Fetcher, candidate: Candidate, page: str, allow_private: bool
) -> tuple[FeedFacts | str, str | None]:
    """The candidate read as a feed (and its body's hash), or why it is none. A link to another
    host than the page's must be public unless allowed: the page chose it, not the user."""
    from urllib.parse import urlsplit

    other_host = urlsplit(candidate.url).netloc != urlsplit(page).netloc
    if other_host and not allow_private and not await _public(candidate.url):
        return "refused: a private, loopback or reserved address (--allow-private allows it)", None
    try:
        fetched = await fetcher.fetch(candidate.url, allow_private=allow_private)
    except FetchError as exc:
        return str(exc), None
    return _read_feed(fetched, candidate), fetched.body_hash


async def _public(url: str) -> bool:
    from urllib.parse import urlsplit

    from monitor.ingest.fetch import host_addresses, is_public_address

    parts = urlsplit(url)
    try:
        addresses = await host_addresses(parts.hostname or "", parts.port)
    except OSError:
        return True  # it does not resolve: the fetch says so in its own words
    return all(is_public_address(a) for a in addresses)


def _read_feed(fetched: Fetched, candidate: Candidate) -> FeedFacts | str:
    from monitor.ingest.discover import facts
    from monitor.ingest.parse import parse_feed

    try:
        parsed = parse_feed(fetched.body, url=fetched.url, charset=fetched.charset)
    except ParseError as exc:
        return str(exc)
    return facts(parsed, url=fetched.url, via=candidate.via, title=candidate.title)


def _shown(found: _Discovery, cfg: Config) -> list[tuple[str | None, str | None]]:
    """(new name, None) or (None, configured name) for each feed found."""
    from monitor.ingest.opml import same_feed

    have = {same_feed(s.url): s.name for s in cfg.sources}
    have.update({same_feed(s.shown_url): s.name for s in cfg.sources})
    names = blocks.NameMaker(s.name for s in cfg.sources)
    shown: list[tuple[str | None, str | None]] = []
    for feed in found.feeds:
        known = have.get(same_feed(feed.url))
        shown.append((None, known) if known else (names.make(feed.title, feed.url), None))
    return shown


def _note(feed: FeedFacts, timezone: str) -> str:
    newest = f"newest {report.local_time(feed.newest, timezone)}" if feed.newest else "undated"
    items = report.plural(feed.items, "item")
    return f"{feed.title or '(untitled)'}: {items}, {newest} ({feed.via})"


def _print_discovery(
    url: str, found: _Discovery, shown: list[tuple[str | None, str | None]], timezone: str
) -> None:
    """The blocks on stdout (ready to paste or append), the story around them on stderr."""
    if found.itself:
        click.echo(f"{url} is a feed itself:", err=True)
    else:
        ads = sum(1 for f in found.feeds if f.via == "advertised")
        click.echo(
            f"{found.page}: a web page; {report.plural(len(found.feeds), 'feed')} found: "
            f"{ads} advertised, {len(found.feeds) - ads} at common paths "
            f"({found.probed} addresses tried)",
            err=True,
        )
    for feed, (name, known) in zip(found.feeds, shown, strict=True):
        note = _note(feed, timezone)
        if known:
            click.echo(blocks.comment(f"{note}: {feed.url} is already configured as {known}"))
        else:
            click.echo(blocks.block(name or "feed", feed.url, note=note))
    for candidate, why in found.not_feeds:
        click.echo(f"advertised but not a feed: {candidate.url}: {why}", err=True)
    if not found.feeds:
        click.echo(
            f"no feed found: {url} advertises none that reads as a feed, and none of the "
            "common paths (/feed, /rss, /rss.xml, /atom.xml, ...) serves one",
            err=True,
        )


def _discovery_json(
    url: str, found: _Discovery, shown: list[tuple[str | None, str | None]]
) -> dict:
    import dataclasses

    feeds = []
    for feed, (name, known) in zip(found.feeds, shown, strict=True):
        toml = blocks.block(name, feed.url) if name else None
        feeds.append(
            {**dataclasses.asdict(feed), "name": name, "configured_as": known, "toml": toml}
        )
    not_feeds = [{"url": c.url, "title": c.title, "error": why} for c, why in found.not_feeds]
    return {
        "url": url,
        "page": found.page,
        "is_feed": found.itself,
        "feeds": feeds,
        "not_feeds": not_feeds,
        "probed": found.probed,
    }
