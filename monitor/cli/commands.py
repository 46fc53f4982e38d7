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
from monitor.cli import alerts as alert_commands
from monitor.cli import discovery as discovery
from monitor.cli import feeds as feeds
from monitor.cli import migrate as migrate_command
from monitor.cli import mute as mute_commands
from monitor.cli import report as report
from monitor.cli import search as search_commands
from monitor.cli.context import Context, pass_ctx
from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, MonitorError, StorageError

if TYPE_CHECKING:
    from monitor.config.loader import Config
    from monitor.models import DrainResult, PollResult


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
    from monitor.text import format_size

    click.echo(f"  responses up to {format_size(cfg.settings.max_bytes)} (max_bytes)")
    from monitor.config.values import show_rate_limit

    for name, target in cfg.channels.items():
        limit = show_rate_limit(cfg.rate_limits.get(name, cfg.settings.rate_limit))
        click.echo(f"  channel {name}: {_describe_channel(target, cfg)} (rate limit {limit})")
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
    # the summary below lists every failed source: unless `log_level` says otherwise, per-poll
    # log lines would only repeat it
    s = cfg.settings
    logs.configure(s.log_format, s.log_level or "error", cfg.secrets, timezone=s.timezone)
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
    s = cfg.settings
    logs.configure(s.log_format, s.log_level or "info", cfg.secrets, timezone=s.timezone)
    raise SystemExit(asyncio.run(Daemon(ctx.config_path, clock=ctx.clock).run(cfg)))


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


cli.add_command(feeds.sources)
cli.add_command(discovery.discover)
cli.add_command(alert_commands.alerts)
cli.add_command(search_commands.search)
cli.add_command(search_commands.test_rule)
cli.add_command(search_commands.stories)
cli.add_command(mute_commands.mute)
cli.add_command(mute_commands.unmute)
cli.add_command(migrate_command.migrate)
