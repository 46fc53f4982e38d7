"""The `news-monitor` command: thin wrappers that load the config and call the service.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or config.

Each command imports what it needs when it runs, so it pays only for itself (measured by
`bench/bench_startup.py`): `--help` loads neither the config loader (pydantic) nor asyncio;
`check`, `sources`, `search` and `test-rule --text` load no HTTP client, scheduler, bs4 or
soupsieve, nor Apprise unless a channel is configured (`check` validates it). Keep the imports at
the top light (the standard library, click, `monitor.errors`): tests/test_public_api.py checks
what each read command loads.

Time comes from a `Clock`: the system clock, or the one a caller hands click as `obj`
(`main(clock=...)`, or `CliRunner().invoke(cli, args, obj=clock)` in a test that replays old
snapshots).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor import __version__, secrets
from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx
from monitor.clock import Clock, SystemClock
from monitor.errors import (
    ConfigError,
    FetchError,
    MonitorError,
    ParseError,
    RuleSyntaxError,
    StorageError,
)

if TYPE_CHECKING:
    from datetime import datetime

    from monitor.config.loader import Config
    from monitor.models import DrainResult, PollResult, Source
    from monitor.store import Store


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
    _mask_output()
    clock = ctx.obj if ctx.obj is not None else SystemClock()  # see the module doc
    ctx.obj = Context(config_path, clock)


def _mask_output() -> None:
    """Every command's output passes the secret mask (monitor/secrets.py)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, secrets.MaskedStream):
            setattr(sys, name, secrets.MaskedStream(stream))


@cli.command()
@pass_ctx
def check(ctx: Context) -> None:
    """Validate the config; exit 0, or 2 with every problem as FILE:LINE: messages."""
    cfg = ctx.config
    try:
        _check_lexicon(cfg.settings.lexicon)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(cfg.mask(problem), err=True)
        raise SystemExit(2) from None
    click.echo(f"{cfg.path}: OK")
    click.echo(
        f"  {len(cfg.sources)} sources, {len(cfg.rules)} rules, {len(cfg.channels)} channels"
    )
    for name, target in cfg.channels.items():
        click.echo(f"  channel {name}: {_describe_channel(target, cfg)}")
    if not cfg.channels:
        click.echo("  no channels: alerts are printed on standard output")


def _check_lexicon(paths: Sequence[Path]) -> None:
    """Read the user's lexicon files, if any. Without any there is nothing of the user's to
    check: the shipped lexicon is not parsed (importing and stemming it cost ~20 ms)."""
    if paths:
        from monitor.stories.lexicon import load_lexicon

        load_lexicon(paths)


def _describe_channel(target: str, cfg: Config) -> str:
    """A masked view of a channel; opaque when a secret holds URL punctuation, since Apprise
    would split the URL inside the secret and print its pieces."""
    from monitor.delivery import channels as notify

    tricky = [s for s in cfg.secrets if s in target and s != target and any(c in s for c in "@/?#")]
    if not tricky:
        return cfg.mask(notify.describe(target))
    scheme = target.split("://", 1)[0] if "://" in target else "file"
    warning = ""
    if any("@" in s for s in tricky):
        warning = " (warning: a ${VAR} value contains '@': percent-encode it as %40)"
    return f"{scheme}://{secrets.MASK}{warning}"


@cli.command()
@pass_ctx
def once(ctx: Context) -> None:
    """Poll every source once, store what is new, deliver what is due, and exit."""
    import asyncio

    from monitor.runtime import logs

    cfg = ctx.config
    # the summary below lists every failed source: per-poll log lines would only repeat it
    logs.configure(cfg.settings.log_format, level="error", secrets=cfg.secrets)
    results, drained, storage_error = asyncio.run(_once(cfg, ctx.clock))
    click.echo(report.poll_summary(results), err=True)
    if drained is not None:
        click.echo(report.drain_summary(drained), err=True)
    if storage_error is not None:
        raise StorageError(storage_error)  # main(): message, hint, exit 1
    if results and all(r.outcome == "error" for r in results):  # some failures are routine
        click.echo("error: no source could be polled", err=True)
        raise SystemExit(1)


