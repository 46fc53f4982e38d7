"""`news-monitor alerts`: the outbox as a user sees it, and the backlog under the user's control.

- `alerts [--status S] [--limit N] [--json]`: recent alerts, newest first, with their delivery
  state (only reads the database, like `sources`);
- `alerts retry ID` / `alerts retry --all-dead`: dead alerts pending again, due now, with a
  full retry schedule (attempts reset);
- `alerts drop ID` / `alerts drop --rule NAME` / `alerts drop --channel NAME`: pending alerts
  that should never go out (a backlog after a noisy rule, a channel being replaced). They are
  marked `dropped`, not deleted, so `alerts` still says what happened to them; `retry ID`
  brings one back.

One message per article and channel: an alert may speak for several rules. `drop --rule`
drops the alerts of that rule alone and keeps (and names) those other rules matched too.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx

STATUSES = ("pending", "sent", "dead", "dropped")
SHOWN = 10  # alerts listed by name in what retry and drop report
_JSON_KEYS = (
    *("id", "status", "channel", "rule", "rules", "title", "digest", "attempts", "created_at"),
    *("due_at", "sent_at", "last_error", "article_id"),
)


def headline(row: dict) -> str:
    """The alert's title without the `[rule, ...] ` its message starts with (the rules have a
    column of their own); a digest's rows say so."""
    title = row["title"]
    for names in (", ".join(row["rules"]), row["rule"]):
        if title.startswith(f"[{names}] "):
            title = title[len(names) + 3 :]
            break
    return f"(digest) {title}" if row["digest"] else title


def alerts_table(rows: Sequence[dict], timezone: str) -> str:
    """A header row, then one row per alert, newest first; a failed one's last error under it."""
    header = ("id", "status", "when", "channel", "rules", "tries", "title")
    table = [header]
    errors: dict[int, str] = {}
    for row in rows:
        when = row["sent_at"] if row["status"] == "sent" else row["due_at"]
        table.append(
            (
                f"#{row['id']}",
                row["status"],
                report.local_time(when, timezone),
                row["channel"],
                ", ".join(row["rules"]),
                str(row["attempts"]),
                headline(row),
            )
        )
        if row["last_error"] and row["status"] != "sent":
            errors[len(table) - 1] = row["last_error"]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for n, cells in enumerate(table):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if n in errors:
            lines.append(f"{' ' * (widths[0] + 2)}last error: {errors[n]}")
    return "\n".join(lines)


def _short_list(rows: Sequence[dict]) -> list[str]:
    """At most SHOWN alerts, one line each (id, channel, rules, title), then how many more."""
    cells = [(f"#{r['id']}", r["channel"], ", ".join(r["rules"])) for r in rows[:SHOWN]]
    widths = [max((len(c[i]) for c in cells), default=0) for i in range(3)]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + f"  {headline(r)}"
        for cell, r in zip(cells, rows, strict=False)
    ]
    if len(rows) > SHOWN:
        lines.append(f"  … and {len(rows) - SHOWN} more")
    return lines


