"""Storage safety: SIGKILL at any moment, a full disk, a read-only database, an old schema, and
retention that keeps the file bounded. Real SQLite files; real processes killed for real.
What is the store's behaviour (a killed writer leaves whole polls, retention, the protocol)
runs on both backends (conftest's `database`); what is about the file stays SQLite's.

The full-disk case runs `once` on a tiny tmpfs mounted in a user namespace (skipped where
unprivileged namespaces are off) and, everywhere, under RLIMIT_FSIZE (Python ignores SIGXFSZ,
so the write fails with EFBIG). The read-only case uses chmod, plus a read-only bind mount in a
user namespace when the tests run as root (root ignores file modes).
"""

from __future__ import annotations

import inspect
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from monitor.models import (
    Alert,
    Article,
    Candidate,
    Delivery,
    GoodPoll,
    Match,
    Message,
    Source,
)
from monitor.rules.query import parse_query
from monitor.store import SqliteStore, Store, is_server, open_store
from monitor.store.schema import MIGRATIONS
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PER_POLL = 5

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from monitor.models import Alert, Article, Candidate, GoodPoll, Match, Message, Source
    from monitor.store import open_store

    PER_POLL = int(sys.argv[3])
    store = open_store(sys.argv[1])
    store.sync_sources([Source("wire", "http://wire.example/")], datetime.now(UTC))

    def plan(article_id, article, match, story):
        message = Message(article.title, "text", "markdown", "html")
        return [Alert(f"k-{article.guid}", "r", "c", message, datetime.now(UTC), article_id)]

    poll = int(sys.argv[2])
    while True:
        now = datetime.now(UTC)
        candidates = [
            Candidate(
                Article("wire", f"p{poll}-{j}", f"https://wire.example/{poll}/{j}",
                        f"Poll {poll} item {j}", "lead " * 40, "body " * 300,
                        first_seen=now, fingerprint=f"fp-{poll}-{j}"),
                matches=(Match("r", ("x",)),),
            )
            for j in range(PER_POLL)
        ]
        store.save_poll(GoodPoll("wire", now, now, "http://wire.example/"), candidates, plan=plan)
        print(poll, flush=True)
        poll += 1
    """
)


_PER_POLL_ROWS = {
    "articles": "SELECT guid FROM articles",
    "matches": "SELECT a.guid FROM matches m JOIN articles a ON a.id = m.article_id",
    "outbox": "SELECT substr(key, 3) FROM outbox",
    "stories": "SELECT a.guid FROM story_articles s JOIN articles a ON a.id = s.article_id",
}


def check_whole(database: str | Path) -> set[int]:
    """Every poll is whole (and a SQLite file's integrity_check is ok); the polls present."""
    if is_server(database):  # its migrations are transactions: the schema is whole or absent
        with open_store(database) as store:
            per_poll = {t: _per_poll(store.db.execute(sql)) for t, sql in _PER_POLL_ROWS.items()}
        return _whole(per_poll)
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "story_articles" not in tables:  # killed while creating or migrating the file
            assert (
                "articles" not in tables
                or not db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
            )
            return set()
        per_poll = {t: _per_poll(db.execute(sql)) for t, sql in _PER_POLL_ROWS.items()}
    return _whole(per_poll)


def _per_poll(rows: Iterable[tuple[str]]) -> Counter:
    return Counter(int(g.split("-")[0][1:]) for (g,) in rows)


def _whole(per_poll: dict[str, Counter]) -> set[int]:
    polls = set(per_poll["articles"])
    for table, counts in per_poll.items():
        assert set(counts) == polls, f"{table} rows of a poll without its articles (or back)"
        torn = {p: n for p, n in counts.items() if n != PER_POLL}
        assert not torn, f"polls with some {table} rows missing: {torn}"
    return polls


@pytest.mark.slow
def test_database_survives_sigkill_at_any_moment(database: str | Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    committed: set[int] = set()
    next_poll = 0
    kills = 0
    for life in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), str(next_poll), str(PER_POLL)],
            env=ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        printed: list[int] = []
        reader = threading.Thread(
            target=lambda p=proc, out=printed: out.extend(int(x) for x in p.stdout), daemon=True
        )
        reader.start()
        # some lives die while starting or migrating, the others at a random point of writing
        threading.Event().wait(rng.uniform(0.05, 0.25) if life % 3 == 0 else rng.uniform(0.4, 1))
        proc.kill()
        proc.wait(10)
        reader.join(10)
        kills += 1
        committed.update(printed)
        present = check_whole(database)
        assert committed <= present, f"committed polls lost: {sorted(committed - present)}"
        next_poll = max(present, default=-1) + 1
    print(f"\n{kills} SIGKILLs, {len(committed)} polls committed, all whole")
    assert len(committed) > 5  # the kills really landed among writes


# ---------------------------------------------------------------- full disk and read-only


def feed_config(tmp_path: Path, database: Path, url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{database}"\n\n[[sources]]\nname = "wire"\nurl = "{url}"\n'
        "allow_private = true\n",
        encoding="utf-8",
    )
    return path


