"""The command line."""

from monitor.cli.commands import main

__all__ = ["main"]
