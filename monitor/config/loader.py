"""TOML config -> validated, frozen `Config`; the only module that reads the environment.

Why it looks like this:
- Every mistake is collected and reported at once as `PATH:LINE: where: what`, because a user
  fixing a config one error per run gives up. tomllib keeps no line numbers, so
  `lines.Locator` scans the raw text for table headers and `key =` lines.
- pydantic (extra="forbid", strict) checks each table on its own, so one bad source does not hide
  the problems of the next; cross checks (duplicate names, undefined channels) run after, and
  see a table's valid keys even when others are invalid, so no mistake hides another.
- `${VAR}` is substituted in every string value before validation; the values are secrets and are
  masked (monitor/secrets.py) in every message, including ours.
- `NEWS_MONITOR_LOG_LEVEL` and `NEWS_MONITOR_HEALTH_HOST` override `[monitor]` keys (overrides.py).
- Relative paths (`database`, an Apprise config file in `[channels]`) are relative to the current
  working directory, like any command-line path; `~` is expanded.
- Parsing one value (durations, sizes, names, selectors, cron, quiet hours) is in
  `config.values`; `parse_duration` is re-exported here for the modules that read durations.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from monitor import secrets
from monitor.config.lines import Locator, where
from monitor.config.overrides import default_worker, env_overrides
from monitor.config.tables import (
    MB,
    SERVER_SCHEMES,
    TOP,
    TYPES,
    ChannelTable,
    MonitorTable,
    RuleTable,
    SourceTable,
    Table,
    suggest,
)
from monitor.config.values import (
    parse_duration as parse_duration,  # re-exported: other modules import it from here
)
from monitor.config.values import (
    show,
    show_duration,
    too_often,
    unknown_apprise_scheme,
    valid_name,
)
from monitor.errors import ConfigError
from monitor.models import Rule, Source

DEFAULT_PATH = Path("config/monitor.toml")


@dataclass(frozen=True, slots=True)
class Settings:
    """`[monitor]`: durations in seconds, sizes in bytes; `database` relative to the cwd."""

    database: Path | str = Path("data/monitor.db")  # str: a postgresql:// URL
    interval: float = 300.0
    min_interval: float = 10.0  # a shorter interval is refused: polling that often gets blocked
    timezone: str = "UTC"
    concurrency: int = 32
    per_host: int = 4
    timeout: float = 30.0
    max_bytes: int = 10 * MB
    retention: float = 90 * 86400.0
    history_retention: float = 365 * 86400.0  # stories, alerts and their articles' rows
    story_window: float = 72 * 3600.0
    health_port: int | None = None  # None = no health/metrics endpoint
    health_host: str = "127.0.0.1"  # where /healthz and /metrics listen
    log_format: Literal["auto", "human", "json"] = "auto"
    log_level: str | None = None  # None: "info" for `run`, "error" for `once` (its own summary)
    max_attempts: int = 8
    failing_after: float = 6 * 3600.0  # a source failing this long since its last success is down
    health_channel: str | None = None  # where "source down" / "recovered" alerts go
    lexicon: tuple[Path, ...] = ()  # the user's lexicon files, added to the shipped one
    rate_limit: tuple[int, float] | None = (20, 600.0)  # (messages, seconds) per channel
    max_age: float = 2 * 86400.0  # older items are stored, not alerted (a source may differ)
    worker: str = field(default_factory=default_worker)  # NEWS_MONITOR_WORKER, no key of the file


@dataclass(frozen=True)
class Config:
    """A whole validated config; `secrets` are the substituted env values, for masking.
    `channels`: name -> Apprise URL or file; `rate_limits`: name -> (messages, seconds) of
    each channel, its own or `[monitor] rate_limit` (None: no limit)."""

    path: Path
    settings: Settings
    channels: Mapping[str, str]
    sources: tuple[Source, ...]
    rules: tuple[Rule, ...]
    secrets: frozenset[str] = frozenset()
    rate_limits: Mapping[str, tuple[int, float] | None] = field(default_factory=dict)

    def mask(self, text: str) -> str:
        """`text` with this config's secrets masked, in every form (monitor/secrets.py)."""
        return secrets.Secrets(self.secrets).mask(text)


