"""Parsers for one config value each: durations, sizes, names, URLs, selectors, cron, hours.

Why a module of its own: `loader.py` is about the file (tables, line numbers, `${VAR}`, the
order of checks); these are about one value and know nothing of where it came from. Each raises
ValueError with a message that reads after `PATH:LINE: where: ` and, where it can, says how to
write the value instead. `show` quotes a wrong value the way TOML spells it.

A digest's numeric day-of-week is rewritten to names (`1-5` -> `mon,tue,wed,thu,fri`) because
crontab counts Sunday as 0 and APScheduler 3 counts Monday as 0; names mean the same to both.

A rate limit "20/10m" becomes (20, 600.0): messages, per seconds; "none" (or 0) is None.

Limits, so a value that parses cannot crash a poll later: a duration is finite and at most
`MAX_DURATION` (10 years; `now + 10 years` and `now - 10 years` are plain datetimes, while
`now - 999999d` is before year 1 and made every poll fail), and `story_window` at most 30 days
(every poll reads the window's frequencies and stories). A digest must fire within 5 years, and
a channel's scheme must be one Apprise knows. Apprise, APScheduler and soupsieve are imported
only when a value needs them (a channel, a digest, a page source's CSS selector): they are slow to
import (soupsieve and the bs4 it loads, ~60 ms) and most configs and commands never need them.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import unicodedata
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from monitor.errors import RuleSyntaxError
from monitor.models import QuietHours
from monitor.text import SIZE_UNITS

NAME_PUNCTUATION = "-_."  # besides letters, digits and (after the first) combining marks

MAX_DURATION = 3650 * 86400.0  # 10 years: any duration (see the docstring for why)
MAX_STORY_WINDOW = 30 * 86400.0  # story_window: every poll reads the whole window
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")
_UNIT_WORDS = {"sec": "s", "second": "s", "min": "m", "minute": "m", "hr": "h", "hour": "h"}
_UNIT_WORDS |= {"day": "d", "week": "w", "giorno": "d", "giorni": "d", "ora": "h", "ore": "h"}


def parse_duration(text: str) -> float:
    """Seconds in "30s", "5m", "2h", "1d", "1w", "1h30m"; anything else raises ValueError."""
    s = text.strip()
    if _DURATION.fullmatch(s):
        parts = re.findall(r"(\d+(?:\.\d+)?)([wdhms])", s)
        units = [u for _, u in parts]
        if units == sorted(set(units), key="wdhms".index):
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+?)s?", s)
    word = m and m.group(2).lower()
    unit = m and (_UNIT_WORDS.get(word) or (word[0] if word[0] in _UNIT_SECONDS else None))
    hint = f'"{m.group(1)}{unit}"' if m and unit else '"30s", "5m", "2h", "1d" or "1h30m"'
    raise ValueError(f'"{text}" is not a duration: write {hint}')


def show_duration(seconds: float) -> str:
    """Seconds as the config writes a duration: 93600 -> "1d2h", 0.5 -> "0s"."""
    left, parts = round(seconds), []
    for unit, size in _UNIT_SECONDS.items():
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def show(value: Any) -> str:
    """A wrong value as the user wrote it, with its kind: `text "x"`, `number 3`, `true`."""
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    text = str(value).lower() if isinstance(value, bool) else text  # as TOML spells it
    kind = {bool: "", str: "text ", int: "number ", float: "number "}.get(type(value), "")
    return kind + (text if len(text) <= 50 else text[:47] + "...")


def valid_duration(value: Any, allow_zero: bool = False, most: float = MAX_DURATION) -> float:
    """Seconds from a duration text or a bare number of seconds (TOML also has inf and nan)."""
    not_finite = isinstance(value, float) and not math.isfinite(value)  # inf, nan: no timedelta
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not_finite:
        raise ValueError(f'must be a duration such as "5m" (or seconds), not {show(value)}')
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except OverflowError:  # a whole number beyond any float
        seconds = math.inf
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError("must be longer than zero")
    if seconds > most:
        limit = f'"{most / 86400:g}d"' + (" (10 years)" if most == MAX_DURATION else "")
        raise ValueError(f"must be at most {limit}, not {show(value)}")
    return seconds


NO_RATE_LIMIT = ("none", "0")


def valid_rate_limit(value: Any) -> tuple[int, float] | None:
    """A channel's rate limit: "20/10m" is at most 20 messages in any 10 minutes, as
    (messages, seconds); "none" (or 0) is no limit, None. What is over it waits, not lost."""
    how = 'write messages/duration, e.g. "20/10m", or "none" for no limit'
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a rate limit in quotes ({how}), not {show(value)}")
    text = value.strip().lower()
    if text in NO_RATE_LIMIT:
        return None
    m = re.fullmatch(r"(\d+)\s*/\s*(\S.*)", text)
    if not m:
        raise ValueError(f'"{value}" is not a rate limit: {how}')
    if int(m.group(1)) < 1:
        raise ValueError(f'"{value}" would never send anything: {how}')
    try:
        per = valid_duration(m.group(2).strip())
    except ValueError as e:
        raise ValueError(f'"{value}" is not a rate limit: {e}') from None
    return int(m.group(1)), per


def show_rate_limit(rate: tuple[int, float] | None) -> str:
    """A rate limit as the config writes it: (20, 600.0) -> "20/10m", None -> "none"."""
    return "none" if rate is None else f"{rate[0]}/{show_duration(rate[1])}"


def too_often(interval: float, least: float) -> str | None:
    """Why a poll interval is refused under `[monitor] min_interval` (None: it is allowed)."""
    if interval >= least:
        return None
    return (
        f"is shorter than min_interval ({least:g}s): polling a site this often can get the "
        "monitor blocked; lower [monitor] min_interval if you mean it"
    )


def _allowed_interval(value: float, info: ValidationInfo) -> float:
    """A source's interval; `[monitor] min_interval` comes as the validation context."""
    if what := too_often(value, (info.context or {}).get("min_interval", 0.0)):
        raise ValueError(what)
    return value


