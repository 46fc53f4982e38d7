"""One exception tree, so callers can catch by stage without knowing the libraries below."""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error news-monitor raises on purpose."""


class ConfigError(MonitorError):
    """A config file is invalid; `problems` holds every `PATH:LINE: where: what` message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RuleSyntaxError(MonitorError):
    """A rule query does not parse; `position` is the 0-based offset in the query text."""

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} (at character {position + 1})")


class FetchError(MonitorError):
    """A fetch failed; `retry_after` (seconds) is set when the server asked us to wait."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class ParseError(MonitorError):
    """Fetched bytes could not be turned into entries (not a feed, hostile markup, ...)."""


class StorageError(MonitorError):
    """The database could not be read or written (locked, read-only, disk full, ...)."""
