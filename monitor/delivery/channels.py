"""Send one alert to one channel through Apprise; the only module that imports apprise.

A channel is an Apprise URL (`mailto://`, `tgram://`, `json://`, ...) or the path of an Apprise
config file (YAML or text). `send()` never raises for a delivery problem: it returns a `Delivery`
whose `error` is a short, secret-free sentence, and the outbox decides about retries.

Choices, and why:
- Body format per channel: e-mail (`mailto(s)://`) and the generic webhooks (`json://`, `xml://`,
  `form://`) get the plain-text body (`json://` posts `title` + plain `message`, which is what a
  script consuming a webhook wants); a service whose Apprise plugin accepts Markdown (Telegram,
  Slack, Matrix, Discord, Rocket.Chat, ...) gets the Markdown body, and Apprise translates it to
  the service's own dialect; every other service gets plain text, which Apprise escapes where
  HTML is expected (most HTML-only plugins are e-mail APIs, where clean text is what we want).
  An explicit `format=text|markdown|html` in the channel URL wins (the only way to get the HTML
  body, or Markdown on e.g. Mattermost whose plugin declares text only).
- No retries inside Apprise: the retry count of every service is forced to 0, because our
  outbox retries with backoff and survives restarts, while Apprise's retries die with the process.
  Persistent storage is memory-only unless `storage_path` is given (it is a cache of logins,
  e.g. Matrix access tokens, not a delivery queue).
- Deadline: each service's socket connect/read timeouts are capped at `timeout`, and the
  whole Apprise call is given the same limit, so a hung server costs at most about `timeout`.
- Error text comes from the log entries Apprise attaches to the result of this very call (not
  `apprise.LogCapture`, which hooks the process-wide logger: two sends running in threads
  would read each other's errors). Every token or password of the channel is masked out of it.
- Size: each body is cut to its service's `body_maxlen` and the title to `title_maxlen`, the
  limits Apprise itself declares per plugin (Telegram 4,096, Discord 2,000, Slack 35,000, e-mail
  32,768, ...), measured after Apprise converts the body for the service; Apprise would send a
  longer body whole and the service refuse it. `fit` cuts on a word, marks the cut with "…" and
  keeps Markdown and HTML well formed; what comes first (the headline and its link) survives.
- A config file holding several URLs is one channel: if one of its URLs fails the whole channel
  is retried, so the others receive the alert again. Give each URL its own channel to avoid it.

Uses the per-call result logs and call timeout of Apprise 2.x; tested with Apprise 2.3.0.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from apprise import Apprise, AppriseAsset, AppriseConfig, NotifyFormat
from apprise.conversion import convert_between
from apprise.plugins.email import NotifyEmail

from monitor import secrets
from monitor.models import Delivery, Message  # Message re-exported for callers

__all__ = ["Message", "describe", "fit", "fit_message", "send"]

_PLAIN_PROTOCOLS = frozenset({"mailto", "mailtos", "json", "jsons", "xml", "xmls", "form", "forms"})
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|sig|cred|session", re.IGNORECASE)
_SPLIT = re.compile(r"[/:@?&=#,;\s]+")
_MAX_ERROR = 300


def _query(url: str) -> dict[str, str]:
    """Query parameters as Apprise reads them ('+' is a header prefix, not a space)."""
    query = urlsplit(url, allow_fragments=False).query
    pairs = (item.partition("=") for item in query.split("&") if item)
    return {unquote(key): unquote(value) for key, _, value in pairs}


def _is_config_path(target: str) -> bool:
    return "://" not in target


def _format_of(service: object, target: str) -> NotifyFormat:
    """The body format this service should receive (see the module docstring)."""
    if not _is_config_path(target):
        requested = _query(target).get("format", "").lower()
        if requested in {f.value for f in NotifyFormat}:
            return NotifyFormat(requested)
    protocols = {getattr(service, "protocol", None), getattr(service, "secure_protocol", None)}
    if isinstance(service, NotifyEmail) or protocols & _PLAIN_PROTOCOLS:
        return NotifyFormat.TEXT
    declared = getattr(service, "notify_format", NotifyFormat.TEXT)
    formats = declared if isinstance(declared, (tuple, list)) else (declared,)
    return NotifyFormat.MARKDOWN if NotifyFormat.MARKDOWN in formats else NotifyFormat.TEXT


def _body(message: Message, fmt: NotifyFormat) -> str:
    if fmt == NotifyFormat.MARKDOWN:
        return message.markdown
    if fmt == NotifyFormat.HTML:
        return message.html
    return message.text


# ------------------------------------------------------------------------------ size

_MARK = "…"
_TOKENS = {  # what a cut keeps whole: escapes, entities, `**`, a link's `](url)`, tags
    NotifyFormat.MARKDOWN: re.compile(r"\\.|&#?\w+;|\*\*|\]\([^()\s]*\)|.", re.DOTALL),
    NotifyFormat.HTML: re.compile(r"<[^<>]*>|&#?\w+;|.", re.DOTALL),
    NotifyFormat.TEXT: re.compile(r".", re.DOTALL),
}
_LINK_END = re.compile(r"\]\([^()\s]*\)")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_VOID = frozenset({"br", "hr", "img", "wbr"})
_TITLE_IN_BODY = 16  # what Apprise wraps a title in when it puts it in the body ("<b></b><br />")


def _open(fmt: NotifyFormat, tok: str, body: str, end: int, stack: list[str]) -> list[str]:
    """What must close a body cut right after `tok`: Markdown emphasis and links (URL and all),
    HTML tags. Alerts escape every `*`, `_` and `[` of feed text, so a bare one is markup."""
    if fmt == NotifyFormat.MARKDOWN:
        if tok in ("**", "_"):
            return stack[:-1] if stack and stack[-1] == tok else [*stack, tok]
        if tok == "[":
            link = _LINK_END.search(body, end)
            return [*stack, link.group(0) if link else "]"]
        return stack[:-1] if tok.startswith("](") else stack
    tag = _TAG.match(tok) if fmt == NotifyFormat.HTML else None
    if tag is None or tok.endswith("/>") or tag.group(2).lower() in _VOID:
        return stack
    return stack[:-1] if tag.group(1) else [*stack, f"</{tag.group(2)}>"]


def fit(body: str, fmt: NotifyFormat | str, limit: int) -> str:
    """`body` (an alert rendered in `fmt`) in at most `limit` characters; as is when it fits.

    The cut falls at a line end, else a word boundary, unless that loses over half of what
    fits; it is marked "…" (on a line of its own at a line end) and closes what is open there:
    Markdown emphasis, the link with its URL whole, HTML tags. It never falls inside an escape,
    an entity or a tag.
    """
    if len(body) <= limit:
        return body
    fmt, room = NotifyFormat(fmt), limit - len(_MARK) - 1  # 1: a newline before the mark
    if room < 0:
        return _MARK[:limit]
    size, stack = 0, []
    line = word = (0, [], "")  # the last line end and word boundary: (length, open, separator)
    for match in _TOKENS[fmt].finditer(body):
        tok = match.group(0)
        if tok.isspace():
            word = (size, stack, "")
            line = (size, stack, "\n") if tok == "\n" else line
        after = _open(fmt, tok, body, match.end(), stack)
        if size + len(tok) + sum(map(len, after)) > room:
            break
        size, stack = size + len(tok), after
    cuts = (c for c in (line, word) if c[0] >= size // 2 and c[0])
    end, still_open, sep = next(cuts, (size, stack, ""))
    return body[:end].rstrip() + sep + _MARK + "".join(reversed(still_open))


def _sent_size(service: object, body: str, fmt: NotifyFormat) -> int:
    """Length of `body` once Apprise has converted it to the service's format and dialect."""
    try:
        target = service.resolve_format(fmt)  # type: ignore[attr-defined]
        converted = convert_between(fmt, target, body)
        return len(service.dialect_convert(converted, target))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an older Apprise or a plugin quirk: count it as written
        return len(body)


