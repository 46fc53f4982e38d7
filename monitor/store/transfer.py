"""Copy a SQLite database into a PostgreSQL one: what `news-monitor migrate` does.

Why in store/: it is SQL on both schemas, which only the store knows.

How, and why so:
- the SQLite file is opened read-only (`mode=ro`) and read in one read transaction: one
  consistent snapshot, and the file is never changed, so a failed copy loses nothing;
- every table of the SQLite schema is copied but the FTS5 index (PostgreSQL computes
  `articles.search` from the articles themselves), parents before the tables that refer to
  them, each in primary-key order, `BATCH` rows at a time, with COPY: a file of any size is
  streamed, never read whole;
- into ONE PostgreSQL transaction: a failure (or Ctrl-C) leaves the target as it was. The
  target's tables are locked first, so no worker writes meanwhile, and must be empty;
- ids are kept (outbox rows name articles and stories, attempts name outbox rows...), and
  SQLite's `matches.rowid` (the order matches were recorded in) fills PostgreSQL's column of
  that name; each identity then restarts past the largest value copied, so new rows never
  collide with copied ones;
- leases are handed back: they were taken by processes working on the SQLite file, which
  will never finish them here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import StorageError
from monitor.store.file import open_read_only
from monitor.store.schema import MIGRATIONS

BATCH = 1_000  # rows read from SQLite at a time: memory stays flat whatever the file's size
LOCK_WAIT = "5s"  # how long to wait for a worker's write to end before giving up
ROWID = "rowid"  # PostgreSQL's column for SQLite's implicit rowid (matches: insertion order)


@dataclass(frozen=True)
class Copied:
    """One table copied: its name and how many rows."""

    table: str
    rows: int


@dataclass(frozen=True)
class Table:
    """A SQLite table to copy: its columns, the order to read its rows in (its primary key,
    else its rowid), and whether it has a rowid to copy (WITHOUT ROWID tables have none)."""

    name: str
    columns: tuple[str, ...]
    order: tuple[str, ...]
    has_rowid: bool


Progress = Callable[[str, int], None]  # (table, rows copied so far)


def copy_to_postgres(
    source: Path,
    target: str,
    *,
    replace: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> list[Copied]:
    """Copy the SQLite database at `source` into the PostgreSQL database `target` (a URL),
    all or nothing (see the module doc). `replace` empties the target's tables first, in the
    same transaction; otherwise a target holding data is refused. Raises StorageError."""
    from monitor.store.pg.connection import pool_for, shown

    where = shown(target)
    with closing(open_source(source)) as src:
        src.execute("BEGIN")  # one snapshot for every table
        tables = _parents_first(src, source_tables(src))
        pool = pool_for(target)
        with pool.connection() as conn, _failing(f"copy into {where} failed"), conn.transaction():
            columns = _prepare_target(conn, tables, where, replace=replace)
            copied = []
            for table in tables:
                with _failing(f"copy into {where} failed at table {table.name}"):
                    copied.append(
                        _copy_table(src, conn, table, columns[table.name], batch, progress)
                    )
            _restart_identities(conn, [t.name for t in tables])
            _release_leases(conn)
    return copied


def open_source(source: Path) -> sqlite3.Connection:
    """The SQLite file, read-only, if it is a news-monitor database of this release's schema
    (an older one must be upgraded first: reading it here must not change it)."""
    if not source.is_file():
        raise StorageError(f"no SQLite database at {source}")
    try:
        conn = open_read_only(source, 30.0)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {source} as a SQLite database: {exc}") from exc
    known = len(MIGRATIONS)
    if version == known:
        return conn
    conn.close()
    if version == 0:
        raise StorageError(f"{source} is not a news-monitor database (no schema version)")
    if version < known:
        raise StorageError(
            f"{source} is at schema version {version}, this release's is {known}: run "
            "`news-monitor once` with this release on it first (that upgrades the file), "
            "then migrate"
        )
    raise StorageError(
        f"{source} was written by a newer news-monitor (schema version {version}, this "
        f"release knows {known}): migrate with that release"
    )


def source_tables(src: sqlite3.Connection) -> list[Table]:
    """Every table of the SQLite schema but virtual tables (the FTS5 index) and their shadow
    tables, in the order they were created."""
    rows = src.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    ).fetchall()
    virtual = [name for name, sql in rows if sql.upper().startswith("CREATE VIRTUAL TABLE")]
    return [
        _describe(src, name)
        for name, _ in rows
        if not any(name == v or name.startswith(f"{v}_") for v in virtual)
    ]


def _describe(src: sqlite3.Connection, name: str) -> Table:
    info = src.execute(f"PRAGMA table_info({_q(name)})").fetchall()  # cid name type nn dflt pk
    columns = tuple(row[1] for row in info)
    primary = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
    try:  # unquoted: SQLite reads an unknown "quoted" name as a string
        src.execute(f"SELECT {ROWID} FROM {_q(name)} LIMIT 0")
        has_rowid = True
    except sqlite3.OperationalError:  # WITHOUT ROWID
        has_rowid = False
    return Table(name, columns, primary or (ROWID,), has_rowid)


def _parents_first(src: sqlite3.Connection, tables: Sequence[Table]) -> list[Table]:
    """`tables` with each after the tables its foreign keys name (PostgreSQL checks every
    row as it arrives), else in their order."""
    by_name = {t.name: t for t in tables}
    placed: dict[str, Table] = {}

    def place(table: Table, path: frozenset[str]) -> None:
        if table.name in placed or table.name in path:  # a cycle: PostgreSQL will say
            return
        keys = src.execute(f"PRAGMA foreign_key_list({_q(table.name)})").fetchall()
        for parent in sorted({row[2] for row in keys} & by_name.keys()):
            place(by_name[parent], path | {table.name})
        placed[table.name] = table

    for table in tables:
        place(table, frozenset())
    return list(placed.values())


def _prepare_target(
    conn: Any, tables: Sequence[Table], where: str, *, replace: bool
) -> dict[str, tuple[str, ...]]:
    """Lock the target's tables, check they can take the copy; the columns to copy into each.
    Every SQLite column has one of its name; PostgreSQL's `rowid` takes SQLite's rowid; its
    other columns (generated, or new) keep their defaults."""
    from monitor.store.pg import schema as pg_schema

    if (version := pg_schema.current(conn)) != pg_schema.VERSION:
        raise StorageError(
            f"{where} is at PostgreSQL schema version {version}, this release knows "
            f"{pg_schema.VERSION}: migrate with the release that made it"
        )
    target = _target_columns(conn)
    columns = {t.name: _columns_for(t, target.get(t.name), where) for t in tables}
    names = ", ".join(_q(t.name) for t in tables)
    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
    try:
        conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")  # readers only, meanwhile
    except Exception as exc:
        if _sqlstate(exc) != "55P03":  # lock_not_available
            raise
        raise StorageError(
            f"{where} is in use (a news-monitor worker is writing to it): stop the workers, "
            "then migrate again"
        ) from None
    full = [
        t.name
        for t in tables
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(t.name)})").fetchone()[0]
    ]
    if full and not replace:
        raise StorageError(
            f"{where} already holds news-monitor data (in {', '.join(full)}): migrate copies "
            "into an empty database only (--replace empties it first, losing what it holds)"
        )
    if full:
        conn.execute(f"TRUNCATE {names} RESTART IDENTITY")
    return columns


def _target_columns(conn: Any) -> dict[str, dict[str, bool]]:
    """{table: {column: writable}} of the target's schema (generated columns are not)."""
    rows = conn.execute(
        "SELECT table_name, column_name, is_generated FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    ).fetchall()
    out: dict[str, dict[str, bool]] = {}
    for table, column, generated in rows:
        out.setdefault(table, {})[column] = generated != "ALWAYS"
    return out


def _columns_for(table: Table, target: dict[str, bool] | None, where: str) -> tuple[str, ...]:
    if target is None:
        raise StorageError(f"{where} has no table {table.name}: this release cannot copy it")
    lacking = [c for c in table.columns if not target.get(c)]
    if lacking:
        raise StorageError(
            f"{where}: table {table.name} has no column {', '.join(lacking)} to copy into"
        )
    rowid = (ROWID,) if table.has_rowid and target.get(ROWID) else ()
    return (*table.columns, *rowid)


def _copy_table(
    src: sqlite3.Connection,
    conn: Any,
    table: Table,
    columns: Sequence[str],
    batch: int,
    progress: Progress | None,
) -> Copied:
    """Stream one table, `batch` rows at a time, into COPY (one statement, any size)."""
    listed = ", ".join(_q(c) for c in columns)
    order = ", ".join(_q(c) for c in table.order)
    total = 0
    rows = src.execute(f"SELECT {listed} FROM {_q(table.name)} ORDER BY {order}")
    with conn.cursor() as cur, cur.copy(f"COPY {_q(table.name)} ({listed}) FROM STDIN") as copy:
        while chunk := rows.fetchmany(batch):
            for row in chunk:
                copy.write_row(row)
            total += len(chunk)
            if progress is not None:
                progress(table.name, total)
    return Copied(table.name, total)


def _restart_identities(conn: Any, tables: Sequence[str]) -> None:
    """Each identity column of the copied tables restarts past its largest value."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in rows:
        if table in tables:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(max({_q(column)}), 0) "
                f"+ 1, false) FROM {_q(table)}",
                (table, column),
            )


def _release_leases(conn: Any) -> None:
    """Leases of processes on the SQLite file: none of them will finish its work here."""
    conn.execute("UPDATE sources SET lease_until = NULL WHERE lease_until IS NOT NULL")
    conn.execute(
        "UPDATE outbox SET lease_until = NULL WHERE lease_until IS NOT NULL AND status = 'pending'"
    )


def _q(name: str) -> str:
    """`name` quoted for SQL (both dialects); SQLite's implicit `rowid` stays bare."""
    return name if name == ROWID else '"' + name.replace('"', '""') + '"'


@contextmanager
def _failing(what: str) -> Iterator[None]:
    """A database's error, as StorageError saying `what` failed (and that nothing changed)."""
    try:
        yield
    except StorageError:
        raise
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: reading the SQLite file: {exc}") from exc
    except Exception as exc:
        from monitor.store.pg.connection import is_database_error, reason_of

        if _sqlstate(exc) is None and not is_database_error(exc):
            raise
        raise StorageError(f"{what}, nothing was written: {reason_of(exc)}") from exc


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)
