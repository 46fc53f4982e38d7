"""`news-monitor migrate --to postgresql://...` (issue 15): a monitor moves from its SQLite file
onto PostgreSQL and goes on where it stopped.

The SQLite database is made by really running `once` (feeds on 127.0.0.1 with ETags, a JSON
webhook, a rule alerting at once and one collecting a digest, a mute), then copied through the
real CLI into a throwaway PostgreSQL server (skipped where none can be started). What a user
notices: the PostgreSQL store answers every question as the SQLite one did (sources, articles,
matches, stories, alerts, mutes); `once` on PostgreSQL afterwards re-alerts nothing, polls with
the ETags it had, sends the digest that was pending and numbers new alerts past the old ones;
a target with data, a missing file, a file of an older schema, a file in use, a bad URL are
refused with what to do, writing nothing; a copy that fails half-way leaves the target empty;
the URL's password is never printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from monitor.errors import StorageError
from monitor.store import open_store
from monitor.store.schema import MIGRATIONS
from tests.conftest import Clock
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply, Seen
from tests.receivers import WebhookReceiver

WIRE = [
    ("w1", "Kyiv council approves new bridge budget"),
    ("w2", "Kyiv airport plans summer flights"),
    ("w3", "Lviv museum reopens after repairs"),
]
AGENCY = [
    ("a1", "Kyiv council approves the new bridge budget, mayor says"),
    ("a2", "Odesa port handles record grain exports"),
]


class Feed:
    """A feed on the loopback server with an ETag: `304 Not Modified` to a client that sends
    it back, the body otherwise. `etag_sent` lists each request's If-None-Match."""

    def __init__(self, server: LoopbackServer, path: str) -> None:
        self.server, self.path = server, path
        self.body, self.etag = b"", ""
        server.route(path, self._reply)

    def serve(self, items: list[tuple[str, str]], clock: Clock) -> None:
        when = clock.now() - timedelta(minutes=5)
        self.body = rss([Item(guid, title, title, published=when) for guid, title in items])
        self.etag = f'"v{len(items)}-{hash(self.body) & 0xFFFF}"'

    def _reply(self, seen: Seen) -> Reply:
        sent = {k.lower(): v for k, v in seen.headers.items()}.get("if-none-match")
        if sent == self.etag:
            return Reply(304, b"", {"ETag": self.etag})
        return Reply(200, self.body, {"ETag": self.etag, "Content-Type": "application/rss+xml"})

    @property
    def etag_sent(self) -> list[str | None]:
        return [
            {k.lower(): v for k, v in s.headers.items()}.get("if-none-match")
            for s in self.server.hits(self.path)
        ]


class Monitor:
    """One config with two feeds, two rules and two webhook channels, run through the CLI."""

    def __init__(self, tmp_path: Path, server: LoopbackServer, hook: WebhookReceiver) -> None:
        self.tmp_path, self.hook = tmp_path, hook
        self.sqlite = tmp_path / "monitor.db"
        self.config = tmp_path / "monitor.toml"
        self.wire, self.agency = Feed(server, "/wire.xml"), Feed(server, "/agency.xml")
        self.urls = {"wire": server.url("/wire.xml"), "agency": server.url("/agency.xml")}
        self.point_at(self.sqlite)

    def point_at(self, database: str | Path) -> None:
        sources = "".join(
            f'[[sources]]\nname = "{name}"\nurl = "{url}"\nallow_private = true\n'
            for name, url in self.urls.items()
        )
        self.config.write_text(
            f'[monitor]\ndatabase = "{database}"\ntimezone = "Europe/Rome"\n'
            f'[channels]\nhook = "{self.hook.url()}"\nevening = "{self.hook.url("/evening")}"\n'
            f"{sources}"
            '[[rules]]\nname = "city"\nquery = "kyiv"\nalert = "article"\nchannels = ["hook"]\n'
            '[[rules]]\nname = "ports"\nquery = "port OR bridge"\nalert = "article"\n'
            'digest = "0 18 * * *"\nchannels = ["evening"]\n',
            encoding="utf-8",
        )

    def run(self, clock: Clock, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], obj=clock)
        assert result.exit_code == code, result.output
        return result

    def sent(self, path: str = "/hook") -> list[str]:
        return [p.payload["title"] for p in self.hook.posts if p.path == path]


@pytest.fixture
def monitor(tmp_path: Path, server: LoopbackServer, hook: WebhookReceiver) -> Monitor:
    return Monitor(tmp_path, server, hook)


