"""The PostgreSQL backend: `PgStore`, for workers that share one database (psycopg 3).

Imported only when `database` is a `postgresql://` URL, so the SQLite default never loads
psycopg.
"""

from __future__ import annotations

from monitor.store.pg.connection import close_pools, shown
from monitor.store.pg.store import PgStore

__all__ = ["PgStore", "close_pools", "shown"]
