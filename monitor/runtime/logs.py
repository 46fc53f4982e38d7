"""Structured logging: human lines on a terminal, one JSON object per line otherwise.

Both structlog loggers and the standard library's (apprise, apscheduler, aiohttp, ...) go through
one `ProcessorFormatter` on the root logger, so every line has the same shape and passes the same
secret masking.

Masking happens twice, because neither pass alone is enough:
- on the event dict before rendering: every string, nested in dicts/lists too, so a secret is
  replaced before JSON escaping or `repr` could change its spelling;
- on the rendered line: catches what the first pass cannot see, such as tracebacks and the
  `repr` of objects that hold a URL.
Each pass is `secrets.mask_credentials` (monitor/secrets.py, the one home of masking): the
configured secret values in every form, the password in `scheme://user:pass@host`, bot tokens.

`set_secrets()` adds secrets without touching handlers, for a config reload. Modules below the
runtime log through `structlog.stdlib.get_logger` (what `get_logger` here returns): where the
lines go is decided here, once, by `configure` (`reconfigure` changes its level or time zone).

Times: JSON lines carry UTC ISO timestamps (`...Z`), what log collectors sort and join on;
human lines show the wall time of `[monitor] timezone` with its abbreviation
(`2026-02-03 10:15:00 CET`), the times the person reading them lives in and alerts show.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monitor import secrets as _secrets

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("auto", "human", "json")
# Chatty libraries whose INFO lines are noise for a daemon that runs for months (trafilatura
# and its helpers also warn about every odd page they are given).
QUIET_LOGGERS = ("apprise", "apscheduler", "trafilatura", "htmldate", "courlan", "justext")


class Masker:
    """structlog processors that mask (monitor/secrets.py) every string of an event dict, and
    the rendered line."""

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return _secrets.mask_credentials(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return value  # other objects are caught by the pass over the rendered line

    def event_dict(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        """structlog processor: mask every string value before rendering."""
        for key, value in list(event.items()):
            if key.startswith("_") or key == "exc_info":
                continue  # the LogRecord and traceback objects; the line pass covers them
            event[key] = self.value(value)
        return event

    def rendered(self, _logger: WrappedLogger, _name: str, line: str | bytes) -> str | bytes:
        """structlog processor placed after the renderer: mask the finished line."""
        if isinstance(line, bytes):
            return _secrets.mask_credentials(line.decode("utf-8", "replace")).encode()
        return _secrets.mask_credentials(line)


class ZoneStamper:
    """structlog processor: the wall time of a time zone, for human lines (see the module doc)."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        event["timestamp"] = datetime.now(self.zone).strftime("%Y-%m-%d %H:%M:%S %Z")
        return event


_masker = Masker()
_handler: logging.Handler | None = None
_setup: dict[str, Any] = {}  # the last `configure` arguments, for `reconfigure`


def set_secrets(secrets: Iterable[str]) -> None:
    """Mask these secrets too (e.g. after a config reload brought new ones)."""
    _secrets.remember(secrets)


def mask(text: str) -> str:
    """Mask `text` the way log lines are masked, for messages that leave by another path."""
    return _secrets.mask_credentials(text)


def _drop_formatter_fields(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Drop `message`/`asctime`: another handler's Formatter may have set them on the record,
    and ExtraAdder would then repeat the message as an extra field."""
    event.pop("message", None)
    event.pop("asctime", None)
    return event


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def configure(
    fmt: str = "auto",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    timezone: str = "UTC",
) -> None:
    """Set up structlog and stdlib logging to write to `stream` (stderr by default); human
    lines show times in `timezone`, JSON lines in UTC.

    Calling it again replaces the previous setup (our handler only; others are left alone).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {FORMATS}")
    numeric = _numeric_level(level)
    stream = sys.stderr if stream is None else stream
    tty = _is_tty(stream)
    set_secrets(secrets)
    human = fmt == "human" or (fmt == "auto" and tty)
    stamper = ZoneStamper(timezone) if human else structlog.processors.TimeStamper("iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        stamper,
    ]
    _install_handler(stream, _formatter(shared, human=human, colors=tty), numeric)
    _configure_structlog(shared)
    _setup.update(fmt=fmt, level=level, stream=stream, timezone=timezone)


def reconfigure(**changes: str) -> None:
    """`configure` again with some of its arguments changed (`level`, `fmt`, `timezone`) and
    the same stream: a config reload that changed `log_level` takes effect at once."""
    configure(**{**_setup, **changes})


def _numeric_level(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(LEVELS)}") from None


def _formatter(
    shared: list[Processor], *, human: bool, colors: bool
) -> structlog.stdlib.ProcessorFormatter:
    """One formatter for every record, ours and the libraries': masked before and after
    rendering (see the module doc)."""
    renderer: Processor
    if human:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors,
            # Plain tracebacks: Rich would wrap long lines and could split a secret in two.
            exception_formatter=structlog.dev.plain_traceback,
        )
        tail: list[Processor] = []
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        tail = [structlog.processors.format_exc_info]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_formatter_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            *tail,
            _masker.event_dict,
            renderer,
            _masker.rendered,
        ],
    )


def _install_handler(stream: IO[str], formatter: logging.Formatter, numeric: int) -> None:
    """Our one handler on the root logger, replacing the one a previous `configure` put there;
    chatty libraries are held at WARNING unless we log at DEBUG."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream)
    _handler.setFormatter(formatter)
    _handler.setLevel(numeric)  # the level filters what is written, here, not at the loggers:
    root.addHandler(_handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        # ... Apprise's warnings must still be raised at `error`: delivery/channels.py reads a
        # failed send's reason from them ("HTTP 500", "connection refused")
        logging.getLogger(name).setLevel(
            logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
        )


def _configure_structlog(shared: list[Processor]) -> None:
    """structlog hands its events to the stdlib handler above, so both kinds share one path."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so a second configure() (reload, tests) reaches loggers made earlier.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (shown as `logger` in every line)."""
    return structlog.stdlib.get_logger(name)
