"""The base every part of the PostgreSQL store builds on: a psycopg pool, and transactions.

The store's parts call `self.db.execute(sql, params)` and, inside `self.immediate()`,
`conn.execute` / `conn.executemany`, in the SQL they share with SQLite (pg/dialect.py rewrites
the rest). Here that runs on a psycopg 3 `ConnectionPool` of this process: a read borrows a
connection for one statement, a transaction for its length. A connection the server dropped
(a restart, a partition) is discarded at its next borrow and replaced, so the store carries on
once the server is back; meanwhile every call raises `StorageError` at once (`Outage`: not
after the pool's 10 s wait, which on the daemon's event loop would stall `/healthz` and every
tick), and the daemon's poll or send waits for its next turn (nothing is lost: it was never
committed).

Writes that place articles in stories (`serial=True`) take one transaction-level advisory lock,
as SQLite's `BEGIN IMMEDIATE` takes the file's: two workers storing reports of the same event
at the same moment see each other's stories, so it is one story and one alert.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from monitor import secrets
from monitor.errors import StorageError
from monitor.store.pg import schema
from monitor.store.pg.dialect import to_postgres

WRITE_LOCK = 7_210_431_002  # pg_advisory_xact_lock key: story placement, retention
CLAIM_LOCK = 7_210_431_003  # ... alert claims (one claimer at a time: a digest taken whole)
# A worker paused (SIGSTOP, a VM) inside a locked transaction keeps its session, and the lock,
# while its TCP link stays up: the server ends such a session after IDLE_IN_TRANSACTION, and a
# worker waits LOCK_WAIT at most for a lock (StorageError: the poll or claim is done again).
IDLE_IN_TRANSACTION_MS = 60_000
LOCK_WAIT = "30s"
MAX_CONNECTIONS = 8  # per process (README "Running on PostgreSQL": max_connections)
PROBE_EVERY = 2.0  # seconds between tries to reach a server that did not answer
PROBE_TIMEOUT = 2  # seconds a try may take (libpq's minimum): a partition drops packets
# A partition leaves a connection open with nobody at the other end: without these, a statement
# waits for the kernel's TCP timeout (~15 min); with them it fails within ~20 s. A URL's own
# values win.
NETWORK = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
    "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
}  # fmt: skip
# a connection used within IDLE_CHECK s is taken as alive (a busy worker borrows one per
# statement: a check each time doubled its round trips); one idle longer is asked first, since
# a server restart leaves every idle connection dead. A statement on one that died meanwhile
# fails once (StorageError: the poll or send is done again); the pool drops it.
IDLE_CHECK = 2.0
# connection -> monotonic time it was handed back (weak: a dropped connection leaves no entry)
_LAST_USED: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_POOLS: dict[str, Any] = {}
_POOLS_LOCK = threading.Lock()


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001  # a malformed URL: say nothing of it
        return "postgresql://(malformed URL)"
    host, db = parts.get("host", "localhost"), parts.get("dbname", "")
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}{port}/{db}"


def passwords(url: str) -> list[str]:
    """The URL's passwords (user:password@ and ?password=), as written and decoded: remembered
    as secrets, so no message that quotes them (a library's error included) shows them."""
    parts = urlsplit(url)
    written = [v for k, v in (p.partition("=")[::2] for p in parts.query.split("&"))
               if k == "password"]  # fmt: skip
    found = [p for p in (parts.password, *written) if p]
    return found + [unquote(p) for p in found]


def pool_for(url: str, *, timeout: float = 10.0) -> Any:
    """This process's pool for `url`, opened (and the schema migrated) on first use."""
    secrets.remember(passwords(url))
    with _POOLS_LOCK:
        if (pool := _POOLS.get(url)) is None or pool.closed:
            pool = _POOLS[url] = _open_pool(url, timeout)
        return pool


def _open_pool(url: str, timeout: float) -> Any:
    import psycopg
    from psycopg_pool import ConnectionPool

    try:  # the server's own reason at once (refused, wrong password, no such database), not
        # the pool's "incomplete after 10 s"
        psycopg.connect(url, connect_timeout=max(2, int(timeout)), **_network(url)).close()
    except psycopg.Error as exc:
        raise StorageError(f"cannot open database {shown(url)}: {reason_of(exc)}") from exc
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=MAX_CONNECTIONS,
        kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout)), **_network(url)},
        timeout=timeout,
        # no `check`: PgDb checks a borrowed connection itself, and fails at once when the
        # server is away (the pool's check would wait its whole `timeout` for a new one)
        reconnect_timeout=0,  # a failed growth gives up at once; the next borrow asks again
        name="news-monitor",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
        with pool.connection() as conn:
            schema.migrate(conn)
    except Exception as exc:
        pool.close()
        raise StorageError(f"cannot open database {shown(url)}: {reason_of(exc)}") from exc
    return pool


def _network(url: str) -> dict[str, int | str]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001  # a malformed URL: opening the pool says what is wrong
        given = {}
    return {key: value for key, value in NETWORK.items() if key not in given}


def close_pools() -> None:
    """Close every pool of this process (the daemon's exit; tests between servers)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


def reason_of(exc: BaseException) -> str:
    """The first line of a database error: what a message quotes."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Result:
    """A statement's rows, read whole (the connection goes back to the pool at once)."""

    __slots__ = ("_at", "rowcount", "rows")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self.rows, self.rowcount, self._at = rows, rowcount, 0

    def fetchone(self) -> tuple | None:
        return self.fetchmany(1)[0] if self._at < len(self.rows) else None

    def fetchmany(self, size: int) -> list[tuple]:
        batch = self.rows[self._at : self._at + size]
        self._at += len(batch)
        return batch

    def fetchall(self) -> list[tuple]:
        return self.fetchmany(len(self.rows))

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rows)