def _templates(raw: Mapping[str, Any]) -> list[str | None]:
    """Each source's `url` as written, `${VAR}` and all: what may be stored and shown."""
    items = raw.get("sources", [])
    if not isinstance(items, list):
        return []
    return [i.get("url") if isinstance(i, dict) and isinstance(i.get("url"), str) else None
            for i in items]  # fmt: skip


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """`$NEWS_MONITOR_CONFIG` if set and non-empty, else `config/monitor.toml`."""
    env = os.environ if env is None else env
    return Path(env.get("NEWS_MONITOR_CONFIG") or DEFAULT_PATH)


# ---------------------------------------------------------------- loading


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem found."""
    env = os.environ if env is None else env
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the config file: {e.strerror or e}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: file: not UTF-8 text (save it as UTF-8)"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_problem(path, text, str(e))]) from None
    return _Builder(path, text, env).build(data)


def _syntax_problem(path: Path, text: str, message: str) -> str:
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    line = int(m.group(1)) if m else max(1, len(text.splitlines()))
    what = message[: m.start()] if m else message.replace("(at end of document)", "").strip()
    where = f"column {m.group(2)}" if m else "end of file"
    if what.startswith(("Invalid value", "Expected newline")):
        what += " (is a text value missing its quotes?)"
    return f"{path}:{line}: TOML syntax ({where}): {what}"


class _Builder:
    """One load: collects (loc, message) problems, then formats them all with lines."""

    def __init__(self, path: Path, text: str, env: Mapping[str, str]) -> None:
        self.path, self.env, self.locator = path, env, Locator(text)
        self.problems: list[tuple[tuple[Any, ...], str]] = []
        self.secrets: set[str] = set()
        self.env_locs: set[tuple[Any, ...]] = set()  # values spoilt by an unset ${VAR}
        self.invalid: dict[tuple[Any, ...], set[str]] = {}  # a table's keys that failed
        self.context: dict[str, Any] = {}  # what a value's check needs from another table
        self.rate_limits: dict[str, tuple[int, float] | None] = {}  # channels' own limits

    def problem(self, loc: tuple[Any, ...], message: str, env: bool = False) -> None:
        """Record one problem; an unset ${VAR} hides the follow-on errors of its value."""
        if env:
            self.env_locs.add(loc)
        elif loc in self.env_locs:
            return
        self.problems.append((loc, message))

    def substitute(self, value: Any, loc: tuple[Any, ...]) -> Any:
        """`${VAR}` -> env value in every string (`$${` is a literal `${`)."""
        if isinstance(value, dict):
            return {k: self.substitute(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name is None:
                return "${"
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not m.group(2):
                self.problem(loc, f'"${{{name}" is not a valid ${{VAR}} reference', env=True)
                return ""
            if name not in self.env:
                what = f"environment variable {name} is not set (used as ${{{name}}})"
                self.problem(loc, what, env=True)
                return ""
            self.secrets.add(self.env[name])
            return self.env[name]

        return re.sub(r"\$\$\{|\$\{([^}\s]*)(\})?", repl, value)

    def validate(
        self, model: type[Table], data: Any, loc: tuple[Any, ...], part: bool = False
    ) -> Any:
        """The table's model, or None; with `part`, the model of its valid keys (all optional)."""
        if not isinstance(data, dict):
            hint = f" (write [[{loc[0]}]] for each entry)" if len(loc) > 1 else ""
            self.problem(loc, f"must be a table, not {show(data)}{hint}")
            return None
        try:
            return model.model_validate(data, context=self.context)
        except ValidationError as e:
            for err in e.errors():
                self.pydantic_problem(model, loc, err)
            bad = self.invalid[loc] = {str(err["loc"][0]) for err in e.errors() if err["loc"]}
            if part:
                return model.model_validate({k: v for k, v in data.items() if k not in bad})
        return None

    def pydantic_problem(self, model: type[Table], loc: tuple[Any, ...], err: Any) -> None:
        kind, ctx, full = err["type"], err.get("ctx") or {}, (*loc, *err["loc"])
        if kind == "extra_forbidden":
            key = str(err["loc"][-1])
            self.problem(full, f'unknown key "{key}"{suggest(key, model.model_fields)}')
            return
        if kind == "missing":
            message = "is required but missing"
        elif kind == "value_error":
            message = str(ctx.get("error", err["msg"]))
        elif kind == "literal_error":
            message = "must be " + str(ctx.get("expected", "")).replace("'", '"')
        elif kind in TYPES:
            message = f"must be {TYPES[kind]}, not {show(err['input'])}"
        elif kind in ("greater_than_equal", "less_than_equal"):
            bound = ctx.get("ge", ctx.get("le"))
            message = f"must be at {'least' if 'ge' in ctx else 'most'} {bound}"
        else:
            message = err["msg"]
        self.problem(full, message)

    def build(self, data: dict[str, Any]) -> Config:
        raw, data = data, self.substitute(data, ())
        secrets.remember(self.secrets)  # masked in every message of this process from now on
        for key in data:
            if key not in TOP:
                self.problem((key,), f"unknown table or key{suggest(key, TOP)}")
        monitor = self.validate(MonitorTable, data.get("monitor", {}), ("monitor",), part=True)
        settings = _settings(monitor or MonitorTable(), self.path.parent)
        overridden, wrong = env_overrides(self.env)  # NEWS_MONITOR_LOG_LEVEL, ..._HEALTH_HOST
        settings = replace(settings, **overridden)
        for key, what in wrong:
            self.problem(("monitor", key), what)
        self.context["monitor_set"] = monitor.model_fields_set if monitor else set()
        if "min_interval" not in self.invalid.get(("monitor",), set()):
            self.context["min_interval"] = settings.min_interval  # checks each source's interval
        channels = self.channels(data.get("channels", {}))
        self.cross_check_monitor(monitor, channels)
        sources = self.sources(self.entries(data, "sources"), settings, _templates(raw))
        rules = self.rules(self.entries(data, "rules"), channels)
        if self.problems:
            ordered = sorted(self.problems, key=lambda p: self.locator.line(p[0]))
            hide = secrets.Secrets(self.secrets).mask
            raise ConfigError(
                [
                    hide(f"{self.path}:{self.locator.line(loc)}: {where(loc)}: {msg}")
                    for loc, msg in ordered
                ]
            )
        limits = {name: self.rate_limits.get(name, settings.rate_limit) for name in channels}
        return Config(
            self.path, settings, MappingProxyType(channels), sources, rules,
            frozenset(self.secrets), MappingProxyType(limits),
        )  # fmt: skip

    def cross_check_monitor(self, monitor: MonitorTable | None, channels: dict[str, str]) -> None:
        if monitor is None:
            return
        ok = set(MonitorTable.model_fields) - self.invalid.get(("monitor",), set())
        name = monitor.health_channel
        if name is not None and name not in channels:
            hint = suggest(name, channels, '; did you mean "{}"?')
            what = f'channel "{name}" is not defined in [channels]{hint}'
            self.problem(("monitor", "health_channel"), what)
        for i, path in enumerate(_settings(monitor, self.path.parent).lexicon):
            if not path.is_file():
                self.problem(("monitor", "lexicon", i), f"no such file: {path}")
        both = {"retention", "history_retention"} <= ok  # else one is a default, not the user's
        if both and monitor.history_retention < monitor.retention:
            what = "must be at least `retention` (stories and alerts outlive article bodies)"
            self.problem(("monitor", "history_retention"), what)
        what = too_often(monitor.interval, monitor.min_interval)
        if what and {"interval", "min_interval"} <= ok:
            self.problem(("monitor", "interval"), what)

    def entries(self, data: dict[str, Any], section: str) -> list[Any]:
        value = data.get(section, [])
        if isinstance(value, list):
            return value
        self.problem((section,), f"must be a list of tables: write [[{section}]] for each entry")
        return []

    def channels(self, table: Any) -> dict[str, str]:
        """Each channel's target: `NAME = "url"`, or a `[channels.NAME]` table with `url` and
        `rate_limit` (kept in `self.rate_limits`)."""
        if not isinstance(table, dict):
            self.problem(("channels",), f"must be a table, not {show(table)}")
            return {}
        out = {}
        for name, value in table.items():
            loc = ("channels", name)
            try:
                name = valid_name(name)  # NFC, as the rules' `channels` that name it
            except ValueError as e:
                self.problem(loc, str(e))
                continue
            if isinstance(value, dict):
                entry = self.validate(ChannelTable, value, loc)
                if entry is not None and "rate_limit" in entry.model_fields_set:
                    self.rate_limits[name] = entry.rate_limit
                if "url" not in value or "url" in self.invalid.get(loc, set()):
                    continue  # reported by validate
                value, loc = value["url"], (*loc, "url")
            if (target := self.channel_target(loc, value)) is not None:
                out[name] = target  # kept when wrong: rules naming it are not wrong too
        return out

    def channel_target(self, loc: tuple[Any, ...], value: Any) -> str | None:
        """A channel's Apprise URL or config file; a URL is kept even when its scheme is
        unknown (reported), so that the rules naming the channel are not reported too."""
        if not isinstance(value, str) or not value.strip():
            self.problem(loc, f"must be an Apprise URL or config file path, not {show(value)}")
        elif m := re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value.strip()):
            if what := unknown_apprise_scheme(m.group(1)):
                self.problem(loc, what)
            return value.strip()
        elif Path(value).expanduser().is_file():
            return str(Path(value).expanduser())
        else:
            self.problem(loc, "is neither an Apprise URL (scheme://...) nor an existing file")
        return None

    def unique(self, item: Any, section: str, i: int, seen: dict[str, int]) -> bool:
        """Record a name; report a repeat. Checked on the raw table, valid or not."""
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            return True
        if name in seen:
            first = self.locator.line((section, seen[name], "name"))
            what = f'duplicate {section[:-1]} name "{name}" (first defined at line {first})'
            self.problem((section, i, "name"), what)
            return False
        seen[name] = i
        return True

    def sources(
        self, items: list[Any], settings: Settings, templates: list[str | None]
    ) -> tuple[Source, ...]:
        out: list[Source] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            unique = self.unique(item, "sources", i, seen)
            src = self.validate(SourceTable, item, ("sources", i))
            if src is None or not unique:
                continue
            selectors = [k for k in ("links", "title", "summary", "date") if getattr(src, k)]
            if src.kind == "html" and not src.links:
                self.problem(("sources", i, "kind"), 'kind = "html" needs `links`, a CSS '
                             "selector for the article links on the page")  # fmt: skip
            elif src.kind == "feed" and selectors:
                self.problem(("sources", i, selectors[0]), f"`{selectors[0]}` applies only "
                             'to pages: add kind = "html", or remove it for a feed')  # fmt: skip
            fields = src.model_dump()
            fields["interval"] = src.interval or settings.interval
            fields["max_age"] = self.source_max_age(src, i, fields["interval"], settings)
            template = templates[i] if i < len(templates) else None
            fields["url_template"] = template if template and template != src.url else None
            out.append(Source(**fields))
        return tuple(out)

    def source_max_age(
        self, src: SourceTable, i: int, interval: float, settings: Settings
    ) -> float:
        """A source's max_age: its own, else [monitor]'s. Either must be at least twice the
        source's interval: an item published just after a poll is first seen an interval
        later, and feeds list items late. Neither written: 2 days, or twice the interval."""
        if src.max_age is None and "max_age" not in self.context.get("monitor_set", ()):
            return max(settings.max_age, 2 * interval)
        value = src.max_age if src.max_age is not None else settings.max_age
        if value < 2 * interval and src.enabled:
            loc = ("sources", i, "max_age") if src.max_age is not None else ("monitor", "max_age")
            self.problem(loc, f'{show_duration(value)} is less than twice the interval of source '
                         f'"{src.name}" ({show_duration(interval)}): its items would be too old '
                         "to alert by the time they are seen")  # fmt: skip
        return value

    def rules(self, items: list[Any], channels: dict[str, str]) -> tuple[Rule, ...]:
        out: list[Rule] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            unique = self.unique(item, "rules", i, seen)
            names = item.get("channels") if isinstance(item, dict) else None
            for j, channel in enumerate(names if isinstance(names, list) else []):
                if isinstance(channel, str) and channel and channel not in channels:
                    hint = suggest(channel, channels, '; did you mean "{}"?')
                    what = f'channel "{channel}" is not defined in [channels]{hint}'
                    self.problem(("rules", i, "channels", j), what)
            rule = self.validate(RuleTable, item, ("rules", i))
            if rule is None or not unique:
                continue
            if rule.backfill and rule.max_age is not None:
                what = "and `backfill = true` contradict: backfill alerts items of any age"
                self.problem(("rules", i, "max_age"), what)
            fields = dict(rule)  # as validated: model_dump would turn QuietHours into a dict
            fields["channels"] = tuple(dict.fromkeys(rule.channels))
            out.append(Rule(**fields))
        return tuple(out)


def _settings(table: MonitorTable, folder: Path = Path()) -> Settings:
    fields = table.model_dump()
    url = table.database.startswith(SERVER_SCHEMES)
    fields["database"] = table.database if url else Path(table.database).expanduser()
    # lexicon files sit beside the config: relative paths are relative to its folder
    fields["lexicon"] = tuple(folder / Path(p).expanduser() for p in table.lexicon)
    return Settings(**fields)