def fit_message(service: object, message: Message, fmt: NotifyFormat) -> tuple[str, str]:
    """The title and `fmt` body that `service` accepts: cut to its plugin's `title_maxlen` and
    `body_maxlen`, with room for the title where the service puts it in the body (title_maxlen
    0, e.g. Telegram); escaping may double a title's length, hence twice its length."""
    title, body = message.title, _body(message, fmt)
    title_max = int(getattr(service, "title_maxlen", 0) or 0)
    body_max = int(getattr(service, "body_maxlen", 0) or 0)
    if 0 < title_max < len(title):
        title = fit(title, NotifyFormat.TEXT, title_max)
    if body_max <= 0:
        return title, body
    room = body_max - (2 * len(title) + _TITLE_IN_BODY if title and title_max <= 0 else 0)
    limit, fitted = room, body
    for _ in range(6):  # a conversion that grows the body: cut tighter, in proportion
        fitted = fit(body, fmt, max(limit, 0))
        size = _sent_size(service, fitted, fmt)
        if size <= room:
            break
        limit = limit * room // size - 1
    return title, fitted


# ------------------------------------------------------------------------------ masking


def _mask_query(url: str, keep: set[str] | None) -> str:
    """Drop query keys not in `keep` (None keeps all) and mask values that may be secrets."""
    parts = urlsplit(url, allow_fragments=False)  # '#' names a channel in Apprise URLs
    pairs = []
    for key, value in _query(url).items():
        if keep is not None and key not in keep:
            continue
        # +header, -param and :payload values of the generic webhooks are not masked by Apprise.
        secret = key[:1] in "+-:" or _SECRET_KEY.search(key)
        pairs.append((key, secrets.MASK if secret else value))
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="@,/:*+")))


