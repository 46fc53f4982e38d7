"""`news-monitor sources`: the sources' health (`--json` for scripts), and `sources import` /
`sources export`, which move a list of feeds in and out as OPML.

`import` ends as `discover` (cli/discovery.py) does, in `[[sources]]` blocks (`cli.blocks`).

`sources import --write` appends to the config as text, after a backup, and never through a
TOML library: that would rewrite the user's file, its comments and its order. The file is then
loaded by the real loader; if it no longer loads, it is cut back to its old length (the backup
stays) and the loader's problems are shown. Plain `sources` and `sources --check` stay read-only
and light (tests/test_public_api.py): the OPML, HTTP and feed modules load inside the commands
that need them.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from monitor.cli import blocks
from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx
from monitor.errors import ParseError

if TYPE_CHECKING:
    from datetime import datetime

    from monitor.config.loader import Config
    from monitor.ingest.opml import Outline
    from monitor.models import Source
    from monitor.store import Store


# ------------------------------------------------------------------ sources: health


@click.group(invoke_without_command=True)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 unless polls are succeeding (for HEALTHCHECK and monitoring).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def sources(click_ctx: click.Context, check: bool, as_json: bool) -> None:
    """Each source's health: last success, last error, items, next poll.

    `sources import FILE.opml` and `sources export` move feed lists in and out."""
    if click_ctx.invoked_subcommand is not None:
        if check or as_json:
            raise click.UsageError("--check and --json go with plain `sources`")
        return
    ctx = click_ctx.find_object(Context)
    assert ctx is not None  # the `cli` group sets it
    _health(ctx, check, as_json)


def _health(ctx: Context, check: bool, as_json: bool) -> None:
    from monitor.service import source_health

    now = ctx.clock.now()
    cfg = ctx.config
    with ctx.store() as store:
        if check:
            raise SystemExit(_liveness(cfg, store, now, as_json))
        rows = _as_configured(store.sources_health(), cfg.sources)
        settings = cfg.settings
        stored = _as_configured(store.health_rows(), cfg.sources)
        health = source_health.assess(stored, now, settings.failing_after)
    down = [h for h in health if h.down]
    names = frozenset(h.name for h in down)
    unknown = [s for s in cfg.sources if s.name not in {r["name"] for r in rows}]
    if as_json:
        report.emit_json(_health_json(rows, unknown, names))
        return
    click.echo(report.sources_table(rows, settings.timezone, now=now, down=names))
    if unknown:
        click.echo(f"\nnot polled yet (new in the config): {', '.join(s.name for s in unknown)}")
    if down:
        span = report.span(int(settings.failing_after))
        click.echo(f"\ndown (failing, no success for over {span}):")
        for h in down:
            click.echo(source_health.describe(h, settings.timezone))


def _health_json(rows: list[dict], unknown: Sequence[Source], down: frozenset[str]) -> list:
    """The table's rows with their status word, then the configured sources not polled yet."""
    out = [{**row, "status": report.source_status(row, down)} for row in rows]
    for source in unknown:
        out.append(
            {
                "name": source.name,
                "url": source.shown_url,
                "kind": source.kind,
                "enabled": int(source.enabled),
                "status": "new" if source.enabled else "disabled",
                "articles": 0,
            }
        )
    return out


def _as_configured(rows: list[dict], sources: Sequence[Source]) -> list[dict]:
    """Stored source rows with `enabled` as the config has it, which the daemon writes at its
    next reload: `sources` only reads, so that it works on a database it cannot write."""
    enabled = {s.name for s in sources if s.enabled}
    return [{**row, "enabled": int(row["name"] in enabled)} for row in rows]


def _liveness(cfg: Config, store: Store, now: datetime, as_json: bool = False) -> int:
    """0 while polls are succeeding: some enabled source had a good poll within three of its
    intervals (plus a minute) and is not down (source_health.polling_ok). A daemon that is stuck
    or whose every source fails is 1 either way, so a green check means alerts can come."""
    from monitor.service import source_health

    rows = store.health_rows()
    report_ = source_health.assess(rows, now, cfg.settings.failing_after)
    intervals = {s.name: s.interval for s in cfg.sources if s.enabled}
    ok, why = source_health.polling_ok(report_, intervals, now)
    if as_json:
        report.emit_json({"ok": ok, "reason": why})
    else:
        click.echo(why, err=not ok)
    return 0 if ok else 1


# ------------------------------------------------------------------ sources import


@dataclass
class _Import:
    """What an OPML file brings: blocks to add, and the feeds left out with why."""

    blocks: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # "URL (already configured as NAME)"
    left_out: list[str] = field(default_factory=list)  # "URL: why"


@sources.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--write", is_flag=True, help="Append the new sources to the config (backed up).")
@pass_ctx
def import_opml(ctx: Context, file: Path, write: bool) -> None:
    """Turn an OPML subscription list into [[sources]] blocks: printed, or with --write
    appended to the config after a backup. Feeds already configured are skipped."""
    from monitor.ingest.opml import MAX_BYTES, parse_opml

    try:
        if file.stat().st_size > MAX_BYTES:
            raise ParseError(f"too large: over {MAX_BYTES:,} bytes")
        opml = parse_opml(file.read_bytes())
    except (OSError, ParseError) as exc:
        click.echo(f"error: {file}: {getattr(exc, 'strerror', None) or exc}", err=True)
        raise SystemExit(2) from None
    plan = _plan(opml.feeds, ctx.config.sources)
    plan.left_out += [f"{url}: {why}" for url, why in opml.skipped]
    _report_import(file, opml.title, plan)
    if not plan.blocks:
        return
    if not write:
        click.echo("\n".join(plan.blocks), nl=False)
        return
    stamp = ctx.clock.now().astimezone(ZoneInfo(ctx.config.settings.timezone))
    header = blocks.comment(f"imported from {file.name} on {stamp:%Y-%m-%d %H:%M}")
    _append_sources(ctx.config_path, header + "\n\n" + "\n".join(plan.blocks), plan.names, stamp)


