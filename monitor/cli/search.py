"""`news-monitor search`, `test-rule` and `stories`: reading articles through the rule language.

Why together: `search` and `test-rule` take the same query language as `[[rules]]` and must mean
the same by it (the store's search confirms every candidate with the rule matcher), and both,
with `stories`, read what polls stored. A query that does not parse is the same error in each:
what is wrong, and a caret under where.

Kept light (tests/test_public_api.py): `test-rule --text` loads neither the store nor asyncio,
and with `--query` not even the config loader; every heavier module loads inside the command
that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx
from monitor.errors import FetchError, ParseError, RuleSyntaxError

if TYPE_CHECKING:
    from monitor.models import Article, Match, SearchHit, TimelineEntry
    from monitor.rules.query import Query, RuleSet

_JSON_HELP = "One JSON document on standard output, for scripts."


def parse_or_exit(query: str, *, only_not: bool = False) -> Query:
    """The parsed query, or exit 2 saying what is wrong and where (a caret under it)."""
    from monitor.rules.query import parse_query

    try:
        return parse_query(query, only_not=only_not)
    except RuleSyntaxError as exc:
        click.echo(f"query does not parse: {exc}", err=True)
        click.echo(f"  {query}\n  {' ' * exc.position}^", err=True)
        raise SystemExit(2) from None


# ---- search ------------------------------------------------------------------------------------


@click.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--since",
    metavar="DURATION|DATE",
    help="Only articles published in the last DURATION (6h, 3d) or since DATE (2026-02-01, "
    "in the configured time zone).",
)
@click.option(
    "--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@pass_ctx
def search(
    ctx: Context,
    query: str,
    limit: int,
    since: str | None,
    sources: tuple[str, ...],
    as_json: bool,
) -> None:
    """Stored articles QUERY matches, newest first. QUERY is the rule language (README: "The
    rule language"), so it finds what a rule with that query alerts on; a query of only
    NOT terms is allowed here."""
    parsed = parse_or_exit(query, only_not=True)
    settings = ctx.config.settings
    start = since_option(since, ctx.clock.now(), settings.timezone) if since else None
    with ctx.store() as store:
        _known_sources(sources, ctx, [row["name"] for row in store.sources_health()])
        hits = store.search(parsed, limit=limit, since=start, sources=sources)
    if as_json:
        report.emit_json([_hit_json(hit) for hit in hits])
        return
    for hit in hits:
        click.echo(report.format_search_hit(hit.id, hit.article, hit.snippet, settings.timezone))
    count = f"{len(hits)} result" + ("" if len(hits) == 1 else "s")
    click.echo(count + (" (the newest; --limit for more)" if len(hits) == limit else ""), err=True)


def since_option(value: str, now: datetime, timezone: str) -> datetime:
    """`--since`: a duration back from now ("6h", "3d") or a date/time (in `timezone` unless
    it says its own offset)."""
    from monitor.config.values import MAX_DURATION, parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        duration_error = str(exc)
    else:
        if seconds > MAX_DURATION:
            raise click.BadParameter(f'"{value}" is more than 10 years', param_hint="--since")
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        msg = f"{duration_error}, or a date such as 2026-02-01 or 2026-02-01T08:00"
        raise click.BadParameter(msg, param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


def _known_sources(names: Sequence[str], ctx: Context, stored: Sequence[str]) -> None:
    """A --source that names no source is a typo to point out, not an empty result."""
    known = dict.fromkeys([*(s.name for s in ctx.config.sources), *stored])
    for name in names:
        if name not in known:
            raise click.BadParameter(
                f"no source named {name!r} (sources: {', '.join(known) or 'none'})",
                param_hint="--source",
            )


def _hit_json(hit: SearchHit) -> dict:
    return {"id": hit.id, **_article_json(hit.article), "terms": hit.terms, "snippet": hit.snippet}


def _article_json(article: Article) -> dict:
    return {
        "title": article.title,
        "source": article.source,
        "url": article.url,
        "published": article.published,
        "language": article.language,
    }


# ---- test-rule ---------------------------------------------------------------------------------


@click.command("test-rule")
@click.argument("rule", required=False)
@click.option("--query", "-q", help="A query to try instead of a configured rule.")
@click.option(
    "--text",
    "-t",
    help="Text to match (the first line is taken as the title); its language is detected, "
    "for lang:.",
)
@click.option("--url", "-u", help="A feed URL to fetch and match item by item.")
@click.option("--limit", default=20, show_default=True, help="Matches to show from the store.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@pass_ctx
def test_rule(
    ctx: Context,
    rule: str | None,
    query: str | None,
    text: str | None,
    url: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Try a rule (by name) or a --query on --text, a --url, or the stored articles."""
    from monitor.rules.query import RuleSet

    if bool(rule) == bool(query):
        raise click.UsageError("give either a RULE name or --query")
    if query is None:
        by_name = {r.name: r for r in ctx.config.rules}
        if rule not in by_name:
            raise click.UsageError(f"no rule named {rule!r}; rules: {', '.join(by_name)}")
        query = by_name[rule].query
    name = rule or "query"
    ruleset = RuleSet([(name, parse_or_exit(query))])
    head = {"rule": name, "query": query}
    if text is not None:
        _try_text(ruleset, text, head, as_json)
    elif url is not None:
        _try_feed(ctx, ruleset, url, head, as_json)
    else:
        _try_store(ctx, ruleset, limit, head, as_json)


def _try_text(ruleset: RuleSet, text: str, head: dict, as_json: bool) -> None:
    """Match pasted text, in the language detected from it (so `lang:` means something)."""
    from monitor.ingest.normalize import detect_language
    from monitor.rules.query import Document

    title, _, rest = text.partition("\n")
    language = detect_language(text)
    hits = ruleset.match(Document(title=title, text=rest, source="", language=language))
    terms = _terms(hits)
    if as_json:
        report.emit_json({**head, "language": language, "matched": bool(hits), "terms": terms})
    else:
        click.echo(f"match: {', '.join(terms)}" if hits else "no match")
        click.echo(f"language: {language or 'not recognised'} (detected from the text)")
    if not hits:
        raise SystemExit(1)


def _try_feed(ctx: Context, ruleset: RuleSet, url: str, head: dict, as_json: bool) -> None:
    import asyncio

    from monitor.rules.query import Document

    articles = asyncio.run(_fetch_articles(ctx, url))
    items = []
    for article in articles:
        hits = ruleset.match(Document.from_article(article))
        items.append({**_article_json(article), "matched": bool(hits), "terms": _terms(hits)})
        if hits and not as_json:
            click.echo(report.format_match(article, hits[0], ctx.config.settings.timezone))
    matched = sum(item["matched"] for item in items)
    if as_json:
        report.emit_json(
            {**head, "url": url, "matched": matched, "total": len(items), "items": items}
        )
    else:
        click.echo(f"{matched} of {len(articles)} items match", err=True)


def _try_store(ctx: Context, ruleset: RuleSet, limit: int, head: dict, as_json: bool) -> None:
    """Every stored article, to count them all; the first `limit` matches are shown."""
    from monitor.rules.query import Document

    items, shown, total = [], 0, 0
    with ctx.store() as store:
        for article_id, article in store.articles():
            total += 1
            hits = ruleset.match(Document.from_article(article))
            if not hits:
                continue
            shown += 1
            if shown <= limit:
                items.append({"id": article_id, **_article_json(article), "terms": _terms(hits)})
                if not as_json:
                    click.echo(report.format_match(article, hits[0], ctx.config.settings.timezone))
    if as_json:
        report.emit_json({**head, "matched": shown, "total": total, "items": items})
        return
    click.echo(f"{shown} of {total} stored articles match", err=True)


def _terms(hits: list[Match]) -> tuple[str, ...]:
    return hits[0].terms if hits else ()


async def _fetch_articles(ctx: Context, url: str) -> list[Article]:
    from monitor.models import Source
    from monitor.service.factories import make_fetcher
    from monitor.service.pipeline import analyse

    async with make_fetcher(ctx.config.settings) as fetcher:
        try:
            fetched = await fetcher.fetch(url)
        except FetchError as exc:
            click.echo(f"cannot fetch {url}: {exc}", err=True)
            raise SystemExit(1) from None
    try:
        return analyse(
            fetched.body,
            Source(name="test", url=url),
            url=fetched.url,
            charset=fetched.charset,
            now=ctx.clock.now(),
        )
    except ParseError as exc:
        click.echo(f"cannot read {url} as a feed: {exc}", err=True)
        raise SystemExit(1) from None


# ---- stories -----------------------------------------------------------------------------------


@click.command()
@click.argument("story_id", type=int, required=False)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@pass_ctx
def stories(ctx: Context, story_id: int | None, limit: int, as_json: bool) -> None:
    """Recent stories (id, first seen, size, languages, outlets, alerts, headline), or one
    story's timeline: its articles and copies, which of them alerted, and why."""
    tz = ctx.config.settings.timezone
    with ctx.store() as store:
        rows = store.recent_stories(limit) if story_id is None else []
        entries = store.story_timeline(story_id) if story_id is not None else []
    if story_id is None:
        if as_json:
            report.emit_json(rows)
        else:
            for row in rows:
                click.echo(report.story_line(row, tz))
        return
    if not entries:
        click.echo(f"no story #{story_id}", err=True)
        raise SystemExit(1)
    if as_json:
        report.emit_json([_timeline_json(e) for e in entries])
    else:
        for e in entries:
            click.echo(report.timeline_entry(e, tz))


def _timeline_json(entry: TimelineEntry) -> dict:
    """A timeline entry, with the facts it added also as a reader says them (`Hamilton`)."""
    import dataclasses

    from monitor.stories.developments import readable

    return {**dataclasses.asdict(entry), "added": [readable(f) for f in entry.fresh]}
