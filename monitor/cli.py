"""The `news-monitor` command: thin wrappers that load the config and call the pipeline.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor import __version__, config as config_mod
from monitor.errors import ConfigError, FetchError, MonitorError, ParseError, RuleSyntaxError
from monitor.fetch import Fetcher
from monitor.pipeline import PollResult, analyse, document, poll_all
from monitor.rules import Document, RuleSet, parse_query
from monitor.store import Store
from monitor import notify, report


def utcnow() -> datetime:
    return datetime.now(UTC)


class Context:
    """Lazily loaded config, so `--help` works even with a broken config file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._config: config_mod.Config | None = None

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            try:
                self._config = config_mod.load(self.config_path)
            except ConfigError as exc:
                for problem in exc.problems:
                    click.echo(problem, err=True)
                raise SystemExit(2) from None
        return self._config

    def store(self) -> Store:
        return Store(self.config.settings.database)

    def fetcher(self) -> Fetcher:
        s = self.config.settings
        return Fetcher(
            timeout=s.timeout, max_bytes=s.max_bytes, concurrency=s.concurrency, per_host=s.per_host
        )

    def rules(self) -> RuleSet:
        return RuleSet((r.name, r.query) for r in self.config.rules if r.enabled)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file [default: $NEWS_MONITOR_CONFIG, else config/monitor.toml].",
)
@click.version_option(__version__, prog_name="news-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Watch news sources and alert once per new development."""
    ctx.obj = Context(config_path or config_mod.default_config_path(os.environ))


@cli.command()
@pass_ctx
def check(ctx: Context) -> None:
    """Validate the config; exit 0, or 2 with every problem as FILE:LINE: messages."""
    cfg = ctx.config
    click.echo(f"{cfg.path}: OK")
    click.echo(
        f"  {len(cfg.sources)} sources, {len(cfg.rules)} rules, {len(cfg.channels)} channels"
    )
    for name, target in cfg.channels.items():
        click.echo(f"  channel {name}: {cfg.mask(notify.describe(target))}")
    if not cfg.channels:
        click.echo("  no channels: alerts are printed on standard output")


@cli.command()
@pass_ctx
def once(ctx: Context) -> None:
    """Poll every source once, store what is new, print the matches, and exit."""
    cfg = ctx.config
    rules = ctx.rules()
    with ctx.store() as store:
        store.sync_sources(cfg.sources, utcnow())
        sources = [s for s in cfg.sources if s.enabled]
        results = asyncio.run(_poll_with_progress(ctx, store, rules, sources))
    for result in results:
        for found in result.found:
            click.echo(report.format_match(found.article, found.match, cfg.settings.timezone))
    click.echo(report.poll_summary(results), err=True)


async def _poll_with_progress(ctx: Context, store: Store, rules: RuleSet, sources: list) -> list[PollResult]:
    show = sys.stderr.isatty()
    async with ctx.fetcher() as fetcher:
        with click.progressbar(
            length=len(sources), label="polling", file=sys.stderr if show else open(os.devnull, "w")
        ) as bar:
            return await poll_all(
                sources,
                fetcher=fetcher,
                store=store,
                rules=rules,
                now=utcnow,
                on_done=lambda _r: bar.update(1),
            )


@cli.command("test-rule")
@click.argument("rule", required=False)
@click.option("--query", "-q", help="A query to try instead of a configured rule.")
@click.option("--text", "-t", help="Text to match (the first line is taken as the title).")
@click.option("--url", "-u", help="A feed URL to fetch and match item by item.")
@click.option("--limit", default=20, show_default=True, help="Matches to show from the store.")
@pass_ctx
def test_rule(
    ctx: Context, rule: str | None, query: str | None, text: str | None, url: str | None, limit: int
) -> None:
    """Try a rule (by name) or a --query on --text, a --url, or the stored articles."""
    if bool(rule) == bool(query):
        raise click.UsageError("give either a RULE name or --query")
    if query is None:
        by_name = {r.name: r for r in ctx.config.rules}
        if rule not in by_name:
            raise click.UsageError(f"no rule named {rule!r}; rules: {', '.join(by_name)}")
        query = by_name[rule].query
    try:
        parse_query(query)
    except RuleSyntaxError as exc:
        click.echo(f"query does not parse: {exc}", err=True)
        click.echo(f"  {query}\n  {' ' * exc.position}^", err=True)
        raise SystemExit(2) from None
    ruleset = RuleSet([(rule or "query", query)])
    if text is not None:
        title, _, rest = text.partition("\n")
        hits = ruleset.match(Document(title=title, text=rest, source="", language=None))
        if hits:
            click.echo(f"match: {', '.join(hits[0].terms)}")
        else:
            click.echo("no match")
            raise SystemExit(1)
        return
    if url is not None:
        articles = asyncio.run(_fetch_articles(ctx, url))
        shown = 0
        for article in articles:
            for hit in ruleset.match(document(article)):
                shown += 1
                click.echo(report.format_match(article, hit, ctx.config.settings.timezone))
        click.echo(f"{shown} of {len(articles)} items match", err=True)
        return
    with ctx.store() as store:
        shown = total = 0
        for _id, article in store.articles():
            total += 1
            for hit in ruleset.match(document(article)):
                shown += 1
                if shown <= limit:
                    click.echo(report.format_match(article, hit, ctx.config.settings.timezone))
        click.echo(f"{shown} of {total} stored articles match", err=True)


async def _fetch_articles(ctx: Context, url: str) -> list:
    from monitor.models import Source

    async with ctx.fetcher() as fetcher:
        try:
            fetched = await fetcher.fetch(url)
        except FetchError as exc:
            click.echo(f"cannot fetch {url}: {exc}", err=True)
            raise SystemExit(1) from None
    try:
        return analyse(
            fetched.body, Source(name="test", url=url), url=fetched.url, charset=fetched.charset,
            now=utcnow(),
        )
    except ParseError as exc:
        click.echo(f"cannot read {url} as a feed: {exc}", err=True)
        raise SystemExit(1) from None


@cli.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def search(ctx: Context, query: str, limit: int) -> None:
    """Full-text search of stored articles (accent-insensitive; FTS5 syntax)."""
    with ctx.store() as store:
        rows = store.search(query, limit=limit)
    for article_id, article, snippet in rows:
        click.echo(report.format_search_hit(article_id, article, snippet, ctx.config.settings.timezone))
    click.echo(f"{len(rows)} results", err=True)


@cli.command()
@pass_ctx
def sources(ctx: Context) -> None:
    """Each source's health: last success, last error, items, next poll."""
    with ctx.store() as store:
        store.sync_sources(ctx.config.sources, utcnow())
        rows = store.sources_health()
    click.echo(report.sources_table(rows, ctx.config.settings.timezone, now=utcnow()))


def main() -> None:
    """Console entry point: map our errors to exit codes instead of tracebacks."""
    try:
        cli(standalone_mode=True)
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
