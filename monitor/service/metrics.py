"""Prometheus metrics of the service, behind plain method names.

In service, not runtime: the `Monitor` counts what it does (polls, alerts, sources down), and
the daemon's HTTP endpoint (runtime/healthz.py) only serves the registry.
Each `Metrics` owns its own `CollectorRegistry` instead of prometheus_client's global one, so
tests and several daemons in one process never clash over metric names. The Monitor and the
daemon call the methods below; nothing else in the code base imports prometheus_client.

Every series carries the worker's name (`worker="host:pid"`, or NEWS_MONITOR_WORKER): several
workers on one PostgreSQL database are told apart on a dashboard, whatever the scraper calls
its targets. prometheus_client has no constant labels, so the label is added at each scrape
(`render`) rather than passed at every count.

Every labelled series is created up front (at zero), so a dashboard sees `outcome="error"` before
the first error instead of a missing series.

Per source (`source="corriere-esteri"`): polls, errors, new articles and the fetch time (a
Summary: count and sum, two series a source, where a histogram would add a dozen). One label
value per configured source: `set_sources` creates them at zero and removes the series of a
source that left the config, and a poll of a source not (or no longer) configured is counted only
in the totals: nine series a source (with prometheus_client's `_created`), however long the
daemon runs and however often the config changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from monitor.alerts.held import REASON_WORDS as HELD_REASONS
from monitor.ingest.normalize import SKIP_REASONS

POLL_OUTCOMES = ("new", "unchanged", "not_modified", "error")
ALERT_OUTCOMES = ("sent", "failed", "dead")

# Feed fetches range from tens of milliseconds to the fetch deadline (tens of seconds).
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

PREFIX = "news_monitor"


class Metrics:
    """The daemon's counters, gauges and the fetch-latency histogram, in a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self, *, worker: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self.worker = worker  # None: no `worker` label (a Metrics of its own, in tests)
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.polls = Counter(
            f"{PREFIX}_polls", "Polls of a source, by outcome.", ["outcome"], registry=reg
        )
        self.fetch_seconds = Histogram(
            f"{PREFIX}_fetch_seconds",
            "Time spent fetching a source, in seconds (failed fetches included).",
            buckets=FETCH_BUCKETS,
            registry=reg,
        )
        self.items = Counter(f"{PREFIX}_items_seen", "Feed or page entries seen.", registry=reg)
        self.new_articles = Counter(
            f"{PREFIX}_new_articles", "Entries that were new articles.", registry=reg
        )
        self.matches = Counter(f"{PREFIX}_matches", "Rule matches on new articles.", registry=reg)
        self.skipped = Counter(
            f"{PREFIX}_items_skipped",
            "Feed items a poll read and did not store, by reason (duplicate, no_identifier).",
            ["reason"],
            registry=reg,
        )
        self.held = Counter(
            f"{PREFIX}_matches_held",
            "New matches recorded but not alerted, by reason (old, backlog, muted).",
            ["reason"],
            registry=reg,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts", "Alert delivery attempts, by outcome.", ["outcome"], registry=reg
        )
        self.outbox_depth = Gauge(
            f"{PREFIX}_outbox_depth", "Alerts waiting in the outbox.", registry=reg
        )
        self.scheduler_lag = Gauge(
            f"{PREFIX}_scheduler_lag_seconds",
            "How late the last scheduler tick started, in seconds.",
            registry=reg,
        )
        self.sources_failing = Gauge(
            f"{PREFIX}_sources_failing",
            "Sources whose last poll failed.",
            registry=reg,
        )
        self.sources_malformed = Gauge(
            f"{PREFIX}_sources_malformed",
            "Enabled sources whose last good poll read a malformed body (e.g. cut off mid-item).",
            registry=reg,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that did not fail (0 = none yet).",
            registry=reg,
        )
        self._per_source()
        for outcome in POLL_OUTCOMES:
            self.polls.labels(outcome)
        for outcome in ALERT_OUTCOMES:
            self.alerts.labels(outcome)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)
        for reason in HELD_REASONS:
            self.held.labels(reason)

    def _per_source(self) -> None:
        """The families labelled by source (see the module doc)."""
        reg, label = self.registry, ["source"]
        self.sources: frozenset[str] = frozenset()
        self.source_polls = Counter(
            f"{PREFIX}_source_polls", "Polls of each source.", label, registry=reg
        )
        self.source_errors = Counter(
            f"{PREFIX}_source_errors", "Failed polls of each source.", label, registry=reg
        )
        self.source_new = Counter(
            f"{PREFIX}_source_new_articles", "New articles of each source.", label, registry=reg
        )
        self.source_seconds = Summary(
            f"{PREFIX}_source_fetch_seconds",
            "Time spent polling each source, in seconds (count and sum).",
            label,
            registry=reg,
        )

    def _source_families(self) -> tuple[Counter | Summary, ...]:
        return (self.source_polls, self.source_errors, self.source_new, self.source_seconds)

    # ---------------------------------------------------------------- called by the daemon

    def set_sources(self, names: Iterable[str]) -> None:
        """The configured sources (at start and on every reload): each gets its series at zero,
        a source that left the config loses its own."""
        wanted = frozenset(names)
        for family in self._source_families():
            for gone in self.sources - wanted:
                family.remove(gone)
            for name in wanted - self.sources:
                family.labels(name)
        self.sources = wanted

    def poll_done(
        self,
        outcome: str,
        seconds: float | None = None,
        items: int = 0,
        new: int = 0,
        matches: int = 0,
        source: str | None = None,
    ) -> None:
        """Record one finished poll; `seconds` is the fetch time (None when no fetch happened);
        `source` also counts it under that source, if it is configured (`set_sources`)."""
        if outcome not in POLL_OUTCOMES:
            raise ValueError(f"unknown poll outcome {outcome!r}; expected one of {POLL_OUTCOMES}")
        self.polls.labels(outcome).inc()
        timed = seconds is not None and seconds >= 0 and math.isfinite(seconds)
        if source in self.sources:
            self._source_done(source, outcome, seconds if timed else None, new)
        if timed:
            self.fetch_seconds.observe(seconds)
        if items > 0:
            self.items.inc(items)
        if new > 0:
            self.new_articles.inc(new)
        if matches > 0:
            self.matches.inc(matches)
        if outcome != "error":
            self.last_success.set(self._clock())

    def _source_done(self, source: str, outcome: str, seconds: float | None, new: int) -> None:
        self.source_polls.labels(source).inc()
        if outcome == "error":
            self.source_errors.labels(source).inc()
        if new > 0:
            self.source_new.labels(source).inc(new)
        if seconds is not None:
            self.source_seconds.labels(source).observe(seconds)

    def items_skipped(self, skipped: Sequence[tuple[str, int]]) -> None:
        """Count the items one poll left out, as (reason, count) pairs (PollResult)."""
        for reason, n in skipped:
            if reason not in SKIP_REASONS:
                raise ValueError(f"unknown skip reason {reason!r}; expected one of {SKIP_REASONS}")
            if n > 0:
                self.skipped.labels(reason).inc(n)

    def matches_held(self, held: Sequence[tuple[str, int]]) -> None:
        """Count one poll's new matches that were recorded, not alerted, as (reason, count)."""
        for reason, n in held:
            if n > 0:
                self.held.labels(reason).inc(n)

    def alert_done(self, outcome: str) -> None:
        """Record one delivery attempt of one alert to one channel."""
        if outcome not in ALERT_OUTCOMES:
            raise ValueError(f"unknown alert outcome {outcome!r}; expected one of {ALERT_OUTCOMES}")
        self.alerts.labels(outcome).inc()

    def set_outbox_depth(self, n: int) -> None:
        self.outbox_depth.set(n)

    def outbox_depth_from(self, callback: Callable[[], float]) -> None:
        """Read the outbox depth from `callback` at every scrape instead of pushing it.

        A failing callback reports NaN rather than breaking the whole exposition.
        """

        def read() -> float:
            try:
                return float(callback())
            except Exception:
                return math.nan

        self.outbox_depth.set_function(read)

    def set_scheduler_lag(self, seconds: float) -> None:
        self.scheduler_lag.set(max(0.0, seconds))

    def set_sources_failing(self, n: int) -> None:
        self.sources_failing.set(n)

    def set_sources_malformed(self, n: int) -> None:
        self.sources_malformed.set(n)

    def render(self) -> bytes:
        """The text exposition format, for `/metrics`; every series labelled with the worker."""
        if self.worker is None:
            return generate_latest(self.registry)
        return generate_latest(_Labelled(self.registry, {"worker": self.worker}))


class _Labelled:
    """A registry whose every sample gets `labels` too (what generate_latest reads: collect)."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [s._replace(labels={**s.labels, **self.labels})
                                for s in family.samples]  # fmt: skip
            yield labelled
