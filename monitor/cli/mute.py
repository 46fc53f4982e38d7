"""`news-monitor mute` and `unmute`: silence a noisy rule or source for a while.

- `mute NAME DURATION`: NAME is a rule or a source of the config (`rule:NAME` or `source:NAME`
  when both have it); until DURATION ("2h", "1d") has passed, its new matches are recorded (the
  article is stored, searchable and joins its story) but not sent. Muting again moves the end;
- `mute` alone: the mutes still running, with their end in the configured time zone and how
  many matches each has held so far;
- `unmute NAME`: end a mute now and list what it held.

Mutes live in the database, not the config: the running daemon reads them at every poll, so a
mute holds from its next poll on, without a restart or reload, and ends by itself. Alerts
queued before the mute still go out; `alerts drop --rule NAME` drops them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx

if TYPE_CHECKING:
    from monitor.models import Mute, MuteKind
    from monitor.store import Store

SHOWN = 10  # held matches `unmute` lists by name
KINDS: tuple[MuteKind, ...] = ("rule", "source")


@click.command()
@click.argument("name", required=False)
@click.argument("duration", required=False)
@pass_ctx
def mute(ctx: Context, name: str | None, duration: str | None) -> None:
    """Mute a rule or source (NAME, or rule:NAME / source:NAME) for DURATION ("2h", "1d"): its
    new matches are recorded, not sent. With no arguments: the mutes still running."""
    if name is None:
        _list_mutes(ctx)
        return
    if duration is None:
        raise click.UsageError('say for how long: news-monitor mute NAME DURATION, e.g. "2h"')
    kind, target = resolve(name, _configured(ctx))
    seconds = _seconds(duration)
    now = ctx.clock.now()
    tz = ctx.config.settings.timezone
    with ctx.writable_store() as store:
        done = store.mute(kind, target, now + timedelta(seconds=seconds), now)
        queued = _queued(store, target) if kind == "rule" else 0
    click.echo(
        f'muted {kind} "{target}" until {report.local_time(done.until, tz)} ({tz}): '
        "its new matches are recorded, not sent"
    )
    if queued:
        click.echo(
            f"{queued} of its alerts queued before still go out: "
            f"`news-monitor alerts drop --rule {target}` drops them"
        )


@click.command()
@click.argument("name")
@pass_ctx
def unmute(ctx: Context, name: str) -> None:
    """End the mute of a rule or source now, and list the matches it held."""
    now = ctx.clock.now()
    tz = ctx.config.settings.timezone
    with ctx.writable_store() as store:
        known = _configured(ctx)
        for m in store.active_mutes(now):  # a muted name the config has since dropped
            known[m.kind] = (*known[m.kind], m.name)
        kind, target = resolve(name, known)
        ended = store.unmute(kind, target, now)
        if ended is None:
            click.echo(f'{kind} "{target}" is not muted', err=True)
            return
        count, held = store.held_by(ended, now, limit=SHOWN)
    since, until = report.local_time(ended.since, tz), report.local_time(now, tz)
    click.echo(f'unmuted {kind} "{target}" (muted {since} to {until}, {tz}): it alerts again')
    if not count:
        click.echo("it held no matches")
        return
    click.echo(f"{_plural(count, 'match', 'matches')} held while muted (stored, not sent):")
    for _article_id, article, match in held:
        click.echo(report.format_match(article, match, tz))
    if count > len(held):
        click.echo(f"... and {count - len(held)} more")


def resolve(text: str, known: Mapping[MuteKind, Collection[str]]) -> tuple[MuteKind, str]:
    """(kind, name) of a NAME typed for `mute`: a rule's or a source's, or `rule:NAME` /
    `source:NAME` when both have it. An unknown or ambiguous one is a usage error that says
    what would do (names never hold ":", so the prefix cannot be part of one)."""
    text = unicodedata.normalize("NFC", text.strip())  # as the config's names are
    prefix, sep, rest = text.partition(":")
    if sep and prefix in KINDS:
        kind: MuteKind = prefix  # type: ignore[assignment]
        if rest not in known[kind]:
            raise click.UsageError(f'no {kind} named "{rest}"{_did_you_mean(rest, known[kind])}')
        return kind, rest
    found = [kind for kind in KINDS if text in known[kind]]
    if len(found) > 1:
        raise click.UsageError(
            f'"{text}" is both a rule and a source: write rule:{text} or source:{text}'
        )
    if not found:
        every = [n for kind in KINDS for n in known[kind]]
        rules, sources = ", ".join(known["rule"]) or "none", ", ".join(known["source"]) or "none"
        raise click.UsageError(
            f'no rule or source named "{text}"{_did_you_mean(text, every)}\n'
            f"rules: {rules}\nsources: {sources}"
        )
    return found[0], text


def _configured(ctx: Context) -> dict[MuteKind, tuple[str, ...]]:
    cfg = ctx.config
    return {"rule": tuple(r.name for r in cfg.rules), "source": tuple(s.name for s in cfg.sources)}


def _did_you_mean(word: str, known: Collection[str]) -> str:
    from monitor.config.tables import suggest

    return suggest(word, known)


def _seconds(duration: str) -> float:
    """The DURATION argument in seconds, as the config reads durations."""
    from monitor.config.values import valid_duration

    try:
        return valid_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DURATION") from None


def _queued(store: Store, rule: str) -> int:
    """Pending alerts that speak for `rule`."""
    return store.pending_count(rule)


def _list_mutes(ctx: Context) -> None:
    """The running mutes as a table; a database not made yet has none."""
    tz = ctx.config.settings.timezone
    from monitor.store import exists

    if not exists(ctx.config.settings.database):
        click.echo("no active mutes")
        return
    now = ctx.clock.now()
    with ctx.store() as store:
        mutes = [(m, store.held_by(m, now, limit=0)[0]) for m in store.active_mutes(now)]
    if not mutes:
        click.echo("no active mutes")
        return
    click.echo(mutes_table(mutes, tz, now))


def mutes_table(mutes: list[tuple[Mute, int]], timezone: str, now: datetime) -> str:
    """kind, name, end (in `timezone`), time left, matches held so far: one row per mute."""
    from monitor.config.values import show_duration

    header = ("kind", "name", f"until ({timezone})", "left", "held")
    rows = [header] + [
        (m.kind, m.name, report.local_time(m.until, timezone),
         show_duration((m.until - now).total_seconds()), str(held))
        for m, held in mutes
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