def unknown_apprise_scheme(scheme: str) -> str | None:
    """Why Apprise cannot send to `scheme://` (None: it has a plugin for it)."""
    from apprise.manager_plugins import NotificationManager  # slow: only for a URL channel

    known = NotificationManager().schemas()
    if scheme.lower() in known:
        return None
    hint = " (for a web hook write json://, form:// or xml://)"
    if scheme.lower() not in ("http", "https"):
        close = difflib.get_close_matches(scheme.lower(), known, n=1, cutoff=0.75)
        hint = f' (did you mean "{close[0]}://"?)' if close else ""
    return f'unknown Apprise scheme "{scheme}://"{hint}'


def valid_size(value: Any) -> Any:
    """Bytes from 10485760 or "10MB" / "512 KB" / "1GiB" (KB = 1024 bytes)."""
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", value.strip(), re.IGNORECASE)
    if not m:
        raise ValueError(f'"{value}" is not a size: write e.g. "10MB", "512KB" or a byte count')
    unit = SIZE_UNITS.get(f"{m.group(2).upper()}B", 1)  # text.format_size writes it back
    return int(float(m.group(1)) * unit)


def valid_name(value: str) -> str:
    """Source, rule and channel names, in any script (`città`, `новости`, `東京`), returned
    NFC-normalized so that one name typed two ways is one name. They appear in `source:`
    queries, alerts, log lines, metric labels and CLI arguments, hence no spaces, no control
    or invisible (format) characters, no symbols: letters, digits and combining marks (after
    the first character), plus "-", "_", "."."""
    name = unicodedata.normalize("NFC", value)
    if not name:
        raise ValueError("is empty: a name needs at least one letter or digit")
    for i, char in enumerate(name):
        if not _name_char(char, first=i == 0):
            shown = value if value.isprintable() else value.encode("unicode_escape").decode()
            raise ValueError(
                f'"{shown}" is not a valid name ({_describe_char(char, first=i == 0)}): use '
                'letters and digits of any script, "-", "_", "." (no spaces), starting with a '
                "letter or digit"
            )
    return name


def _name_char(char: str, *, first: bool) -> bool:
    kind = unicodedata.category(char)[0]
    if first:
        return kind in "LN"
    return kind in "LMN" or char in NAME_PUNCTUATION


def _describe_char(char: str, *, first: bool) -> str:
    if char.isspace():
        return "it contains a space" + ("" if char == " " else f" (U+{ord(char):04X})")
    if not char.isprintable():
        return f"it contains the invisible character U+{ord(char):04X}"
    return f'it starts with "{char}"' if first else f'it contains "{char}"'


_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z){_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def valid_host(value: str) -> str:
    """An address to listen on: an IP address ("127.0.0.1", "0.0.0.0", "::") or a host name."""
    host = value.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(host):
        return host
    raise ValueError(f'"{value}" is not an address to listen on: write "127.0.0.1" or "0.0.0.0"')


def valid_http_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f'"{value}" is not an http:// or https:// URL')
    return value.strip()


def valid_language(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?", value):
        raise ValueError(f'"{value}" is not a language code such as "it" or "en"')
    return value.lower()


def valid_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, OSError, KeyError):
        raise ValueError(f'"{value}" is not a time zone: use a name like "Europe/Rome"') from None
    return value


def valid_selector(value: str) -> str:
    import soupsieve  # slow (it loads bs4): only for a page source's selectors

    try:
        soupsieve.compile(value)
    except Exception as e:  # soupsieve raises SelectorSyntaxError and a few others
        raise ValueError(f'"{value}" is not a CSS selector: {str(e).splitlines()[0]}') from None
    return value


