"""The stored time format, in one place: every time column is fixed-format UTC text.

Why text: it sorts as time, so `next_poll <= ?` and `ORDER BY due_at` need no conversion, and
the file stays readable with the sqlite3 shell. Everything outside store/ sees datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# the same text written by SQLite itself (milliseconds, padded to microseconds), for triggers
SQL_NOW = "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')"


def ts(value: datetime | None) -> str | None:
    """A datetime as fixed-format UTC text (sortable); None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def from_ts(value: str | None) -> datetime | None:
    """Stored text back as an aware UTC datetime; None or '' is None."""
    if not value:
        return None
    # fromisoformat reads our fixed format (Z suffix included) at a tenth of strptime's cost
    return datetime.fromisoformat(value).astimezone(UTC)
