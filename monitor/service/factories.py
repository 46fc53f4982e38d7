"""The long-lived objects a config shapes, built one way for the `Monitor` and the CLI."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.config.loader import Settings
from monitor.ingest.fetch import Fetcher
from monitor.models import Rule
from monitor.rules.query import RuleSet

__all__ = ["make_fetcher", "make_ruleset"]


def make_fetcher(settings: Settings) -> Fetcher:
    """The HTTP client with the config's timeout, size cap and concurrency limits."""
    s = settings
    return Fetcher(
        timeout=s.timeout, max_bytes=s.max_bytes, concurrency=s.concurrency, per_host=s.per_host
    )


def make_ruleset(rules: Iterable[Rule]) -> RuleSet:
    """The matcher of every enabled rule; a disabled rule stays in the config, unmatched."""
    return RuleSet((r.name, r.query) for r in rules if r.enabled)