@click.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only these.")
@click.option("--limit", default=30, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (a list) on stdout.")
@click.pass_context
def alerts(click_ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Recent and pending alerts with their delivery status; `retry` and `drop` them."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(Context)
    assert ctx is not None  # the `cli` group made it
    with ctx.store() as store:
        rows = store.recent_alerts(limit=limit, status=status)
    if as_json:
        report.emit_json([{k: row[k] for k in _JSON_KEYS} for row in rows])
    elif not rows:
        click.echo(f"no {status} alerts" if status else "no alerts")
    else:
        click.echo(alerts_table(rows, ctx.config.settings.timezone))


@alerts.command()
@click.argument("alert_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Every dead alert.")
@pass_ctx
def retry(ctx: Context, alert_id: int | None, all_dead: bool) -> None:
    """Send dead alerts again: pending, due now, with their attempts reset. ALERT_ID may also be
    a dropped alert, to take a drop back."""
    if (alert_id is None) == (not all_dead):
        raise click.UsageError("give an alert ID or --all-dead (not both)")
    tz, now = ctx.config.settings.timezone, ctx.clock.now()
    with ctx.writable_store() as store:
        if alert_id is not None:
            _retryable(store.alert_row(alert_id), alert_id, tz)
        retried = store.retry_alerts(now, None if alert_id is None else [alert_id])
    if not retried:
        click.echo("no dead alerts")
        return
    click.echo(f"{report.plural(len(retried), 'alert')} pending again, due now:")
    click.echo("\n".join(_short_list(retried)))
    click.echo("the daemon (`run`) sends them at its next tick; `once` sends them too")


def _retryable(row: dict | None, alert_id: int, timezone: str) -> None:
    if row is None:
        raise click.ClickException(f"no alert #{alert_id}")
    if row["status"] == "pending":
        due = report.local_time(row["due_at"], timezone)
        raise click.ClickException(f"alert #{alert_id} is pending already (due {due})")
    if row["status"] == "sent":
        sent = report.local_time(row["sent_at"], timezone)
        raise click.ClickException(f"alert #{alert_id} was sent at {sent}: nothing to retry")


@alerts.command()
@click.argument("alert_id", type=int, required=False)
@click.option("--rule", help="Every pending alert of this rule.")
@click.option("--channel", help="Every pending alert to this channel.")
@pass_ctx
def drop(ctx: Context, alert_id: int | None, rule: str | None, channel: str | None) -> None:
    """Never send these alerts: one (pending or dead), or every pending one of a rule or a
    channel (both: of that rule to that channel). They stay listed as dropped."""
    if (alert_id is None) == (rule is None and channel is None):
        raise click.UsageError("give an alert ID, or --rule and/or --channel")
    now = ctx.clock.now()
    with ctx.writable_store() as store:
        if alert_id is not None:
            _droppable(store.alert_row(alert_id), alert_id)
        done = store.drop_alerts(
            now, ids=None if alert_id is None else [alert_id], rule=rule, channel=channel
        )
    what = _described(alert_id, rule, channel)
    if done.dropped:
        click.echo(f"dropped {report.plural(len(done.dropped), 'alert')} ({what}):")
        click.echo("\n".join(_short_list(done.dropped)))
    elif not done.sending and not done.shared:
        click.echo(f"no pending alerts ({what}){_unknown(ctx, rule, channel)}")
    if done.shared:
        click.echo(f"kept {report.plural(len(done.shared), 'alert')} that other rules matched too "
                   "(drop one by its id: `news-monitor alerts drop ID`):")  # fmt: skip
        click.echo("\n".join(_short_list(done.shared)))
    if done.sending:
        busy = report.plural(len(done.sending), "alert")
        click.echo(f"{busy} being sent right now, not dropped: "
                   + ", ".join(f"#{r['id']}" for r in done.sending))  # fmt: skip
        if alert_id is not None:
            raise SystemExit(1)


def _droppable(row: dict | None, alert_id: int) -> None:
    if row is None:
        raise click.ClickException(f"no alert #{alert_id}")
    if row["status"] in ("sent", "dropped"):
        raise click.ClickException(f"alert #{alert_id} is {row['status']} already")


def _described(alert_id: int | None, rule: str | None, channel: str | None) -> str:
    if alert_id is not None:
        return f"#{alert_id}"
    parts = [f"rule {rule}" if rule else "", f"channel {channel}" if channel else ""]
    return ", ".join(p for p in parts if p)


def _unknown(ctx: Context, rule: str | None, channel: str | None) -> str:
    """Why nothing matched, when the name is not in the config: a typo, most likely."""
    from monitor.config.tables import suggest  # the config is loaded already (pydantic)

    said = []
    for kind, name, known in (
        ("rule", rule, [r.name for r in ctx.config.rules]),
        ("channel", channel, list(ctx.config.channels)),
    ):
        if name is not None and name not in known:
            said.append(f'no {kind} "{name}" in the config{suggest(name, known)}')
    return f"; {'; '.join(said)}" if said else ""


__all__ = ["alerts", "alerts_table", "headline"]