def run_once(config: Path, **popen: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "monitor", "--config", str(config), "once"]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60, **popen)


def big_feed(n: int) -> bytes:
    items = [Item(f"big-{i}", f"Report {i}", "word " * 600) for i in range(n)]
    return rss(items)


@pytest.fixture
def seeded(tmp_path: Path, server: LoopbackServer) -> tuple[Path, LoopbackServer]:
    """A database with 3 articles of a first poll; the feed then grows to 400 long items."""
    database = tmp_path / "seed" / "monitor.db"
    server.route("/feed", Reply(body=rss([Item(f"s{i}", f"Seed {i}") for i in range(3)])))
    done = run_once(feed_config(tmp_path, database, server.url("/feed")))
    assert done.returncode == 0, done.stderr
    server.route("/feed", Reply(body=big_feed(400)))
    return database, server


def intact(database: Path) -> int:
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return int(db.execute("SELECT COUNT(*) FROM articles").fetchone()[0])


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def test_full_disk_gives_a_clear_error_and_no_corruption(
    tmp_path: Path, seeded: tuple[Path, LoopbackServer]
) -> None:
    if not unshare_works():
        pytest.skip("no unprivileged user namespaces: cannot mount a small tmpfs")
    seed, server = seeded
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    database = disk / "monitor.db"
    config = feed_config(tmp_path, database, server.url("/feed"))
    script = f"""
        mount -t tmpfs -o size=2m tmpfs {disk} || exit 99
        cp {seed} {database}
        free=$(df --output=avail -k {disk} | tail -1)
        dd if=/dev/zero of={disk}/filler bs=1k count=$((free - 160)) 2>/dev/null
        {sys.executable} -m monitor --config {config} once; rc=$?
        cp {disk}/monitor.db* {out}/
        exit $rc
    """
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode != 99, done.stderr
    assert done.returncode == 1, done.stderr
    assert f"error: database {database}: database or disk is full" in done.stderr
    assert "Traceback" not in done.stderr.split("error: database")[-1]
    assert intact(out / "monitor.db") == intact(seed) == 3  # the failed poll left no trace


def test_file_size_limit_gives_a_clear_error_and_no_corruption(
    seeded: tuple[Path, LoopbackServer], tmp_path: Path
) -> None:
    seed, server = seeded
    config = feed_config(tmp_path, seed, server.url("/feed"))
    limit = seed.stat().st_size + 256 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = run_once(config, preexec_fn=small_files)
    assert done.returncode == 1, done.stderr
    assert f"error: database {seed}: disk I/O error" in done.stderr
    assert "is the disk full, or a file size limit reached?" in done.stderr
    assert intact(seed) == 3


def read_only(directory: Path, command: list[str]) -> list[str]:
    """chmod the directory and its files read-only; as root, also mount it read-only."""
    for path in directory.iterdir():
        path.chmod(0o444)
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return command
    if not unshare_works():
        pytest.skip("running as root without user namespaces: cannot make a file read-only")
    mount = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}"
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'{mount} && exec "$@"', "sh", *command]  # fmt: skip


@pytest.mark.parametrize("case", ["existing database", "new database in a read-only directory"])
def test_read_only_database_gives_a_clear_error_naming_the_file(
    case: str, seeded: tuple[Path, LoopbackServer], tmp_path: Path
) -> None:
    seed, server = seeded
    database = seed if case == "existing database" else tmp_path / "empty" / "monitor.db"
    database.parent.mkdir(exist_ok=True)
    config = feed_config(tmp_path, database, server.url("/feed"))
    command = [sys.executable, "-m", "monitor", "--config", str(config), "once"]
    try:
        command = read_only(database.parent, command)
        done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)
    finally:
        database.parent.chmod(0o755)
        for path in database.parent.iterdir():
            path.chmod(0o644)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("error:"))
    assert str(database) in line
    assert "can this user write the database file and its directory?" in done.stderr
    if case == "existing database":
        assert intact(seed) == 3


# ---------------------------------------------------------------- upgrades


