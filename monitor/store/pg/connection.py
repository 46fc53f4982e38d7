"""The base every part of the PostgreSQL store builds on: a psycopg pool, and transactions.

The store's parts call `self.db.execute(sql, params)` and, inside `self.immediate()`,
`conn.execute` / `conn.executemany`, in the SQL they share with SQLite (pg/dialect.py rewrites
the rest). Here that runs on a psycopg 3 `ConnectionPool` of this process: a read borrows a
connection for one statement, a transaction for its length. A connection the server dropped
(a restart, a partition) is discarded by the pool and replaced on the next borrow, so the store
carries on once the server is back; meanwhile every call raises `StorageError`, and the
daemon's poll or send waits for its next turn (nothing is lost: it was never committed).

Writes that place articles in stories (`serial=True`) take one transaction-level advisory lock,
as SQLite's `BEGIN IMMEDIATE` takes the file's: two workers storing reports of the same event
at the same moment see each other's stories, so it is one story and one alert.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from monitor.errors import StorageError
from monitor.store.pg import schema
from monitor.store.pg.dialect import to_postgres

WRITE_LOCK = 7_210_431_002  # pg_advisory_xact_lock key: story placement, retention
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


def pool_for(url: str, *, timeout: float = 10.0) -> Any:
    """This process's pool for `url`, opened (and the schema migrated) on first use."""
    with _POOLS_LOCK:
        if (pool := _POOLS.get(url)) is None or pool.closed:
            pool = _POOLS[url] = _open_pool(url, timeout)
        return pool


def _open_pool(url: str, timeout: float) -> Any:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=8,
        kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
        timeout=timeout,
        check=ConnectionPool.check_connection,
        reconnect_timeout=0,  # keep trying while the server is away: workers outlive outages
        name="news-monitor",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
        with pool.connection() as conn:
            schema.migrate(conn)
    except Exception as exc:
        pool.close()
        raise StorageError(f"cannot open database {shown(url)}: {_reason(exc)}") from exc
    return pool


def close_pools() -> None:
    """Close every pool of this process (the daemon's exit; tests between servers)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


def _reason(exc: BaseException) -> str:
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


class PgDb:
    """What the store's parts call `self.db` and `conn`: execute, executemany, close."""

    def __init__(self, url: str, pool: Any) -> None:
        self.url, self.pool = url, pool
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
            with self.pool.connection() as conn:
                return _run(conn, sql, params)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"database {shown(self.url)}: {_reason(exc)}") from exc

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
    def transaction(self, *, serial: bool = False) -> Iterator[Self]:
        """One transaction on one pooled connection; `serial` takes the write lock first."""
        if self._tx is not None:  # nested: part of the open one
            yield self
            return
        try:
            with self.pool.connection() as conn, conn.transaction():
                if serial:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                self._tx = conn
                try:
                    yield self
                finally:
                    self._tx = None
        except StorageError:
            raise
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise StorageError(f"database {shown(self.url)}: {_reason(exc)}") from exc

    def close(self) -> None:
        """Nothing to do: the pool is the process's (close_pools)."""


def _run(conn: Any, sql: str, params: Sequence[Any]) -> Result:
    cur = conn.execute(to_postgres(sql), tuple(params))
    rows = cur.fetchall() if cur.description is not None else []
    return Result(rows, cur.rowcount)


def _is_database_error(exc: BaseException) -> bool:
    import psycopg
    import psycopg_pool

    return isinstance(exc, (psycopg.Error, psycopg_pool.PoolTimeout))


class PgBase:
    """The PostgreSQL counterpart of store/connection.py's SqliteBase."""

    def __init__(self, url: str, *, timeout: float = 10.0, read_only: bool = False) -> None:
        self.url, self.path = url, shown(url)
        self.read_only = read_only
        self.db = PgDb(url, pool_for(url, timeout=timeout))
        self._serial = False

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def immediate(self) -> Iterator[PgDb]:
        """A write transaction; under the write lock while `serialized` says so."""
        with self.db.transaction(serial=self._serial) as conn:
            yield conn

    @contextmanager
    def serialized(self, on: bool = True) -> Iterator[None]:
        """The transactions opened inside take the cluster-wide write lock (see module doc)."""
        before, self._serial = self._serial, on or self._serial
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
