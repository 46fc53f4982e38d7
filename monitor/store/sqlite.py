"""The SQLite store: the `Store` protocol (base.py) on one SQLite file.

Built from parts, one per domain, each a mixin over the shared connection (connection.py), as
reader's `_storage` is: sources, articles, polls (one poll's transaction), stories, outbox,
mutes and maintenance. Their helpers that run inside a transaction (rows, copies, stories) take
the connection; nothing outside store/ sees SQL or a connection. Times are stored as
fixed-format UTC text (times.py), so they sort as text.
"""

from __future__ import annotations

from monitor.store.articles import ArticlesMixin
from monitor.store.maintenance import MaintenanceMixin
from monitor.store.mutes import MutesMixin
from monitor.store.outbox import OutboxMixin
from monitor.store.polls import PollsMixin
from monitor.store.sources import SourcesMixin
from monitor.store.story_views import StoriesMixin


class SqliteStore(
    SourcesMixin, ArticlesMixin, PollsMixin, StoriesMixin, OutboxMixin, MutesMixin,
    MaintenanceMixin,
):  # fmt: skip
    """One connection to the monitor's SQLite file. Use from one thread only (the writer
    thread opens its own, store/writer.py)."""