def valid_query(value: str) -> str:
    """A rule query that parses; the message points at the character where it went wrong."""
    from monitor.rules.query import (
        parse_query,  # imported late: rules is a sibling, not a foundation
    )

    if not value.strip():
        raise ValueError("is empty")
    try:
        parse_query(value)
    except RuleSyntaxError as e:
        near = value[max(0, e.position - 10) : e.position + 10].replace("\n", " ")
        raise ValueError(f'{e.message} at character {e.position + 1} (near "{near}")') from None
    return value


_QUIET_HOURS = re.compile(r"\s*(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*")


def parse_quiet_hours(value: str) -> tuple[time, time]:
    """Quiet hours "HH:MM-HH:MM" -> (start, end), hours 0-23 (so no "24:00"); may span midnight.
    The one parser of quiet hours: alerts get the parsed `QuietHours` and never read the text."""
    m = _QUIET_HOURS.fullmatch(value)
    h1, m1, h2, m2 = (int(g) for g in m.groups()) if m else (99, 0, 0, 0)
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f'"{value}" is not a time range: write "HH:MM-HH:MM", e.g. "22:00-07:00"')
    return time(h1, m1), time(h2, m2)


def valid_quiet_hours(value: str) -> QuietHours:
    """A rule's quiet hours, parsed once at load; a window of no length is a mistake."""
    start, end = parse_quiet_hours(value)
    if start == end:
        raise ValueError("starts and ends at the same time")
    return QuietHours(start, end)


_MONTHS = ["", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # crontab numbering: 0 (and 7) = Sunday
_CRON_FIELDS = [("minute", 0, 59, []), ("hour", 0, 23, []), ("day of month", 1, 31, [])]
_CRON_FIELDS += [("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS)]


def _cron_values(text: str, label: str, lo: int, hi: int, names: list[str]) -> set[int]:
    """The values one cron field selects; ValueError says which part is wrong."""
    out: set[int] = set()
    for item in text.lower().split(","):
        m = re.fullmatch(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?", item)
        try:
            if not m or (m[1] == "*" and m[2]):
                raise ValueError
            first, last = (
                (lo, hi)
                if m[1] == "*"
                else [names.index(v) if v in names else int(v) for v in (m[1], m[2] or m[1])]
            )
            if not lo <= first <= last <= hi or int(m[3] or 1) < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f'{label} "{item}" is not valid ({lo}-{hi})') from None
        out.update(range(first, last + 1, int(m[3] or 1)))
    return out


def valid_cron(value: str) -> str:
    """A 5-field crontab expression, its day of week rewritten to names (see the docstring)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f'"{value}" must be a cron expression with 5 fields (minute hour day month '
            f'weekday), e.g. "0 8,18 * * *"; it has {len(fields)}'
        )
    days: set[int] = set()
    for text, spec in zip(fields, _CRON_FIELDS, strict=True):
        days = _cron_values(text, *spec)
    if fields[4] != "*":
        days = {d % 7 for d in days}
        fields[4] = ",".join(_DAYS[d % 7] for d in range(1, 8) if d % 7 in days)
    if not _fires_soon(" ".join(fields)):
        raise ValueError(
            f'"{value}" never fires: no date in the next 5 years has this day of month, month '
            "and day of week"
        )
    return " ".join(fields)


def _fires_soon(cron: str) -> bool:
    """Whether APScheduler, which runs the digests, fires `cron` within 5 years from now."""
    from apscheduler.triggers.cron import CronTrigger  # slow: only for a rule with a digest

    now = datetime.now(UTC)
    fire = CronTrigger.from_crontab(cron, timezone="UTC").get_next_fire_time(None, now)
    return fire is not None and fire <= now + timedelta(days=5 * 366)


Duration = Annotated[float, BeforeValidator(valid_duration)]
DurationOrZero = Annotated[float, BeforeValidator(lambda v: valid_duration(v, allow_zero=True))]
PollInterval = Annotated[float, BeforeValidator(valid_duration), AfterValidator(_allowed_interval)]
StoryWindow = Annotated[float, BeforeValidator(lambda v: valid_duration(v, most=MAX_STORY_WINDOW))]
Name = Annotated[str, AfterValidator(valid_name)]
Selector = Annotated[str, AfterValidator(valid_selector)]
# read as text, kept as the `QuietHours` it parses into (alerts never parse the text)
QuietHoursSpec = Annotated[str, AfterValidator(valid_quiet_hours)]
# read as text ("20/10m", "none"), kept as (messages, seconds) or None for no limit
RateLimit = Annotated[tuple[int, float] | None, BeforeValidator(valid_rate_limit)]
