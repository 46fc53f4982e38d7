"""`[monitor]` settings the environment may override, for images and service units.

Why: a container image or a systemd unit knows things the user's config should not have to
say. The Docker image listens for `/healthz` and `/metrics` on every interface of its own network
namespace (`NEWS_MONITOR_HEALTH_HOST=0.0.0.0`: on 127.0.0.1 inside a container no one outside it
could reach them), and an operator turns on debug lines for one run without editing the file
(`NEWS_MONITOR_LOG_LEVEL=debug news-monitor run`). An override wins over the file and is checked
like the key itself; the loader (the one reader of the environment) hands the mapping in.

`NEWS_MONITOR_WORKER` names this process among the workers sharing one database (its metrics'
`worker` label, its "daemon started" line). It is no key of the file, which every worker shares;
left out, the name is `<hostname>:<pid>`, unique on a network at any one time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from monitor.config.values import valid_host

LOG_LEVELS = ("debug", "info", "warning", "error")  # what `log_level` takes
ENV_OVERRIDES = {
    "NEWS_MONITOR_LOG_LEVEL": "log_level",
    "NEWS_MONITOR_HEALTH_HOST": "health_host",
    "NEWS_MONITOR_WORKER": "worker",
}
MAX_WORKER = 100  # characters of a worker's name


def _log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        raise ValueError(f"not a log level: write {', '.join(LOG_LEVELS[:-1])} or error")
    return value.lower()


def _worker(value: str) -> str:
    if len(value) > MAX_WORKER or not value.isprintable():
        raise ValueError(f"a worker's name is at most {MAX_WORKER} printable characters")
    return value


def default_worker() -> str:
    """This process's name among the workers when NEWS_MONITOR_WORKER does not give one."""
    return f"{socket.gethostname()}:{os.getpid()}"


_CHECKS = {"log_level": _log_level, "health_host": valid_host, "worker": _worker}


def env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The settings the environment sets, by key, and (key, problem) for each wrong one."""
    found: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for var, key in ENV_OVERRIDES.items():
        value = env.get(var, "").strip()
        if not value:
            continue
        try:
            found[key] = _CHECKS[key](value)
        except ValueError as e:
            problems.append((key, f'{var}="{value}" in the environment: {e}'))
    return found, problems
