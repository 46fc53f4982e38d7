"""news-monitor: watch news sources and alert once per new development.

The public face for a library user: load a config, build a `Monitor` on it, poll and deliver.

    import asyncio, monitor
    config = monitor.load_config("config/monitor.toml")
    async def once():
        m = monitor.Monitor(config)
        try:
            await m.poll_everything()
            await m.drain()
        finally:
            await m.close()
    asyncio.run(once())

Everything else is an implementation detail and may change. The names that pull in the HTTP
client, the store or the config parser load on first use (PEP 562 `__getattr__`), so `import
monitor.text`, `from monitor import __version__` or `news-monitor check` stay quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.errors import (
    ConfigError,
    FetchError,
    MonitorError,
    ParseError,
    RuleSyntaxError,
    StorageError,
)

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "Config",
    "ConfigError",
    "FetchError",
    "Monitor",
    "MonitorError",
    "ParseError",
    "RuleSyntaxError",
    "StorageError",
    "SystemClock",
    "__version__",
    "load_config",
]

# public name: (module, attribute). Named only as strings, never imported here at the top (not
# even under TYPE_CHECKING): `ingest.fetch` imports `__version__` from this package, and the
# import contracts would see a path from ingest up to service through it.
_LAZY = {
    "Config": ("monitor.config.loader", "Config"),
    "load_config": ("monitor.config.loader", "load"),
    "Monitor": ("monitor.service.monitor", "Monitor"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
