"""The config's tables as pydantic models: which keys each table takes, their types and defaults.

One model per table, checked on its own (extra keys forbidden, strict types), so one bad source
does not hide the next one's problems; the value checks they call are in `config.values`.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from monitor.config.values import (
    Duration,
    DurationOrZero,
    Name,
    PollInterval,
    QuietHoursSpec,
    RateLimit,
    Selector,
    StoryWindow,
    valid_cron,
    valid_host,
    valid_http_url,
    valid_language,
    valid_query,
    valid_size,
    valid_timezone,
)

MB = 1024 * 1024


def suggest(word: str, known: Any, form: str = ' (did you mean "{}"?)') -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return form.format(close[0]) if close else ""


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def valid_database(value: str) -> str:
    """A file path, or a PostgreSQL URL: no other server is supported."""
    if "://" in value and not value.startswith(SERVER_SCHEMES):
        scheme = value.split("://", 1)[0]
        raise ValueError(
            f"{scheme}:// is not a supported database: give a file path (SQLite) "
            "or a postgresql:// URL"
        )
    return value


SERVER_SCHEMES = ("postgresql://", "postgres://")


class MonitorTable(Table):
    database: Annotated[str, AfterValidator(valid_database)] = "data/monitor.db"
    interval: Duration = 300.0
    min_interval: Duration = 10.0
    timezone: Annotated[str, AfterValidator(valid_timezone)] = "UTC"
    concurrency: Annotated[int, Field(ge=1)] = 32
    per_host: Annotated[int, Field(ge=1)] = 4
    timeout: Duration = 30.0
    max_bytes: Annotated[int, BeforeValidator(valid_size), Field(ge=1024)] = 10 * MB
    retention: Duration = 90 * 86400.0
    history_retention: Duration = 365 * 86400.0
    story_window: StoryWindow = 72 * 3600.0
    health_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    health_host: Annotated[str, AfterValidator(valid_host)] = "127.0.0.1"
    log_format: Literal["auto", "human", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    max_attempts: Annotated[int, Field(ge=1)] = 8
    failing_after: Duration = 6 * 3600.0
    health_channel: Name | None = None
    lexicon: list[str] = []
    rate_limit: RateLimit = (20, 600.0)  # every channel's, unless its own table says otherwise
    max_age: Duration = 2 * 86400.0  # older items are stored, not alerted (alerts/held.py)


class ChannelTable(Table):
    """`[channels.NAME]`, the long form of `NAME = "url"`: the URL is checked by the loader
    (as in the short form); `rate_limit` left out means `[monitor] rate_limit`."""

    url: str
    rate_limit: RateLimit = None


class SourceTable(Table):
    name: Name
    url: Annotated[str, AfterValidator(valid_http_url)]
    kind: Literal["feed", "html"] = "feed"
    language: Annotated[str, AfterValidator(valid_language)] | None = None
    interval: PollInterval | None = None
    links: Selector | None = None
    title: Selector | None = None
    summary: Selector | None = None
    date: Selector | None = None
    fetch_article: bool = False
    allow_private: bool = False
    robots: bool = True
    enabled: bool = True
    max_age: Duration | None = None  # None: [monitor] max_age


class RuleTable(Table):
    name: Name
    query: Annotated[str, AfterValidator(valid_query)]
    channels: list[Name] = []
    alert: Literal["story", "article"] = "story"
    cooldown: DurationOrZero = 3600.0
    digest: Annotated[str, AfterValidator(valid_cron)] | None = None
    quiet_hours: QuietHoursSpec | None = None
    urgent: bool = False
    enabled: bool = True
    max_age: Duration | None = None  # None: each source's
    backfill: bool = False


TOP = {"monitor": MonitorTable, "channels": None, "sources": SourceTable, "rules": RuleTable}
TYPES = {"string_type": "text in quotes", "bool_type": "true or false", "list_type": "a list"}
TYPES |= {"int_type": "a whole number", "float_type": "a number", "dict_type": "a table"}
