"""The Monitor: one object that owns the store, the fetcher, the rules and the alert plan.

The daemon (runtime) and the CLI drive it; it knows nothing about signals, HTTP or scheduling ticks.
Time comes from the `Clock` it is given, so a test or a replay of old snapshots runs it at their
own instants.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog

from monitor import secrets
from monitor.alerts.plan import AlertPlanner
from monitor.clock import Clock, SystemClock
from monitor.config import loader as config_mod
from monitor.delivery import texts
from monitor.delivery.drain import drain_outbox
from monitor.errors import MonitorError, StorageError
from monitor.ingest.fulltext import FullText
from monitor.models import DeliveryPolicy, DrainResult, Message, Pending, PollResult, Source
from monitor.service import source_health as source_health
from monitor.service.allocator import tune_malloc
from monitor.service.factories import make_fetcher, make_ruleset
from monitor.service.lock import alone, lock_database
from monitor.service.metrics import Metrics
from monitor.service.pipeline import ANALYSE_SLOTS, poll_failed, poll_source
from monitor.service.tally import PollTally
from monitor.store import open_store
from monitor.store.late import LateWrites
from monitor.store.writer import Writer
from monitor.stories.lexicon import load_lexicon

log = structlog.stdlib.get_logger("monitor.service")

# settings a reload cannot change in a running daemon (they shape long-lived objects)
RESTART_ONLY = ("database", "health_port", "health_host", "timeout", "max_bytes", "concurrency")
RESTART_ONLY += ("per_host",)
INFLIGHT_PER_SLOT = 4  # polls started per fetch slot (`concurrency`): see start_due_polls


def next_digest_time(cron: str, now: datetime, timezone: str) -> datetime:
    """When a digest rule's next summary goes out (APScheduler's cron arithmetic)."""
    from apscheduler.triggers.cron import CronTrigger  # ~30 ms: only when a rule has a digest

    trigger = CronTrigger.from_crontab(cron, timezone=timezone)
    fire = trigger.get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire else now


class Monitor:
    """Config, store, fetcher and rules of one running monitor; used by `run` and `once`."""

    def __init__(
        self,
        config: config_mod.Config,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        tune_malloc()  # before the polls' threads start: see service/allocator.py
        self.config = config
        self.clock = clock or SystemClock()
        self._index(config)
        self.planner = self._make_planner(config)
        self.metrics = metrics or Metrics(worker=config.settings.worker)
        self._label_sources(config)
        self.tally = PollTally()  # polls since the daemon's last "poll cycle" line
        self.store = open_store(config.settings.database)
        self._lock = lock_database(config.settings.database)
        self.writer = Writer(config.settings.database)  # polls' writes, off the event loop
        self.ruleset = make_ruleset(config.rules)
        self.lexicon = load_lexicon(config.settings.lexicon)
        self.fetcher = make_fetcher(config.settings)
        self.analysing = asyncio.Semaphore(ANALYSE_SLOTS)  # bodies parsed at once, all polls
        # article pages; keeps robots.txt from poll to poll
        self.fulltext = FullText(parsing=self.analysing)
        self.polling = asyncio.Semaphore(config.settings.concurrency)  # see `poll`
        self.inflight: dict[str, asyncio.Task] = {}
        self.leases: dict[str, datetime] = {}  # when the lease of each poll in flight ends
        self.late = LateWrites()  # what the database missed while it was away (store/late.py)
        self._drain_lock = asyncio.Lock()
        self.stopping = asyncio.Event()  # set by the daemon on SIGTERM: drains hand rows back
        self.storage_error: str | None = None  # the last poll that could not be stored
        self.store.sync_sources(config.sources, self.clock.now())
        self.release_dead_leases("start")

    def _index(self, config: config_mod.Config) -> None:
        """Sources and rules by name: a poll or an alert looks one up, thousands of times."""
        self.sources_by_name = {s.name: s for s in config.sources}
        self.rules_by_name = {r.name: r for r in config.rules}

    def _make_planner(self, config: config_mod.Config) -> AlertPlanner:
        """The alert planner of these rules; the store calls its `plan` inside a poll's write."""
        zone = config.settings.timezone
        return AlertPlanner(config.rules, zone, clock=self.clock, next_digest=next_digest_time)

    async def close(self) -> None:
        await self.fetcher.close()
        self.writer.close()
        self.store.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def release_dead_leases(self, when: str) -> None:
        """Hand back leases when no other process uses the database (see the module doc)."""
        if not alone(self._lock):
            return
        sources, alerts_ = self.store.release_leases()
        if sources or alerts_:
            log.info("released leases", when=when, sources=sources, alerts=alerts_)

    # -- config --------------------------------------------------------------------------

    def apply(self, config: config_mod.Config) -> None:
        """Take a new, already validated config without a restart (except RESTART_ONLY)."""
        old, new = self.config.settings, config.settings
        if changed := [k for k in RESTART_ONLY if getattr(old, k) != getattr(new, k)]:
            log.warning("these settings take effect after a restart", settings=changed)
        self.ruleset = make_ruleset(config.rules)
        self.store.sync_sources(config.sources, self.clock.now())
        secrets.remember(config.secrets)
        self.config = config
        self._index(config)
        self._label_sources(config)
        self.planner = self._make_planner(config)

    def _label_sources(self, config: config_mod.Config) -> None:
        """Per-source metric series, only where /metrics serves them (`health_port`): ~80 us a
        source, 0.8 s of every `once` over 10,000 sources that nobody scrapes."""
        if config.settings.health_port is not None:
            self.metrics.set_sources(s.name for s in config.sources if s.enabled)

    @property
    def policy(self) -> DeliveryPolicy:
        s = self.config.settings
        return DeliveryPolicy(
            channels=self.config.channels,
            rules={r.name: r for r in self.config.rules},
            timezone=s.timezone,
            max_attempts=s.max_attempts,
            rate_limit=s.rate_limit,
            rate_limits=self.config.rate_limits,
        )

    # -- polling -------------------------------------------------------------------------

    def poll_deadline(self) -> float:
        """A whole poll (fetch, parse, store) may take the fetch timeout plus parsing time."""
        return self.config.settings.timeout * 2 + 30.0

    async def poll(self, name: str) -> PollResult | None:
        source = self.sources_by_name.get(name)
        if source is None:
            return None
        # a poll holds its body, then its articles, until they are stored: `concurrency` polls
        # at once, or every fetched body of `once` waited here for a parse slot together
        async with self.polling:
            started = self.clock.now()
            try:
                async with asyncio.timeout(self.poll_deadline()):
                    result = await poll_source(
                        source,
                        fetcher=self.fetcher,
                        store=self.store,
                        rules=self.ruleset,
                        now=started,
                        plan=self.planner.plan,
                        window=self.config.settings.story_window,
                        lexicon=self.lexicon,
                        writes=self.writer,
                        fulltext=self.fulltext,
                        analysing=self.analysing,
                        rule_config=self.rules_by_name,
                    )
            except TimeoutError:
                result = await self._poll_failed(source, started, "poll cancelled at its deadline")
            except StorageError as exc:  # disk full, read-only: `once` exits 1 on it
                self.storage_error = str(exc)
                result = await self._poll_failed(source, started, str(exc))
            except MonitorError as exc:
                result = await self._poll_failed(source, started, str(exc))
            except Exception as exc:  # one bad source must never take the daemon down
                log.exception("poll crashed", source=name)
                result = await self._poll_failed(source, started, f"internal error: {exc!r}")
        elapsed = (self.clock.now() - started).total_seconds()
        found, items = len(result.found), result.new + result.edited
        self.metrics.poll_done(result.outcome, elapsed, items=items, new=result.new, matches=found,
                               source=name)  # fmt: skip
        self.metrics.items_skipped(result.skipped_items)
        self.metrics.matches_held(result.held)
        self.tally.add(result, started, self.clock.now())
        level = log.warning if result.outcome == "error" else log.debug  # info: the cycle's line
        level("polled", source=name, outcome=result.outcome, new=result.new, matches=found,
              error=result.error, seconds=round(elapsed, 3))  # fmt: skip
        return result

    async def _poll_failed(self, source: Source, started: datetime, error: str) -> PollResult:
        """A poll that ended outside the pipeline's own error handling (deadline, crash,
        storage): recorded like any failed poll; if the database is away, the source is handed
        back once it is (within the lease), due at once: polled again then, not after the
        lease, and not counted against the feed."""
        try:
            errors = self.store.source_state(source.name).consecutive_errors
            return await poll_failed(self.writer, source, error, started, errors)
        except StorageError:  # the database's fault, not the feed's: due again at once
            if (lease := self.leases.get(source.name)) is not None:
                self.late.add(lease, partial(self.store.release_source, source.name, started))
        except MonitorError:
            log.exception("cannot record poll failure", source=source.name)
        return PollResult(source.name, "error", error=error)

    def start_due_polls(self) -> int:
        """Start a task for every due source not already being polled; returns how many. While
        the writer stores a big poll, claims (writes) wait for the next tick.

        At most INFLIGHT_PER_SLOT x `concurrency` polls are started (claimed) at once; the
        other due sources wait in the database, unclaimed, oldest first, so a claimed poll
        starts well within its lease. Claiming 1,000 a tick instead, 10,000 sources due at once
        (first start, restart after a pause) became 10,000 waiting tasks: 30 % went past their
        deadline (when it ran from the claim), the retries kept the next two cycles at 41 % and
        7 % of a core instead of 2 %, and SIGTERM went unanswered for minutes."""
        if self.writer.busy:
            return 0
        room = INFLIGHT_PER_SLOT * self.fetcher.concurrency - len(self.inflight)
        if room <= 0:
            return 0
        now = self.clock.now()
        self._catch_up(now)
        lease = now + timedelta(seconds=self.poll_deadline() + 60)
        started = 0
        for name in self.store.claim_due(now, lease, limit=room):
            if name in self.inflight:  # its lease ran out mid-poll: that poll ends it
                continue
            task = asyncio.create_task(self._poll_then_drain(name), name=f"poll:{name}")
            self.inflight[name], self.leases[name] = task, lease
            task.add_done_callback(lambda _t, n=name: self._poll_ended(n))
            started += 1
        return started

    def _catch_up(self, now: datetime) -> None:
        """The database is back (or never left): first what it missed (store/late.py)."""
        try:
            if self.late and (done := self.late.flush(now)):
                log.info("recorded what the database missed", writes=done)
        except StorageError:
            raise  # still away: the tick says so, and the writes wait
        except MonitorError as exc:  # not the database's absence: that write is given up
            log.warning("cannot record what the database missed", error=str(exc))
            self.late.drop_first()

    def _poll_ended(self, name: str) -> None:
        self.inflight.pop(name, None)
        self.leases.pop(name, None)

    async def _poll_then_drain(self, name: str) -> None:
        result = await self.poll(name)
        if result is not None and result.found:
            try:
                await self.drain()  # a new match goes out now, not at the next tick
            except MonitorError as exc:  # the database went away: the next tick's drain sends
                log.warning("cannot drain the outbox", error=str(exc))

    async def poll_everything(
        self, on_done: Callable[[PollResult | None], None] | None = None
    ) -> list[PollResult]:
        """Poll every enabled source once, concurrently; `on_done` hears of each as it ends."""

        async def one(name: str) -> PollResult | None:
            result = await self.poll(name)
            if on_done is not None:
                on_done(result)
            return result

        names = [s.name for s in self.config.sources if s.enabled]
        results = await asyncio.gather(*(one(n) for n in names))
        return [r for r in results if r is not None]

    # -- delivery ------------------------------------------------------------------------

    def digest_message(self, batch: Sequence[Pending]) -> Message:
        tz = self.config.settings.timezone
        return texts.digest_message(self.store, self.rules_by_name, batch, tz, self.clock.now())

    async def drain(self) -> DrainResult | None:
        """Send what is due; overlapping calls return at once (the next tick picks up)."""
        if self._drain_lock.locked() or self.writer.busy:  # a big save: deliver next tick
            return None
        tz = self.config.settings.timezone
        self._catch_up(self.clock.now())
        texts.complete_unsent(self.store, tz, self.clock.now())
        async with self._drain_lock:
            result = await drain_outbox(
                self.store,
                self.policy,
                now=self.clock.now,
                digest_message=self.digest_message,
                stopping=self.stopping.is_set,
                late=self.late,
            )
        for outcome in ("sent", "failed", "dead"):
            for _ in range(getattr(result, outcome)):
                self.metrics.alert_done(outcome)
        if result.failed or result.dead:
            errors = result.outcomes[:3]
            log.warning("delivery failed", failed=result.failed, dead=result.dead, errors=errors)
        self.metrics.set_outbox_depth(self.store.outbox_depth())
        return result

    def prune(self) -> int:
        """Retention (see `Store.prune`), then shrink the file if that freed much of it."""
        s, now = self.config.settings, self.clock.now()
        history = now - timedelta(seconds=s.history_retention)
        removed = self.store.prune(now - timedelta(seconds=s.retention), history)
        before, after = self.store.compact()
        if removed or after < before:
            log.info("pruned old articles", removed=removed, bytes_before=before, bytes_after=after)
        return removed

    # -- source health -------------------------------------------------------------------

    def check_sources(
        self, now: datetime | None = None, *, announce: bool = True
    ) -> list[source_health.Health]:
        """Count down sources (the gauges); with `health_channel` and `announce` (the one
        worker whose turn it is: Store.claim_job), queue one alert per down episode and one
        per recovery. The alert goes in before the episode is recorded, so a crash between the
        two repeats the same key next time, which the outbox ignores."""
        now = now or self.clock.now()
        s = self.config.settings
        report = source_health.assess(self.store.health_rows(), now, s.failing_after)
        self.metrics.set_sources_failing(sum(h.down for h in report))
        self.metrics.set_sources_malformed(sum(bool(h.enabled and h.warning) for h in report))
        if s.health_channel is None or not announce:
            return report
        by_name = {h.name: h for h in report}
        for change in source_health.changes(report):
            health = by_name[change.name]
            if change.alert:
                alert = source_health.health_alert(
                    change, health, channel=s.health_channel, timezone=s.timezone, now=now
                )
                self.store.add_alerts([alert], now)
                level = log.warning if change.kind == "down" else log.info
                level(f"source {change.kind}", source=change.name, since=str(change.since),
                      error=health.last_error if change.kind == "down" else None)  # fmt: skip
            self.store.set_down_since(change.name, change.record)
        return report
