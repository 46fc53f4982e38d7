"""Shared fixtures: the loopback HTTP server, the real-data corpus beside the checkout, and the
one test clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from monitor.store import Store
    from tests.pg import PgServer
    from tests.receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)  # 11:00 in Rome: the tests' usual "now"


class Clock:
    """Now, as the test says it is: a `monitor.clock.Clock` that moves only when told, so
    backoff, digests, quiet hours and retention run at explicit instants, never by sleeps.
    Hand it to `Monitor(config, clock=...)`, or to the CLI as `CliRunner().invoke(cli, args,
    obj=clock)`; calling it also gives now, for APIs that take a `now` function."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    __call__ = now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def corpus() -> Path:
    """The real-data corpus in ../shared/corpus; tests using it skip when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only() -> Iterator[None]:
    """Each test masks only the secrets its own configs named: the registry is per process,
    and a secret remembered by an earlier test ("bot") would mask words ("both") in this one."""
    from monitor import secrets

    before = secrets.known()
    yield
    secrets.restore(before)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 (tests/receivers.py), for `json://` channels."""
    from tests.receivers import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session (tests/pg.py); skips, saying why, where
    none can be started. Started on first use only: a run that needs none starts none."""
    from tests.pg import PgServer, Unavailable

    try:
        server = PgServer().start()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    from monitor.store.pg import close_pools

    close_pools()
    server.remove()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the session's server, dropped after the test."""
    url = pg_server.create_database()
    yield url
    from monitor.store.pg import close_pools

    close_pools()
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's store lives, once per backend: a new SQLite file, then a new PostgreSQL
    database (skipped where no server can be started). What `database =` of a config takes,
    and `open_store`."""
    if request.param == "sqlite":
        return tmp_path / "monitor.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(database: str | Path) -> Iterator[Store]:
    """The store at `database`, open for the test (both backends, see `database`)."""
    from monitor.store import open_store

    with open_store(database) as opened:
        yield opened


def toml_database(database: str | Path) -> str:
    """`database` as a config's value: `database = {toml_database(database)}`."""
    return f'"{database}"'