class Outage:
    """Whether the server of one URL answers, as this process last saw it: while it does not,
    a borrow fails at once with the last reason, and tries the server again (one connection
    attempt) at most every PROBE_EVERY s; the first answer ends the outage."""

    _all: dict[str, Outage] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self.reason: str | None = None  # None: the server answered last time
        self._tried = 0.0

    @classmethod
    def of(cls, url: str) -> Outage:
        with _POOLS_LOCK:
            return cls._all.setdefault(url, cls(url))

    def check(self, *, probe: bool = False) -> None:
        """Raise StorageError while the server is known not to answer; `probe`: it just failed
        a borrowed connection, try it now."""
        if self.reason is None and not probe:
            return
        if self.reason is not None and time.monotonic() - self._tried < PROBE_EVERY:
            raise StorageError(f"database {shown(self.url)}: {self.reason}")
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=PROBE_TIMEOUT).close()
        except psycopg.Error as exc:
            self.reason, self._tried = reason_of(exc), time.monotonic()
            raise StorageError(f"database {shown(self.url)}: {self.reason}") from exc
        self.reason = None


class PgDb:
    """What the store's parts call `self.db` and `conn`: execute, executemany, close."""

    def __init__(self, url: str, pool: Any) -> None:
        self.url, self.pool = url, pool
        self.outage = Outage.of(url)
        self._tx: Any = None  # the connection of the open transaction, if any

    @property
    def conn(self) -> Self:
        return self

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        if self._tx is not None:
            return _run(self._tx, sql, params)
        try:
            with self._borrow() as conn:
                return _run(conn, sql, params)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"database {shown(self.url)}: {reason_of(exc)}") from exc

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Result:
        if self._tx is None:
            with self.transaction() as conn:
                return conn.executemany(sql, seq)
        seq = list(seq)
        if seq:
            with self._tx.cursor() as cur:
                cur.executemany(to_postgres(sql), seq)
        return Result([], len(seq))

    @contextmanager
    def transaction(self, *, serial: int | None = None) -> Iterator[Self]:
        """One transaction on one pooled connection; `serial`: the advisory lock it takes
        first (waiting LOCK_WAIT at most)."""
        if self._tx is not None:  # nested: part of the open one
            yield self
            return
        try:
            with self._borrow() as conn, conn.transaction():
                if serial is not None:
                    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (serial,))
                self._tx = conn
                try:
                    yield self
                finally:
                    self._tx = None
        except StorageError:
            raise
        except Exception as exc:
            if not is_database_error(exc):
                raise
            raise StorageError(f"database {shown(self.url)}: {reason_of(exc)}") from exc

    def close(self) -> None:
        """Nothing to do: the pool is the process's (close_pools)."""

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        """A pooled connection that answers: a dead one (the server restarted since) is handed
        back, which drops it, and the next taken; StorageError at once if the server is away."""
        import psycopg

        self.outage.check()
        for _ in range(MAX_CONNECTIONS + 1):  # every idle one may be dead after a restart
            conn = self.pool.getconn()
            try:
                if time.monotonic() - _LAST_USED.get(conn, 0.0) > IDLE_CHECK:
                    conn.execute("")  # a round trip: only for a connection idle a while
            except psycopg.Error:
                self.pool.putconn(conn)
                self.outage.check(probe=True)
                continue
            try:
                yield conn
            except psycopg.OperationalError:
                if conn.broken:  # it died under the statement: is the server away?
                    self.outage.check(probe=True)  # then fail at once from now on
                raise
            finally:
                _LAST_USED[conn] = time.monotonic()
                self.pool.putconn(conn)
            return
        raise StorageError(f"database {shown(self.url)}: no connection answers")


def _run(conn: Any, sql: str, params: Sequence[Any]) -> Result:
    cur = conn.execute(to_postgres(sql), tuple(params))
    rows = cur.fetchall() if cur.description is not None else []
    return Result(rows, cur.rowcount)


def is_database_error(exc: BaseException) -> bool:
    import psycopg
    import psycopg_pool

    return isinstance(exc, (psycopg.Error, psycopg_pool.PoolTimeout))


class PgBase:
    """The PostgreSQL counterpart of store/connection.py's SqliteBase (its `close` and context
    manager, which only call `self.db.close()`, serve both: PgStore's parts derive from it)."""

    def __init__(self, url: str, *, timeout: float = 10.0, read_only: bool = False) -> None:
        self.url, self.path = url, shown(url)
        self.read_only = read_only
        self.db = PgDb(url, pool_for(url, timeout=timeout))
        self._serial: int | None = None

    @contextmanager
    def immediate(self) -> Iterator[PgDb]:
        """A write transaction; under the write lock while `serialized` says so."""
        with self.db.transaction(serial=self._serial) as conn:
            yield conn

    @contextmanager
    def serialized(self, key: int | None = WRITE_LOCK) -> Iterator[None]:
        """The transactions opened inside take the cluster-wide lock `key` (None: none)."""
        before = self._serial
        self._serial = key if key is not None else before
        try:
            yield
        finally:
            self._serial = before

    @property
    def schema_version(self) -> int:
        with self.db.pool.connection() as conn:
            return schema.current(conn)

    def lost(self) -> str | None:
        """A server has no file to lose; a dropped connection raises StorageError instead."""
        return None