def lived_in(monitor: Monitor, clock: Clock) -> None:
    """A SQLite database with a history: two polls (the second conditional), alerts sent and
    a digest pending, stories, a mute."""
    monitor.wire.serve(WIRE[:2], clock)
    monitor.agency.serve(AGENCY[:1], clock)
    monitor.run(clock, "once")
    clock.advance(minutes=10)
    monitor.wire.serve(WIRE, clock)
    monitor.agency.serve(AGENCY, clock)
    monitor.run(clock, "once")
    clock.advance(minutes=10)
    monitor.run(clock, "mute", "source:agency", "1d")
    assert len(monitor.sent()) == 3  # the Kyiv items, at once
    assert monitor.sent("/evening") == []  # their digest is due at 18:00


def migrate(monitor: Monitor, clock: Clock, *args: str, code: int = 0) -> Result:
    return monitor.run(clock, "migrate", *args, code=code)


def refused(monitor: Monitor, clock: Clock, *args: str) -> str:
    """The error `migrate` stops with (what `main` prints after "error: ", exit 1)."""
    result = migrate(monitor, clock, *args, code=1)
    assert isinstance(result.exception, StorageError), result.output
    return str(result.exception)


def snapshot(database: str | Path, clock: Clock) -> dict:
    """What the store answers about everything it holds."""
    with open_store(database) as store:
        stories = store.recent_stories(limit=100)
        return {
            "sources": store.sources_health(),
            "states": {n: store.source_state(n) for n in ("wire", "agency")},
            "hashes": {n: store.item_hashes(n) for n in ("wire", "agency")},
            "articles": list(store.articles()),
            "matches": store.matches(limit=100),
            "stories": stories,
            "timelines": {s.id: store.story_timeline(s.id) for s in stories},
            "alerts": store.recent_alerts(limit=100),
            "unsent": store.unsent_alerts(clock.now() + timedelta(days=1)),
            "mutes": store.active_mutes(clock.now()),
        }


def tables_of(database: Path) -> dict[str, int]:
    conn = sqlite3.connect(database)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
            for n in names
            if not n.startswith(("articles_fts", "sqlite_"))
        }
    finally:
        conn.close()


def pg_count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_migrated_monitor_answers_as_before_and_goes_on_where_it_stopped(monitor, pg_url):
    clock = Clock()
    lived_in(monitor, clock)
    before = snapshot(monitor.sqlite, clock)
    assert before["stories"] and before["mutes"]
    assert {a["status"] for a in before["alerts"]} == {"sent", "pending"}

    out = migrate(monitor, clock, "--to", pg_url).output
    assert f'database = "{pg_url}"' in out  # no password in this URL: said as it is
    for table, rows in tables_of(monitor.sqlite).items():
        assert any(line.split() == [table, str(rows)] for line in out.splitlines()), table

    assert snapshot(pg_url, clock) == before

    monitor.point_at(pg_url)
    clock.advance(minutes=10)
    monitor.run(clock, "once")
    assert len(monitor.sent()) == 3  # nothing alerted again
    assert monitor.wire.etag_sent[-1] == monitor.wire.etag  # polled conditionally: 304
    assert monitor.agency.etag_sent[-1] == monitor.agency.etag

    clock.advance(minutes=10)  # a new item: alerted once, its alert numbered past the old ones
    monitor.wire.serve([*WIRE, ("w4", "Kyiv zoo welcomes two snow leopards")], clock)
    monitor.run(clock, "once")
    assert monitor.sent()[3:] == ["[city] Kyiv zoo welcomes two snow leopards"]
    with open_store(pg_url) as store:
        newest = store.recent_alerts(limit=1)[0]
    assert newest["id"] > max(a["id"] for a in before["alerts"])

    clock.set(clock.now().replace(hour=17, minute=1))  # 18:01 in Rome: the digest goes
    monitor.run(clock, "once")
    assert len(monitor.sent("/evening")) == 1


def test_the_outcome_as_json(monitor, pg_url):
    clock = Clock()
    lived_in(monitor, clock)
    out = migrate(monitor, clock, "--to", pg_url, "--json").output
    report = json.loads(out)
    assert report["tables"] == tables_of(monitor.sqlite)
    assert report["config"] == f'database = "{pg_url}"'
    assert report["source"] == str(monitor.sqlite)


def test_the_password_of_the_url_is_never_printed(monitor, pg_url):
    clock = Clock()
    lived_in(monitor, clock)
    with_password = pg_url.replace("monitor@", "monitor:Sw0rdfish-77@")  # the server trusts
    out = migrate(monitor, clock, "--to", with_password).output
    assert "Sw0rdfish-77" not in out
    assert 'database = "' + pg_url.replace("monitor@", "monitor:${PGPASSWORD}@") + '"' in out
    assert "PGPASSWORD" in out