def _masked_service_url(service: object, keep: set[str] | None) -> str:
    return _mask_query(service.url(privacy=True), keep)  # type: ignore[attr-defined]


def _tokens(text: str) -> set[str]:
    return {t for t in _SPLIT.split(unquote(text)) if len(t) >= 3}


def _secrets(target: str, services: list[object], shown: str) -> set[str]:
    """Everything in the channel's real URLs that its masked form does not show."""
    visible = _tokens(shown)
    found: set[str] = set()
    raw = [] if _is_config_path(target) else [target]
    for service in services:
        raw.append(service.url(privacy=False))  # type: ignore[attr-defined]
        visible |= _tokens(_masked_service_url(service, None))
        password = getattr(service, "password", None)
        if password and len(password) >= 3:
            found.add(str(password))
    for url in raw:
        found |= _tokens(url) - visible
    return found


def _redact(text: str, values: set[str]) -> str:
    """`text` with this channel's secrets and every known one masked."""
    return secrets.mask(text, also=values)


def _opaque(target: str) -> str:
    """A target Apprise cannot parse: show only its scheme (a config file: its path)."""
    if _is_config_path(target):
        return f"config file {target}"
    scheme = target.split("://", 1)[0] if "://" in target else ""
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return f"{scheme}://{secrets.MASK}"
    return secrets.MASK


# ------------------------------------------------------------------------------ loading


class _ThreadLog(logging.Handler):
    """Collect Apprise warnings raised by this thread while a URL or config file is parsed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


@contextmanager
def _setup_log() -> Iterator[list[str]]:
    handler = _ThreadLog()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def _asset(storage_path: str | None) -> AppriseAsset:
    """Apprise sends in the calling thread (async_mode off): our caller already runs us in a
    worker thread, and Apprise's own threads would outlive a daemon stopping at its deadline."""
    if storage_path:
        return AppriseAsset(
            app_id="news-monitor",
            storage_path=storage_path,
            storage_mode="auto",
            async_mode=False,
        )
    return AppriseAsset(app_id="news-monitor", storage_mode="memory", async_mode=False)