def old_database(path: Path, version: int) -> None:
    """A file as version `version` of the schema left it, with data in each table it had."""
    db = sqlite_utils.Database(path)
    for n, migration in enumerate(MIGRATIONS[:version], start=1):
        migration(db)
        db.execute(f"PRAGMA user_version = {n}")
        if db.conn.in_transaction:  # v10's statements open one; store.file.migrate commits
            db.conn.commit()
    t = "2025-01-01T00:00:00.000000Z"
    db["sources"].insert(
        {"name": "wire", "url": "http://wire.example/", "kind": "feed", "last_success": t}
    )
    article = {"id": 1, "source": "wire", "guid": "g1", "url": "https://w.example/1"}
    article |= {"title": "Old ceasefire talks", "summary": "kept", "text": "body"}
    db["articles"].insert({**article, "first_seen": t, "fingerprint": "f1"})
    db["matches"].insert({"article_id": 1, "rule": "r", "terms": '["ceasefire"]', "matched_at": t})
    if version >= 2:
        alert = {"key": "k1", "rule": "r", "channel": "c", "article_id": 1, "title": "Old"}
        db["outbox"].insert({**alert, "status": "sent", "due_at": t, "created_at": t})
    db.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_older_database_is_migrated_in_place_with_its_data(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.db"
    old_database(path, version)
    now = datetime.now(UTC)
    with SqliteStore(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        old = store.article(1)
        assert old is not None and (old.title, old.text) == ("Old ceasefire talks", "body")
        assert store.match_for(1, "r") == Match("r", ("ceasefire",))
        assert [h["name"] for h in store.health_rows()] == ["wire"]
        assert store.search(parse_query("ceasefire"))[0].id == 1
        store.sync_sources([Source("wire", "http://wire.example/")], now)
        article = Article("wire", "g2", "https://w.example/2", "New", first_seen=now)
        saved = store.save_poll(
            GoodPoll("wire", now, now, "http://wire.example/"), [Candidate(article)]
        )
        assert len(saved.new_ids) == 1
        if version >= 2:
            assert [r["title"] for r in store.recent_alerts(limit=5)] == ["Old"]
    with SqliteStore(path) as again:  # opening once more changes nothing
        assert again.schema_version == len(MIGRATIONS) and again.count_articles() == 2


# ---------------------------------------------------------------- retention


def test_retention_drops_bodies_then_history_and_the_file_shrinks(
    database: str | Path, store: Store
) -> None:
    """On either backend; only a SQLite file shrinks (compact: PostgreSQL's autovacuum reuses
    the space of deleted rows instead)."""
    now = datetime.now(UTC)
    old = now - timedelta(days=100)
    store.sync_sources([Source("wire", "http://wire.example/")], old)

    def plan(article_id: int, article: Article, match: Match, story: object) -> list[Alert]:
        message = Message(article.title, "t", "m", "h")
        return [Alert(f"k-{article.guid}", "r", "c", message, old, article_id)]

    for poll in range(40):
        candidates = []
        for j in range(25):
            guid = f"p{poll}-{j}"
            matches = (Match("r", ("quorum",)),) if j == 0 else ()
            body = f"quorum {guid} " + "filler words of a long article body " * 60
            article = Article("wire", guid, f"https://w.example/{guid}", f"Item {guid}",
                              "lead " * 30, body, first_seen=old, fingerprint=guid)  # fmt: skip
            candidates.append(Candidate(article, matches))
        store.save_poll(GoodPoll("wire", old, old, "http://wire.example/"), candidates, plan=plan)
    claimed = store.claim_alerts(now, now + timedelta(minutes=5), limit=100)
    keep_pending = next(p for p in claimed if p.key == "k-p0-0")
    store.record_attempt([p.id for p in claimed if p is not keep_pending], Delivery(ok=True), old)
    store.release_alerts([keep_pending.id])
    store.compact(min_free=0.0)
    full = store.file_size()

    # 1. past `retention`: plain articles go, alerted ones keep their row without the body
    removed = store.prune(now - timedelta(days=90), now - timedelta(days=365))
    assert removed == 40 * 24
    assert store.count_articles() == 40
    kept = {a.title: a for _, a in store.articles()}
    assert (kept["Item p5-0"].text, kept["Item p5-0"].summary) == ("", "")
    assert kept["Item p0-0"].text.startswith("quorum p0-0")  # its alert is still pending
    hits = store.search(parse_query("quorum"))
    assert [h.article.title for h in hits] == ["Item p0-0"]  # pending: whole
    assert len(store.recent_stories(100)) >= 1
    assert len(store.recent_alerts(limit=100)) == 40
    after_bodies = store.compact()[1]

    # 2. past `history_retention`: stories, delivered alerts and their articles go too
    store.prune(now - timedelta(days=90), now - timedelta(days=30))
    assert store.count_articles() == 1  # the article of the alert still pending
    assert store.recent_stories(100) == []
    assert [r["title"] for r in store.recent_alerts(limit=100)] == ["Item p0-0"]
    after_history = store.compact()[1]
    assert store.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0  # type: ignore[attr-defined]
    if is_server(database):
        return
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    print(f"\nfile: {full} bytes -> {after_bodies} (bodies) -> {after_history} (history)")
    assert after_bodies < full / 5
    assert after_history <= after_bodies


# ---------------------------------------------------------------- the protocol


def _shape(function: object) -> list[tuple[str, object, object]]:
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in parameters]


def test_each_store_implements_every_method_of_the_store_protocol(
    database: str | Path, store: Store
) -> None:
    """The protocol is what each backend implements: neither store may drift from it."""
    parts = [c for c in Store.__mro__ if getattr(c, "_is_protocol", False)]
    members = {
        name: function
        for part in parts
        for name, function in vars(part).items()
        if inspect.isfunction(function) and (name in ("__enter__", "__exit__") or name[0] != "_")
    }
    assert {"save_poll", "claim_alerts", "release_leases", "health_rows"} <= members.keys()
    for name, member in members.items():
        assert _shape(getattr(type(store), name)) == _shape(member), name
    from monitor.store.pg import PgStore

    assert isinstance(store, PgStore if is_server(database) else SqliteStore)
