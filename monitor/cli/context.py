"""What every command gets: the config, loaded when first needed, the clock and the store.

In its own module so that command modules (`commands`, and the ones beside it) can share it
without importing each other. Keep imports light: `--help` must not pay for the config loader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor.clock import Clock
from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.config.loader import Config
    from monitor.store import Store


class Context:
    """Lazily loaded config, so `--help` works even with a broken config file and does not
    import the loader (with pydantic, ~90 ms); the clock."""

    def __init__(self, config_path: Path | None, clock: Clock) -> None:
        self._config_path = config_path  # None: the default, resolved when first needed
        self.clock = clock
        self._config: Config | None = None

    @property
    def config_path(self) -> Path:
        if self._config_path is None:
            from monitor.config.loader import default_config_path

            self._config_path = default_config_path(os.environ)
        return self._config_path

    @property
    def config(self) -> Config:
        if self._config is None:
            from monitor.config.loader import load

            try:
                self._config = load(self.config_path)
            except ConfigError as exc:
                for problem in exc.problems:
                    click.echo(problem, err=True)
                raise SystemExit(2) from None
        return self._config

    def store(self) -> Store:
        """The database, read-only: every command that uses this one only reads, so it works on
        a file this user cannot write, and never creates one (`once` and `run` do)."""
        from monitor.store import open_store

        return open_store(self.config.settings.database, read_only=True)

    def writable_store(self) -> Store:
        """The database, to change it (`alerts retry`, `alerts drop`, `mute`): it must exist
        already, since a new file would have nothing to change. Safe beside a running daemon:
        each change is one short write transaction."""
        from monitor.errors import StorageError
        from monitor.store import exists, open_store

        path = self.config.settings.database
        if not exists(path):
            raise StorageError(f"no database at {path} yet: run `news-monitor once` or `run` first")
        return open_store(path)


pass_ctx = click.make_pass_decorator(Context)