def _load(target: str, asset: AppriseAsset) -> tuple[list[object], str | None]:
    """The Apprise services behind a target, or an error sentence (secret-free)."""
    with _setup_log() as lines:
        if _is_config_path(target):
            path = Path(target).expanduser()
            if not path.is_file():
                return [], f"Apprise config file {target} not found"
            config = AppriseConfig(asset=asset)
            listing = getattr(config, "services", None) or config.servers  # 2.x / 1.x name
            services = list(listing()) if config.add(str(path)) else []
            if not services:
                return [], f"Apprise config file {target} has no valid notification URL"
            return services, None
        service = Apprise.instantiate(target, asset=asset)
    if service is None:
        why = "; ".join(dict.fromkeys(lines))
        reason = _redact(why, _tokens(target) - _tokens(_opaque(target)) - {"URL"})
        message = f"not a valid Apprise URL for channel {_opaque(target)}"
        return [], f"{message} ({reason})" if reason else message
    return [service], None


# ------------------------------------------------------------------------------ public


def describe(target: str) -> str:
    """A form of the target safe to print: passwords and tokens masked, defaults left out."""
    services, error = _load(target, _asset(None))
    if error:
        return _opaque(target)
    if _is_config_path(target):
        shown = ", ".join(_masked_service_url(s, set()) for s in services)
        return f"config file {target} ({shown})"
    return _masked_service_url(services[0], set(_query(target)))


def _tame(service: object, timeout: float) -> None:
    """No Apprise retries; socket timeouts within our deadline."""
    if hasattr(service, "retry"):
        service.retry = 0  # type: ignore[attr-defined]
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(service, name, None)
        if current is None or current > timeout:
            setattr(service, name, timeout)


def _send_one(
    service: object, target: str, message: Message, timeout: float, asset: AppriseAsset
) -> str | None:
    """Deliver to one Apprise service; None when it accepted, else Apprise's own complaint."""
    fmt = _format_of(service, target)
    title, body = fit_message(service, message, fmt)
    apobj = Apprise(asset=asset)
    apobj.add(service)
    started = time.monotonic()
    result = apobj.notify(body=body, title=title, body_format=fmt, timeout=timeout)
    if result:
        return None
    lines = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
    # Apprise says "connection error" both for a refused and for a silent server; tell them apart.
    if result.timeout_count or time.monotonic() - started >= 0.9 * timeout:
        lines.append(f"no answer within {timeout:g}s")
    return "; ".join(dict.fromkeys(lines)) or "the service refused the message"


def send(
    target: str, message: Message, *, timeout: float = 20.0, storage_path: str | None = None
) -> Delivery:
    """Send `message` to one channel; blocking, bounded by about `timeout` seconds, never raises.

    `storage_path` enables Apprise's persistent storage there (a cache of logins such as
    Matrix access tokens), otherwise it lives in memory for this call only.
    """
    asset = _asset(storage_path)
    services: list[object] = []
    problems: list[str] = []
    try:
        services, error = _load(target, asset)
        if error:
            return Delivery(ok=False, error=error)
        shown = describe(target)
        for service in services:
            _tame(service, timeout)
            problem = _send_one(service, target, message, timeout, asset)
            if problem:
                prefix = _masked_service_url(service, set()) if len(services) > 1 else shown
                problems.append(f"{prefix}: {problem}")
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not stop the outbox loop
        shown = _opaque(target) if not services else describe(target)
        problems.append(f"{shown}: {type(exc).__name__}: {exc}")
    if not problems:
        return Delivery(ok=True)
    hidden = _secrets(target, services, shown)
    return Delivery(ok=False, error=_clip(_redact("; ".join(problems), hidden)))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"