async def _once(
    cfg: Config, clock: Clock
) -> tuple[list[PollResult], DrainResult | None, str | None]:
    """Poll, check source health, deliver. Nothing is sent when polls could not be stored:
    a send whose outcome cannot be recorded would only be sent again later."""
    from monitor.service.monitor import Monitor

    monitor = Monitor(cfg, clock=clock)
    enabled = sum(1 for s in cfg.sources if s.enabled)
    try:
        # a progress bar on a terminal only: a pipe or a log file gets the summary alone
        if sys.stderr.isatty():
            with click.progressbar(length=enabled, label="polling", file=sys.stderr) as bar:
                results = await monitor.poll_everything(on_done=lambda _r: bar.update(1))
        else:
            results = await monitor.poll_everything()
        if monitor.storage_error is not None:
            return results, None, monitor.storage_error
        monitor.check_sources()
        return results, await monitor.drain(), None
    finally:
        await monitor.close()


@cli.command()
@pass_ctx
def run(ctx: Context) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP or a config edit reloads the config."""
    import asyncio

    from monitor.runtime import logs
    from monitor.runtime.daemon import Daemon

    cfg = ctx.config
    logs.configure(cfg.settings.log_format, secrets=cfg.secrets)
    raise SystemExit(asyncio.run(Daemon(ctx.config_path, clock=ctx.clock).run(cfg)))


@cli.command()
@click.option("--status", type=click.Choice(["pending", "sent", "dead"]), default=None)
@click.option("--limit", default=30, show_default=True)
@pass_ctx
def alerts(ctx: Context, status: str | None, limit: int) -> None:
    """Recent and pending alerts with their delivery status."""
    with ctx.store() as store:
        rows = store.recent_alerts(limit=limit, status=status)
    click.echo(report.alerts_table(rows, ctx.config.settings.timezone))


@cli.command("notify-test")
@click.argument("channel")
@pass_ctx
def notify_test(ctx: Context, channel: str) -> None:
    """Send a test alert to CHANNEL now and say whether it was accepted."""
    from monitor.delivery import channels as notify
    from monitor.models import Message

    cfg = ctx.config
    if channel not in cfg.channels:
        known = ", ".join(cfg.channels) or "none configured"
        raise click.UsageError(f"no channel named {channel!r} (channels: {known})")
    message = Message(
        title="news-monitor test alert",
        text=f"This is a test alert from news-monitor for channel {channel}.",
        markdown=f"This is a **test alert** from news-monitor for channel `{channel}`.",
        html=f"<p>This is a <b>test alert</b> from news-monitor for channel {channel}.</p>",
    )
    delivery = notify.send(cfg.channels[channel], message)
    if delivery.ok:
        click.echo(f"sent to {channel}: {cfg.mask(notify.describe(cfg.channels[channel]))}")
        return
    click.echo(
        f"failed to send to {channel}: {cfg.mask(delivery.error or 'unknown error')}", err=True
    )
    raise SystemExit(1)


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
    from monitor.rules.query import Document, RuleSet, parse_query

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
        import asyncio

        articles = asyncio.run(_fetch_articles(ctx, url))
        shown = 0
        for article in articles:
            for hit in ruleset.match(Document.from_article(article)):
                shown += 1
                click.echo(report.format_match(article, hit, ctx.config.settings.timezone))
        click.echo(f"{shown} of {len(articles)} items match", err=True)
        return
    with ctx.store() as store:
        shown = total = 0
        for _id, article in store.articles():
            total += 1
            for hit in ruleset.match(Document.from_article(article)):
                shown += 1
                if shown <= limit:
                    click.echo(report.format_match(article, hit, ctx.config.settings.timezone))
        click.echo(f"{shown} of {total} stored articles match", err=True)


async def _fetch_articles(ctx: Context, url: str) -> list:
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


@cli.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def search(ctx: Context, query: str, limit: int) -> None:
    """Full-text search of stored articles (accent-insensitive; FTS5 syntax)."""
    with ctx.store() as store:
        rows = store.search(query, limit=limit)
    for article_id, article, snippet in rows:
        click.echo(
            report.format_search_hit(article_id, article, snippet, ctx.config.settings.timezone)
        )
    click.echo(f"{len(rows)} results", err=True)


@cli.command()
@click.argument("story_id", type=int, required=False)
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def stories(ctx: Context, story_id: int | None, limit: int) -> None:
    """Recent stories (id, first seen, size, languages, outlets, alerts, headline), or one
    story's timeline: its articles and copies, which of them alerted, and why."""
    tz = ctx.config.settings.timezone
    with ctx.store() as store:
        if story_id is None:
            for s in store.recent_stories(limit):
                click.echo(report.story_line(s, tz))
            return
        entries = store.story_timeline(story_id)
    if not entries:
        click.echo(f"no story #{story_id}", err=True)
        raise SystemExit(1)
    for e in entries:
        click.echo(report.timeline_entry(e, tz))