def test_a_target_holding_data_is_refused_unless_replaced(monitor, pg_url):
    clock = Clock()
    lived_in(monitor, clock)
    migrate(monitor, clock, "--to", pg_url)
    articles = pg_count(pg_url, "articles")

    again = refused(monitor, clock, "--to", pg_url)
    assert "already holds news-monitor data" in again and "--replace" in again
    assert pg_count(pg_url, "articles") == articles

    migrate(monitor, clock, "--to", pg_url, "--replace")
    assert pg_count(pg_url, "articles") == articles  # the copy again, not twice
    assert snapshot(pg_url, clock) == snapshot(monitor.sqlite, clock)


def test_a_copy_that_fails_half_way_writes_nothing(monitor, pg_url, tmp_path):
    clock = Clock()
    lived_in(monitor, clock)
    broken = tmp_path / "broken.db"
    with sqlite3.connect(monitor.sqlite) as src, sqlite3.connect(broken) as dst:
        src.backup(dst)
    with sqlite3.connect(broken) as conn:  # PostgreSQL's text holds no NUL: its COPY fails
        conn.execute("UPDATE item_hashes SET item_hash = 'a' || char(0) || 'b'")
    conn.close()

    out = refused(monitor, clock, "--from", str(broken), "--to", pg_url)
    assert "nothing was written" in out and "item_hashes" in out
    assert pg_count(pg_url, "articles") == pg_count(pg_url, "sources") == 0


def test_refusals_say_what_to_do_and_write_nothing(monitor, pg_url, tmp_path):
    clock = Clock()
    missing = refused(monitor, clock, "--from", str(tmp_path / "none.db"), "--to", pg_url)
    assert f"no SQLite database at {tmp_path / 'none.db'}" in missing

    bad_url = migrate(monitor, clock, "--to", "mysql://somewhere/db", code=2)
    assert "postgresql://" in bad_url.output

    old = tmp_path / "old.db"  # a file of the release before: upgraded by `once`, not here
    db = sqlite_utils.Database(old)
    for migration in MIGRATIONS[:-1]:
        migration(db)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    db.conn.commit()
    db.close()
    older = refused(monitor, clock, "--from", str(old), "--to", pg_url)
    assert "run `news-monitor once`" in older
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1

    import psycopg

    with psycopg.connect(pg_url) as conn:  # not even the schema was made
        assert conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None


def test_a_database_in_use_is_refused(monitor, pg_url):
    clock = Clock()
    lived_in(monitor, clock)
    lock = os.open(monitor.sqlite.with_name("monitor.db.lock"), os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_SH)  # what a running `run` or `once` holds
    try:
        out = refused(monitor, clock, "--to", pg_url)
    finally:
        os.close(lock)
    assert "in use by a running news-monitor" in out
    migrate(monitor, clock, "--to", pg_url)  # stopped: it goes


def test_a_config_already_on_postgresql_needs_from(monitor, pg_url):
    clock = Clock()
    monitor.point_at(pg_url)
    out = migrate(monitor, clock, "--to", pg_url, code=2).output
    assert "--from PATH" in out


@pytest.mark.slow
def test_a_target_a_worker_is_writing_to_is_refused(monitor, pg_url):
    import psycopg

    clock = Clock()
    lived_in(monitor, clock)
    open_store(pg_url).close()  # the schema, as a worker starting on it makes it
    with psycopg.connect(pg_url) as worker:  # a worker's write, not yet committed
        worker.execute("INSERT INTO mutes VALUES ('rule', 'x', 'a', 'b')")
        out = refused(monitor, clock, "--to", pg_url)
    assert "is in use (a news-monitor worker is writing to it)" in out


def test_the_printed_config_line_keeps_the_query_and_hides_every_password() -> None:
    """What `migrate` prints for the config: a password in the user part or the query reads
    `${PGPASSWORD}`, and the rest of the query is left as written (libpq reads `+` as itself:
    re-encoding `%20` as `+` would change an option)."""
    from monitor.cli.migrate import config_url

    url = "postgresql://u:s3cret@db:5432/nm?password=Xy7%25z&options=-c%20statement_timeout%3D5000"
    line = config_url(url)
    assert line == (
        "postgresql://u:${PGPASSWORD}@db:5432/nm?password=${PGPASSWORD}"
        "&options=-c%20statement_timeout%3D5000"
    )
    assert "s3cret" not in line and "Xy7" not in line
