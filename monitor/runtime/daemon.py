"""The long-running service: APScheduler ticks drive polls, outbox drains and housekeeping.

Why ticks instead of one job per source: each source's next poll time lives in the database, so
a restart resumes the schedule instead of hammering every source at once, and thousands of
sources cost one cheap query per tick. A poll runs as its own task with a deadline, so a hung
source never blocks the schedule or the delivery of alerts; a lease in the database keeps two
polls of one source from overlapping. SIGTERM/SIGINT stop cleanly, SIGHUP (or an edit of the
config file) reloads: a valid config takes effect at once, an invalid one is logged and the old
one keeps running.
Leases and crashes: see `monitor.process`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.alerts import plan as alerts
from monitor.config import loader as config_mod
from monitor.delivery import texts as outbox_texts
from monitor.delivery.drain import DeliveryPolicy, DrainResult, drain_outbox
from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.ingest.fetch import Fetcher
from monitor.models import Alert, Article, Match, Message
from monitor.rules.query import RuleSet
from monitor.runtime import logs as logs
from monitor.runtime.healthz import HealthServer, start_health_server
from monitor.runtime.metrics import Metrics
from monitor.runtime.process import LooseThreads, alone, lock_database
from monitor.service import source_health as source_health
from monitor.service.pipeline import PollResult, poll_source
from monitor.store import maintenance as store_health
from monitor.store.outbox import Outbox, Pending, release_leases
from monitor.store.sqlite import Store
from monitor.store.writer import Writer
from monitor.stories.developments import StoryContext
from monitor.stories.lexicon import load_lexicon

log = logs.get_logger("monitor.daemon")

TICK = 1.0  # seconds between scheduler ticks (claim due sources, drain the outbox)
WATCH = 2.0  # seconds between looks at the config file's mtime and size
STOP_GRACE = 7.0  # in-flight work gets this long after SIGTERM; the rest of the 10 s is closing
# settings a reload cannot change in a running daemon (they shape long-lived objects)
RESTART_ONLY = ("database", "health_port", "timeout", "max_bytes", "concurrency", "per_host")


def utcnow() -> datetime:
    return datetime.now(UTC)


def next_digest_time(cron: str, now: datetime, timezone: str) -> datetime:
    """When a digest rule's next summary goes out (APScheduler's cron arithmetic)."""
    trigger = CronTrigger.from_crontab(cron, timezone=timezone)
    fire = trigger.get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire else now


class Monitor:
    """Config, store, fetcher and rules of one running monitor; used by `run` and `once`."""

    def __init__(self, config: config_mod.Config, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self._index(config)
        self.metrics = metrics or Metrics()
        self.store = Store(config.settings.database)
        self._lock = lock_database(config.settings.database)
        self.outbox = Outbox(self.store)
        self.writer = Writer(config.settings.database)  # polls' writes, off the event loop
        self.ruleset = RuleSet((r.name, r.query) for r in config.rules if r.enabled)
        self.lexicon = load_lexicon(config.settings.lexicon)
        self.fetcher = self._make_fetcher(config)
        self.inflight: dict[str, asyncio.Task] = {}
        self._drain_lock = asyncio.Lock()
        self.stopping = asyncio.Event()  # set by the daemon on SIGTERM: drains hand rows back
        self.storage_error: str | None = None  # the last poll that could not be stored
        self.store.sync_sources(config.sources, utcnow())
        self.release_dead_leases("start")

    def _index(self, config: config_mod.Config) -> None:
        """Sources and rules by name: a poll or an alert looks one up, thousands of times."""
        self.sources_by_name = {s.name: s for s in config.sources}
        self.rules_by_name = {r.name: r for r in config.rules}

    @staticmethod
    def _make_fetcher(config: config_mod.Config) -> Fetcher:
        s = config.settings
        return Fetcher(
            timeout=s.timeout, max_bytes=s.max_bytes, concurrency=s.concurrency, per_host=s.per_host
        )

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
        sources, alerts_ = release_leases(self.store)
        if sources or alerts_:
            log.info("released leases", when=when, sources=sources, alerts=alerts_)

    # -- config --------------------------------------------------------------------------

    def apply(self, config: config_mod.Config) -> None:
        """Take a new, already validated config without a restart (except RESTART_ONLY)."""
        old, new = self.config.settings, config.settings
        if changed := [k for k in RESTART_ONLY if getattr(old, k) != getattr(new, k)]:
            log.warning("these settings take effect after a restart", settings=changed)
        self.ruleset = RuleSet((r.name, r.query) for r in config.rules if r.enabled)
        self.store.sync_sources(config.sources, utcnow())
        logs.set_secrets(config.secrets)
        self.config = config
        self._index(config)

    @property
    def policy(self) -> DeliveryPolicy:
        s = self.config.settings
        return DeliveryPolicy(
            channels=self.config.channels,
            rules={r.name: r for r in self.config.rules},
            timezone=s.timezone,
            max_attempts=s.max_attempts,
        )

    # -- polling -------------------------------------------------------------------------

    def plan(
        self, article_id: int, article: Article, match: Match, story: StoryContext | None = None
    ) -> list[Alert]:
        """The alerts a new match should queue (called inside the poll's transaction, on the
        writer thread: it must not touch `self.store`)."""
        rule = self.rules_by_name.get(match.rule)
        if rule is None:
            return []
        now = utcnow()
        tz = self.config.settings.timezone
        digest_at = next_digest_time(rule.digest, now, tz) if rule.digest else None
        return alerts.plan_alerts(
            article_id,
            article,
            match,
            rule=rule,
            source_title=article.source,
            timezone=tz,
            now=now,
            digest_at=digest_at,
            story=story,
        )

    def poll_deadline(self) -> float:
        """A whole poll (fetch, parse, store) may take the fetch timeout plus parsing time."""
        return self.config.settings.timeout * 2 + 30.0

    async def poll(self, name: str) -> PollResult | None:
        source = self.sources_by_name.get(name)
        if source is None:
            return None
        started = utcnow()
        try:
            async with asyncio.timeout(self.poll_deadline()):
                result = await poll_source(
                    source,
                    fetcher=self.fetcher,
                    store=self.store,
                    rules=self.ruleset,
                    now=started,
                    plan=self.plan,
                    window=self.config.settings.story_window,
                    lexicon=self.lexicon,
                    writes=self.writer,
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
        elapsed = (utcnow() - started).total_seconds()
        found, items = len(result.found), result.new + result.edited
        self.metrics.poll_done(result.outcome, elapsed, items=items, new=result.new, matches=found)
        self.metrics.items_skipped(result.skipped_items)
        level = log.warning if result.outcome == "error" else log.info
        level("polled", source=name, outcome=result.outcome, new=result.new, matches=found,
              error=result.error, seconds=round(elapsed, 3))  # fmt: skip
        return result

    async def _poll_failed(self, source, started: datetime, error: str) -> PollResult:
        from monitor.service import schedule as schedule

        state = self.store.source_state(source.name)
        retry = schedule.after_failure(source.interval, state.consecutive_errors + 1, started)
        try:
            url = source.shown_url
            await self.writer.call("record_failure", source.name, error, started, retry, url)
        except MonitorError:
            log.exception("cannot record poll failure", source=source.name)
        return PollResult(source.name, "error", error=error)

    def start_due_polls(self) -> int:
        """Start a task for every due source not already being polled; returns how many. While
        the writer stores a big poll, claims (writes) wait for the next tick."""
        if self.writer.busy:
            return 0
        now = utcnow()
        lease = now + timedelta(seconds=self.poll_deadline() + 60)
        started = 0
        for name in self.store.due_sources(now):
            if name in self.inflight or not self.store.claim_source(name, now, lease):
                continue
            task = asyncio.create_task(self._poll_then_drain(name), name=f"poll:{name}")
            self.inflight[name] = task
            task.add_done_callback(lambda _t, n=name: self.inflight.pop(n, None))
            started += 1
        return started

    async def _poll_then_drain(self, name: str) -> None:
        result = await self.poll(name)
        if result is not None and result.found:
            await self.drain()  # a new match goes out now, not at the next tick

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
        return outbox_texts.digest_message(self.store, self.rules_by_name, batch, tz, utcnow())

    async def drain(self) -> DrainResult | None:
        """Send what is due; overlapping calls return at once (the next tick picks up)."""
        if self._drain_lock.locked() or self.writer.busy:  # a big save: deliver next tick
            return None
        tz = self.config.settings.timezone
        outbox_texts.name_all_outlets(self.store, self.outbox, self.rules_by_name, tz, utcnow())
        async with self._drain_lock:
            result = await drain_outbox(
                self.outbox,
                self.policy,
                now=utcnow,
                digest_message=self.digest_message,
                stopping=self.stopping.is_set,
            )
        for outcome in ("sent", "failed", "dead"):
            for _ in range(getattr(result, outcome)):
                self.metrics.alert_done(outcome)
        if result.failed or result.dead:
            errors = result.outcomes[:3]
            log.warning("delivery failed", failed=result.failed, dead=result.dead, errors=errors)
        self.metrics.set_outbox_depth(self.outbox.depth())
        return result

    def prune(self) -> int:
        """Retention (see `Store.prune`), then shrink the file if that freed much of it."""
        s, now = self.config.settings, utcnow()
        history = now - timedelta(seconds=s.history_retention)
        removed = self.store.prune(now - timedelta(seconds=s.retention), history)
        before, after = store_health.compact(self.store)
        if removed or after < before:
            log.info("pruned old articles", removed=removed, bytes_before=before, bytes_after=after)
        return removed

    # -- source health -------------------------------------------------------------------

    def check_sources(self, now: datetime | None = None) -> list[source_health.Health]:
        """Count down sources; with `health_channel`, queue one alert per down episode and one
        per recovery. The alert goes in before the episode is recorded, so a crash between the
        two repeats the same key next time, which the outbox ignores."""
        now = now or utcnow()
        s = self.config.settings
        report = source_health.assess(store_health.health_rows(self.store), now, s.failing_after)
        self.metrics.set_sources_failing(sum(h.down for h in report))
        self.metrics.set_sources_malformed(sum(bool(h.enabled and h.warning) for h in report))
        if s.health_channel is None:
            return report
        by_name = {h.name: h for h in report}
        for change in source_health.changes(report):
            health = by_name[change.name]
            if change.alert:
                alert = source_health.health_alert(
                    change, health, channel=s.health_channel, timezone=s.timezone, now=now
                )
                self.outbox.add([alert], now)
                level = log.warning if change.kind == "down" else log.info
                level(f"source {change.kind}", source=change.name, since=str(change.since),
                      error=health.last_error if change.kind == "down" else None)  # fmt: skip
            store_health.set_down_since(self.store, change.name, change.record)
        return report


class Daemon:
    """`news-monitor run`: the Monitor under APScheduler, signals, reloads and health.

    Every job is a coroutine: AsyncIOScheduler runs plain functions in worker threads, where
    the store's SQLite connection and `asyncio.create_task` cannot be used.
    """

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.stopping = asyncio.Event()
        self._config_stamp = self._stamp()
        self.monitor: Monitor | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.health: HealthServer | None = None
        self._drain_task: asyncio.Task | None = None
        self._last_tick = utcnow()
        self.exit_code = 0  # 1 once the database file is lost (see tick)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def run(self, config: config_mod.Config) -> int:
        loop = asyncio.get_running_loop()
        workers = LooseThreads()
        loop.set_default_executor(workers)
        monitor = self.monitor = Monitor(config)
        if port := config.settings.health_port:
            try:
                self.health = await start_health_server(
                    "127.0.0.1", port, metrics=monitor.metrics, check=self.check
                )
            except OSError as exc:
                log.error("cannot serve /healthz", port=port, error=str(exc))
                await monitor.close()
                return 1
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        scheduler = self.scheduler = AsyncIOScheduler(timezone=UTC)
        options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
        scheduler.add_job(self.tick, "interval", seconds=TICK, id="tick", **options)
        scheduler.add_job(self.drain_soon, "interval", seconds=TICK, id="drain", **options)
        scheduler.add_job(self.watch_config, "interval", seconds=WATCH, id="watch", **options)
        for job, every in (("prune", {"hours": 1}), ("check_sources", {"minutes": 1})):
            scheduler.add_job(self.housekeeping, "interval", [job], id=job, **every, **options)
        scheduler.start()
        log.info(
            "daemon started",
            sources=len(config.sources),
            rules=len(config.rules),
            database=str(config.settings.database),
        )
        await self.tick()
        await self.stopping.wait()
        await self.shutdown()
        if workers.busy:  # everything is recorded and closed: do not wait for stuck threads
            log.warning("exiting with work still stuck in threads", jobs=workers.busy)
            logging.shutdown()
            os._exit(self.exit_code)
        return self.exit_code

    async def tick(self) -> None:
        """Start due polls; measure how late the scheduler runs (lag). A database file deleted or
        replaced (Store.lost) stops us with exit status 1, for systemd or Docker to restart us."""
        now = utcnow()
        lag = max(0.0, (now - self._last_tick).total_seconds() - TICK)
        self._last_tick = now
        if self.monitor is None or self.stopping.is_set():
            return
        if (lost := self.monitor.store.lost()) is not None:
            log.error("database file lost: stopping", reason=lost)
            self.exit_code = 1
            self.stop()
            return
        self.monitor.metrics.set_scheduler_lag(lag)
        try:
            self.monitor.start_due_polls()
        except MonitorError:
            log.exception("cannot start polls")

    def stop(self) -> None:
        self.stopping.set()
        if self.monitor is not None:
            self.monitor.stopping.set()

    async def drain_soon(self) -> None:
        """Start a drain unless one runs: a long one (a slow channel) must not hold the job,
        or APScheduler would log a skipped run every second."""
        if self.monitor is None or self.stopping.is_set():
            return
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain(), name="drain")

    async def _drain(self) -> None:
        try:
            if self.monitor is not None:
                await self.monitor.drain()
        except MonitorError:
            log.exception("cannot drain the outbox")

    async def housekeeping(self, job: str) -> None:
        """Retention ("prune") and source health ("check_sources"): a failure is logged, and
        the job runs again at its next time."""
        if self.monitor is not None and not self.stopping.is_set() and not self.monitor.writer.busy:
            try:
                getattr(self.monitor, job)()
            except MonitorError:
                log.exception("housekeeping failed", job=job)

    async def check(self) -> dict[str, bool | str]:
        alive = self.scheduler is not None and self.scheduler.running
        fresh = (utcnow() - self._last_tick).total_seconds() < 30
        store = self.monitor.store if self.monitor is not None else None
        # while the writer stores a poll, the write lock is ours: the database is fine
        busy = self.monitor is not None and self.monitor.writer.busy
        database = store is not None and (store.lost() or busy or store.writable())  # lost: why
        return {"scheduler": alive and fresh, "database": database}

    async def watch_config(self) -> None:
        if self._stamp() != self._config_stamp:
            self.reload("file change")

    def reload(self, cause: str = "request") -> None:
        """Load the config file again; keep running on the old one if it is invalid."""
        self._config_stamp = self._stamp()  # the watcher must not reload this version again
        if self.monitor is None or self.stopping.is_set():
            return
        try:
            config = config_mod.load(self.config_path)
        except ConfigError as exc:
            log.error(
                "config reload failed; keeping the running config",
                cause=cause,
                path=str(self.config_path),
                problems=exc.problems,
            )
            return
        try:
            self.monitor.apply(config)
        except MonitorError:
            log.exception("config reload failed; keeping the running config", cause=cause)
            return
        log.info(
            "config reloaded", cause=cause, sources=len(config.sources), rules=len(config.rules)
        )

    async def shutdown(self) -> None:
        """Finish in-flight polls and the drain within STOP_GRACE, cancel what is left.

        A cancelled poll leaves no trace but its lease; a cancelled send may have reached the
        channel without being recorded, and is sent again after restart (at least once).
        """
        monitor = self.monitor
        log.info("stopping", polls=sorted(monitor.inflight) if monitor else [])
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if monitor is not None:
            tasks = list(monitor.inflight.values())
            if self._drain_task is not None:
                tasks.append(self._drain_task)
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
                for task in pending:
                    task.cancel()
                if pending:
                    log.warning(
                        "cancelled at the stop deadline", tasks=[t.get_name() for t in pending]
                    )
                    await asyncio.wait(pending, timeout=1.0)
            try:
                if monitor.store.lost() is None and not monitor.writer.busy:
                    monitor.release_dead_leases("stop")
            except MonitorError:
                log.exception("cannot release leases")
        if self.health is not None:
            await self.health.stop()
        if monitor is not None:
            await monitor.close()
        log.info("stopped")
