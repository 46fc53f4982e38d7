"""`news-monitor migrate --to postgresql://...`: move a monitor from its SQLite file onto
PostgreSQL, keeping everything it knows.

Copies the config's SQLite database (or `--from PATH`) into an empty PostgreSQL database:
sources' state (ETags, errors, next polls), articles, matches, stories, the outbox with every
alert sent or pending and its attempts, copies, mutes. Then the workers pointed at the
PostgreSQL database go on where the SQLite monitor stopped: nothing already alerted is alerted
again, and feeds are polled conditionally as before.

All or nothing (one PostgreSQL transaction: store/transfer.py). The SQLite file is only read,
so it stays as it was whatever happens; stop the monitor using it first (refused otherwise:
whatever it did after the copy would be missed). The URL's password is never printed: the
config line shown takes it from `${PGPASSWORD}`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from monitor.cli import report as report
from monitor.cli.context import Context, pass_ctx
from monitor.errors import StorageError

PASSWORD_VARIABLE = "${PGPASSWORD}"  # what the config line shown says instead of the password


@click.command()
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy into: postgresql://user:password@host/db.",
)
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The SQLite file to copy [default: the config's database].",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Empty the target first, losing what it holds (else a target with data is refused).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_ctx
def migrate(ctx: Context, target: str, source: Path | None, replace: bool, as_json: bool) -> None:
    """Copy the SQLite database (the config's, or --from PATH) into an empty PostgreSQL
    database: sources' state, articles, stories, alerts and their history. All or nothing;
    the SQLite file is only read."""
    from monitor import secrets
    from monitor.store import describe, is_server
    from monitor.store.pg.connection import passwords
    from monitor.store.transfer import copy_to_postgres

    if not is_server(target):
        raise click.BadParameter(
            "say which PostgreSQL database: postgresql://user:password@host/db",
            param_hint="--to",
        )
    # whatever a library says, no password of the URL reaches the output
    secrets.remember(passwords(target))
    path = source if source is not None else _configured_file(ctx)
    _refuse_if_in_use(path)
    on_terminal = sys.stderr.isatty()
    copied = copy_to_postgres(
        path, target, replace=replace, progress=_show_progress if on_terminal else None
    )
    if on_terminal:
        click.echo("\r\x1b[K", err=True, nl=False)  # the progress line goes
    line = f'database = "{config_url(target)}"'
    tables = {c.table: c.rows for c in copied}
    if as_json:
        report.emit_json(
            {"source": str(path), "target": describe(target), "tables": tables, "config": line}
        )
        return
    width = max(len(name) for name in tables)
    click.echo(f"copied {path} into {describe(target)}:")
    for name, rows in tables.items():
        click.echo(f"  {name.ljust(width)}  {rows:>9}")
    click.echo(f"  {'total'.ljust(width)}  {sum(tables.values()):>9} rows")
    click.echo("next: point the config at it (the SQLite file is left as it was):")
    click.echo(f"  {line}")
    if PASSWORD_VARIABLE in line:
        click.echo("  with PGPASSWORD set in the environment of every worker")


def _show_progress(table: str, rows: int) -> None:
    """A big file takes minutes: one line on the terminal says how far the copy is."""
    click.echo(f"\rcopying {table}: {rows:,} rows\x1b[K", err=True, nl=False)


def _configured_file(ctx: Context) -> Path:
    """The config's database, which must be a SQLite file to copy from."""
    from monitor.store import describe, is_server

    database = ctx.config.settings.database
    if is_server(database):
        raise click.UsageError(
            f"the config's database is already {describe(database)}: "
            "say which SQLite file to copy with --from PATH"
        )
    return Path(database)


def _refuse_if_in_use(path: Path) -> None:
    """Refuse while a news-monitor process uses the file (it holds a shared lock on
    `<file>.lock`: service/lock.py): what it does after the copy would be lost."""
    from monitor.service.lock import alone

    try:
        lock = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file: no process has used it since it was made
        return
    try:
        if not alone(lock):
            raise StorageError(
                f"{path} is in use by a running news-monitor (`run`, `once`): stop it first, "
                "or the copy would miss what it does next"
            )
    finally:
        os.close(lock)


def config_url(url: str) -> str:
    """`url` as the config should say it: its password, if any, read from `${PGPASSWORD}`
    (the config's `${VAR}` rules) instead of written down."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:{PASSWORD_VARIABLE}@{host}"
    # the query as written (libpq reads `+` as itself: re-encoding would change it), but a
    # password in it
    query = "&".join(
        f"password={PASSWORD_VARIABLE}" if pair.partition("=")[0] == "password" else pair
        for pair in parts.query.split("&")
    ) if parts.query else ""  # fmt: skip
    return urlunsplit(parts._replace(netloc=netloc, query=query))
