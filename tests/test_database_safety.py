"""The database file under hostile conditions: concurrent first opens, a lock file or database
another user owns, and the file deleted or replaced while the daemon runs (issue 11, items 3-5).

Real SQLite files and real processes: the CLI and the daemon run as subprocesses. A file
another user owns is one this user cannot write: chmod, plus a read-only bind mount when the
tests run as root (root ignores file modes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import StorageError
from monitor.models import Source
from monitor.store import SqliteStore
from monitor.store.schema import MIGRATIONS
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply, Seen
from tests.receivers import WebhookReceiver
from tests.test_daemon import Daemon, config, free_port, polled
from tests.test_storage import unshare_works

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
READ_COMMANDS = [
    ["sources"],
    ["sources", "--check"],
    ["search", "ceasefire"],
    ["stories"],
    ["alerts"],
    ["test-rule", "--query", "ceasefire"],
]


def cli(
    config_path: Path, *args: str, read_only: Sequence[Path] = ()
) -> subprocess.CompletedProcess:
    """`news-monitor --config CONFIG ARGS...`, unable to write the `read_only` paths (chmod
    them first): root ignores file modes, so as root they are also mounted read-only in a user
    namespace, as tests/test_storage.py does."""
    command = [sys.executable, "-m", "monitor", "--config", str(config_path), *args]
    if read_only and os.geteuid() == 0:
        if not unshare_works():
            pytest.skip("running as root without user namespaces: cannot make a file read-only")
        mounts = " && ".join(
            f"mount --bind {q} {q} && mount -o remount,bind,ro {q}"
            for q in (shlex.quote(str(p)) for p in read_only)
        )
        command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                   f'{mounts} && exec "$@"', "sh", *command]  # fmt: skip
    return subprocess.run(
        command, env=ENV, cwd=config_path.parent, capture_output=True, text=True, timeout=60
    )


def write_config(directory: Path, url: str) -> Path:
    path = directory / "monitor.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{directory / "data" / "monitor.db"}"\n\n'
        f'[[sources]]\nname = "wire"\nurl = "{url}"\nallow_private = true\n\n'
        '[[rules]]\nname = "talks"\nquery = "ceasefire"\n',
        encoding="utf-8",
    )
    path.chmod(0o644)
    return path


def polled_once(directory: Path, server: LoopbackServer) -> Path:
    """A config whose database a first `once` by this user created and filled."""
    server.route("/feed", Reply(body=rss([Item("a1", "Ceasefire talks resume")])))
    path = write_config(directory, server.url("/feed"))
    done = cli(path, "once")
    assert done.returncode == 0, done.stderr
    return path


# ---------------------------------------------------------------- 3. concurrent first opens

OPENER = textwrap.dedent(
    """
    import sys, time
    from monitor.store import SqliteStore

    go = float(sys.argv[2])
    while time.time() < go:  # every opener starts at the same moment (bounded: go is near)
        time.sleep(0.001)
    with SqliteStore(sys.argv[1]) as store:
        print(store.schema_version)
    """
)


def schema(path: Path) -> tuple[int, list[tuple[str, str]]]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        rows = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    db.close()
    return version, rows


@pytest.mark.slow
def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    SqliteStore(reference).close()
    expected = schema(reference)
    assert expected[0] == len(MIGRATIONS)
    for round_ in range(5):
        database = tmp_path / f"round-{round_}" / "monitor.db"
        go = f"{time.time() + 1.5:.3f}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(database), go],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        outcomes = [(*p.communicate(timeout=60), p.returncode) for p in procs]
        failed = [err.strip().splitlines()[-1] for _out, err, rc in outcomes if rc != 0]
        assert not failed, f"round {round_}: {len(failed)} of 6 openers failed: {failed}"
        assert [out.strip() for out, _err, _rc in outcomes] == [str(len(MIGRATIONS))] * 6
        assert schema(database) == expected, f"round {round_}: schema differs"


# ---------------------------------------------------------------- 4. files another user owns


def test_read_only_lock_file_gives_one_line_naming_it_and_the_fix(
    tmp_path: Path, server: LoopbackServer
) -> None:
    path = polled_once(tmp_path, server)
    data = tmp_path / "data"
    lock = data / "monitor.db.lock"
    lock.chmod(0o444)  # the database stays writable: only the lock file is not
    fixes = {  # root gets the read-only mount's error, anyone else the file mode's
        "permission denied": f"run as the user that owns {data}/ or fix its permissions",
        "read-only file system": f"mount {data}/ read-write or move the database",
    }
    for command in ("once", "run"):
        done = cli(path, command, read_only=[lock])
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        prefix = f"error: cannot open lock file {lock}: "
        assert lines[0].startswith(prefix), lines[0]
        reason, _, fix = lines[0].removeprefix(prefix).partition(" — ")
        assert fix == fixes[reason]


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["stopped", "running"])
def test_read_commands_work_on_a_database_another_user_owns(
    tmp_path: Path, server: LoopbackServer, writer: str
) -> None:
    path = polled_once(tmp_path, server)
    data = tmp_path / "data"
    live = None
    if writer == "running":  # a daemon of the owner holds the file open: -wal and -shm exist
        live = sqlite3.connect(data / "monitor.db", isolation_level=None)
        live.execute("PRAGMA wal_autocheckpoint = 0")
        live.execute("INSERT INTO sources (name, url, kind) VALUES ('late', 'http://x/', 'feed')")
    with path.open("a", encoding="utf-8") as more:  # configured since: nobody synced it
        more.write('\n[[sources]]\nname = "extra"\nurl = "http://127.0.0.1:9/"\n')
    for file in data.iterdir():
        file.chmod(0o444)
    data.chmod(0o555)
    try:
        for args in READ_COMMANDS:
            done = cli(path, *args, read_only=[data])
            assert done.returncode == 0, f"{args}: {done.stderr}"
            assert "error" not in done.stderr, f"{args}: {done.stderr}"
        table = cli(path, "sources", read_only=[data]).stdout
        assert ["wire", "ok"] in [line.split()[:2] for line in table.splitlines()]
        assert table.splitlines()[-1] == "not polled yet (new in the config): extra"
        if live is not None:  # what the running writer committed is seen, not a stale file
            assert "late" in table
        hits = cli(path, "search", "ceasefire", read_only=[data])
        assert "Ceasefire talks resume" in hits.stdout
    finally:
        data.chmod(0o755)
        if live is not None:
            live.close()


# ---------------------------------------------------------------- 5. a missing database


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/feed")
    database = tmp_path / "data" / "monitor.db"
    done = cli(path, *args)
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: no database at {database} yet: run `news-monitor once` or `run` first"
    ]
    assert not database.exists() and not database.parent.exists()


# ---------------------------------------------------------------- 5. deleted or replaced


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_database_deleted_while_running_fails_health_and_stops_the_daemon(
    tmp_path: Path, server: LoopbackServer
) -> None:
    items = [Item("w1", "Weather: sunny spells")]
    hold, release, held = threading.Event(), threading.Event(), threading.Event()

    def feed(_seen: Seen) -> Reply:
        if hold.is_set():  # keep one poll in flight while the file goes away
            held.set()
            release.wait(20)
        return Reply(body=rss(items), headers={"Content-Type": "application/rss+xml"})

    server.route("/feed", feed)
    port = free_port()
    daemon = Daemon(tmp_path)
    database = tmp_path / "data" / "monitor.db"
    with WebhookReceiver() as hook:
        extra = f"health_port = {port}"
        daemon.write(config(hook.url(), {"wire": server.url("/feed")}, {"talks": "ceasefire"},
                            timeout="15s", extra=extra))  # fmt: skip
        try:
            daemon.start()
            daemon.wait_log(polled("wire", outcome="new"), 15)
            assert health(port)[0] == 200
            items.append(Item("w2", "Ceasefire talks resume"))
            hold.set()
            assert held.wait(10), "no poll started"
            database.unlink()

            status, body = health(port)
            assert status == 503, body
            assert body["failing"]["database"] == "database file data/monitor.db was deleted"
            release.set()
            assert daemon.proc is not None and daemon.proc.wait(15) == 1
        finally:
            release.set()
            daemon.kill()
        assert hook.posts == []  # the match found after the deletion was not written anywhere
    errors = [e for e in daemon.events() if e.get("level") == "error"]
    assert any(e.get("reason") == "database file data/monitor.db was deleted" for e in errors), (
        errors
    )
    stopped = daemon.events()[-1]
    assert stopped["event"] == "stopped"
    assert not database.exists()  # nothing recreated it: the next start makes a new one, loudly
    done = cli(daemon.config, "sources")
    assert done.returncode == 1 and "no database at" in done.stderr
    assert not database.exists()


def test_replaced_database_is_never_written_through_the_old_connection(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    now = datetime.now(UTC)
    store = SqliteStore(path)
    store.sync_sources([Source("wire", "http://wire.example/")], now)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a quiet moment: the -wal is empty
    backup = tmp_path / "backup.db"
    with SqliteStore(backup) as other:
        other.sync_sources([Source("restored", "http://restored.example/")], now)
    os.replace(backup, path)  # an operator restores a backup while the process runs
    try:
        with pytest.raises(StorageError, match=re.escape(f"database file {path} was replaced")):
            store.sync_sources([Source("late", "http://late.example/")], now)
        assert not store.writable()
    finally:
        store.close()
    # a write through the old connection would sit in the -wal beside the restored file, and
    # SQLite would lay it over the restored file at its next opening
    with SqliteStore(path) as fresh:
        assert [row["name"] for row in fresh.sources_health()] == ["restored"]