@cli.command()
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 unless polls are succeeding (for HEALTHCHECK and monitoring).",
)
@pass_ctx
def sources(ctx: Context, check: bool) -> None:
    """Each source's health: last success, last error, items, next poll."""
    from monitor.service import source_health

    now = ctx.clock.now()
    with ctx.store() as store:
        if check:
            raise SystemExit(_liveness(ctx.config, store, now))
        rows = _as_configured(store.sources_health(), ctx.config.sources)
        settings = ctx.config.settings
        stored = _as_configured(store.health_rows(), ctx.config.sources)
        health = source_health.assess(stored, now, settings.failing_after)
    down = [h for h in health if h.down]
    names = frozenset(h.name for h in down)
    click.echo(report.sources_table(rows, settings.timezone, now=now, down=names))
    if unknown := [s.name for s in ctx.config.sources if s.name not in {r["name"] for r in rows}]:
        click.echo(f"\nnot polled yet (new in the config): {', '.join(unknown)}")
    if down:
        span = report.span(int(settings.failing_after))
        click.echo(f"\ndown (failing, no success for over {span}):")
        for h in down:
            click.echo(source_health.describe(h, settings.timezone))


def _as_configured(rows: list[dict], sources: Sequence[Source]) -> list[dict]:
    """Stored source rows with `enabled` as the config has it, which the daemon writes at its
    next reload: `sources` only reads, so that it works on a database it cannot write."""
    enabled = {s.name for s in sources if s.enabled}
    return [{**row, "enabled": int(row["name"] in enabled)} for row in rows]


def _liveness(cfg: Config, store: Store, now: datetime) -> int:
    """0 while polls are succeeding: some enabled source had a good poll within three of its
    intervals (plus a minute) and is not down (source_health.polling_ok). A daemon that is stuck
    or whose every source fails is 1 either way, so a green check means alerts can come."""
    from monitor.service import source_health

    rows = store.health_rows()
    report_ = source_health.assess(rows, now, cfg.settings.failing_after)
    intervals = {s.name: s.interval for s in cfg.sources if s.enabled}
    ok, why = source_health.polling_ok(report_, intervals, now)
    click.echo(why, err=not ok)
    return 0 if ok else 1


def main(clock: Clock | None = None) -> None:
    """Console entry point: map our errors to exit codes instead of tracebacks. `clock`: what
    the commands take as now (the system clock by default)."""
    try:
        cli(standalone_mode=True, obj=clock)
    except MonitorError as exc:
        click.echo(f"error: {exc}{_hint(exc)}", err=True)
        raise SystemExit(1) from None


def _hint(exc: MonitorError) -> str:
    """What to check for the storage errors SQLite words tersely."""
    from monitor.service.lock import LockFileError

    text = str(exc).lower()
    if not isinstance(exc, StorageError) or isinstance(exc, LockFileError):  # says it all
        return ""
    if "full" in text or "disk i/o" in text:
        return "\n  (is the disk full, or a file size limit reached? nothing committed was lost)"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return "\n  (can this user write the database file and its directory?)"
    return ""