def _plan(feeds: Sequence[Outline], configured: Sequence[Source]) -> _Import:
    from monitor.ingest.opml import same_feed

    have = {same_feed(s.shown_url): s.name for s in configured}
    have.update({same_feed(s.url): s.name for s in configured})
    names = blocks.NameMaker(s.name for s in configured)
    plan = _Import()
    for feed in feeds:
        if (known := have.get(same_feed(feed.xml_url))) is not None:
            plan.known.append(f"{feed.xml_url} (already configured as {known})")
        elif var := re.search(r"\$\{[^}]*\}?", feed.xml_url):  # the loader fills it in
            plan.left_out.append(
                f"{feed.xml_url}: holds {var.group()}, which the config reads from the "
                "environment: add it by hand if it is yours"
            )
        else:
            name = names.make(feed.title, feed.xml_url)
            folder = f"folder: {feed.category}" if feed.category else ""
            note = " · ".join(filter(None, [feed.title, folder, feed.html_url]))
            plan.blocks.append(
                blocks.block(name, feed.xml_url, note=note, language=_language(feed.language))
            )
            plan.names.append(name)
    return plan


def _language(code: str | None) -> str | None:
    """The outline's `language` when the config takes it (exporters write "unknown")."""
    from monitor.config.values import valid_language

    try:
        return valid_language(code) if code else None
    except ValueError:
        return None


def _report_import(file: Path, title: str, plan: _Import) -> None:
    """What the file held, on stderr: stdout carries only the blocks, ready to redirect."""
    total = len(plan.blocks) + len(plan.known) + len(plan.left_out)
    named = f" ({title})" if title else ""
    click.echo(
        f"{file}{named}: {total} feeds: {len(plan.blocks)} new, "
        f"{len(plan.known)} already configured, {len(plan.left_out)} left out",
        err=True,
    )
    for line in plan.known:
        click.echo(f"  skipped {line}", err=True)
    for line in plan.left_out:
        click.echo(f"  left out {line}", err=True)


def _backup(path: Path, when: datetime) -> Path:
    backup = path.with_name(f"{path.name}.bak-{when:%Y%m%d%H%M%S}")
    n = 1
    while backup.exists():  # two imports within a second
        n += 1
        backup = path.with_name(f"{path.name}.bak-{when:%Y%m%d%H%M%S}-{n}")
    shutil.copy2(path, backup)
    return backup


def _append_sources(path: Path, text: str, names: Sequence[str], when: datetime) -> None:
    """Back the config up, append `text`, and prove the file still loads; else cut it back."""
    from monitor.config.loader import load
    from monitor.errors import ConfigError

    try:
        original = path.read_bytes()
        backup = _backup(path, when)
    except OSError as exc:
        click.echo(f"error: cannot back up {path}: {exc.strerror or exc}; nothing added", err=True)
        raise SystemExit(1) from None
    newline = "\r\n" if b"\r\n" in original else "\n"
    lead = newline if original and not original.endswith(b"\n") else ""
    try:
        with path.open("ab") as out:
            out.write((lead + newline + text.replace("\n", newline)).encode("utf-8"))
    except OSError as exc:
        _restore(path, original)
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}; nothing added", err=True)
        raise SystemExit(1) from None
    try:
        loaded = {s.name for s in load(path).sources}
    except ConfigError as exc:
        _restore(path, original)
        click.echo(f"error: {path} would not load with the new sources; left as it was:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(2) from None
    missing = [n for n in names if n not in loaded]
    if missing:  # e.g. the file defines `sources` in a way an appended block does not extend
        _restore(path, original)
        click.echo(f"error: {path}: the appended sources did not load: {missing}", err=True)
        raise SystemExit(2)
    click.echo(f"added {len(names)} sources to {path} (backup: {backup})", err=True)
    click.echo("a running daemon picks them up by itself; `news-monitor once` polls now", err=True)


def _restore(path: Path, original: bytes) -> None:
    """Only bytes were appended: cutting the file back to its length restores it exactly."""
    with contextlib.suppress(OSError), path.open("r+b") as f:
        f.truncate(len(original))
    if path.read_bytes() != original:  # changed meanwhile by someone else: the old bytes win
        path.write_bytes(original)


# ------------------------------------------------------------------ sources export


@sources.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def export_opml(ctx: Context, file: Path | None) -> None:
    """Write the configured feed sources as OPML 2.0 to FILE, or to standard output."""
    from monitor.ingest.opml import Outline, write_opml

    cfg = ctx.config
    feeds = [
        Outline(title=s.name, xml_url=s.shown_url, language=s.language)  # ${VAR} as written
        for s in cfg.sources
        if s.kind == "feed"
    ]
    text = write_opml(feeds, title=f"news-monitor sources ({cfg.path.name})", now=ctx.clock.now())
    pages = [s.name for s in cfg.sources if s.kind != "feed"]
    if file is None:
        click.echo(text, nl=False)
    else:
        try:
            file.write_text(text, encoding="utf-8")
        except OSError as exc:
            click.echo(f"error: cannot write {file}: {exc.strerror or exc}", err=True)
            raise SystemExit(1) from None
        click.echo(f"wrote {len(feeds)} feeds to {file}", err=True)
    if pages:
        click.echo(f"not exported (pages without a feed): {', '.join(pages)}", err=True)
