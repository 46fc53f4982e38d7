"""The long-running service: APScheduler ticks drive polls, outbox drains and housekeeping.

Why ticks instead of one job per source: each source's next poll time lives in the database, so
a restart resumes the schedule instead of hammering every source at once, and thousands of
sources cost one cheap query per tick. A poll runs as its own task with a deadline, so a hung
source never blocks the schedule or the delivery of alerts; a lease in the database keeps two
polls of one source from overlapping. SIGTERM/SIGINT stop cleanly, SIGHUP (or an edit of the
config file) reloads: a valid config takes effect at once, an invalid one is logged and the old
one keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor import alerts, logs
from monitor import config as config_mod
from monitor.delivery import DeliveryPolicy, DrainResult, drain_outbox
from monitor.errors import ConfigError, MonitorError
from monitor.fetch import Fetcher
from monitor.health import HealthServer, start_health_server
from monitor.metrics import Metrics
from monitor.models import Alert, Article, Match, Message
from monitor.pipeline import PollResult, poll_source
from monitor.rules import RuleSet
from monitor.store import Store
from monitor.store_outbox import Outbox, Pending

log = logs.get_logger("monitor.daemon")

TICK = 1.0  # seconds between scheduler ticks (claim due sources, drain the outbox)
STOP_GRACE = 8.0  # in-flight work gets this long to finish after SIGTERM


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
        self.metrics = metrics or Metrics()
        self.store = Store(config.settings.database)
        self.outbox = Outbox(self.store)
        self.ruleset = RuleSet((r.name, r.query) for r in config.rules if r.enabled)
        self.fetcher = self._make_fetcher(config)
        self.inflight: dict[str, asyncio.Task] = {}
        self._drain_lock = asyncio.Lock()
        self.store.sync_sources(config.sources, utcnow())

    @staticmethod
    def _make_fetcher(config: config_mod.Config) -> Fetcher:
        s = config.settings
        return Fetcher(
            timeout=s.timeout, max_bytes=s.max_bytes, concurrency=s.concurrency, per_host=s.per_host
        )

    async def close(self) -> None:
        await self.fetcher.close()
        self.store.close()

    # -- config --------------------------------------------------------------------------

    def apply(self, config: config_mod.Config) -> None:
        """Take a new, already validated config without a restart."""
        self.ruleset = RuleSet((r.name, r.query) for r in config.rules if r.enabled)
        self.store.sync_sources(config.sources, utcnow())
        logs.set_secrets(config.secrets)
        self.config = config

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

    def plan(self, article_id: int, article: Article, match: Match) -> list[Alert]:
        """The alerts a new match should queue (called inside the poll's transaction)."""
        rule = next((r for r in self.config.rules if r.name == match.rule), None)
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
        )

    def poll_deadline(self) -> float:
        """A whole poll (fetch, parse, store) may take the fetch timeout plus parsing time."""
        return self.config.settings.timeout * 2 + 30.0

    async def poll(self, name: str) -> PollResult | None:
        source = next((s for s in self.config.sources if s.name == name), None)
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
                )
        except TimeoutError:
            result = self._poll_failed(source, started, "poll cancelled at its deadline")
        except MonitorError as exc:
            result = self._poll_failed(source, started, str(exc))
        except Exception as exc:  # one bad source must never take the daemon down
            log.exception("poll crashed", source=name)
            result = self._poll_failed(source, started, f"internal error: {exc!r}")
        elapsed = (utcnow() - started).total_seconds()
        self.metrics.poll_done(
            result.outcome,
            elapsed,
            items=result.new + result.edited,
            new=result.new,
            matches=len(result.found),
        )
        level = log.warning if result.outcome == "error" else log.info
        level(
            "polled",
            source=name,
            outcome=result.outcome,
            new=result.new,
            matches=len(result.found),
            error=result.error,
            seconds=round(elapsed, 3),
        )
        return result

    def _poll_failed(self, source, started: datetime, error: str) -> PollResult:
        from monitor import schedule

        state = self.store.source_state(source.name)
        retry = schedule.after_failure(source.interval, state.consecutive_errors + 1, started)
        try:
            self.store.record_failure(source.name, error, started, retry, source.url)
        except MonitorError:
            log.exception("cannot record poll failure", source=source.name)
        return PollResult(source.name, "error", error=error)

    def start_due_polls(self) -> int:
        """Start a task for every due source not already being polled; returns how many."""
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

    async def poll_everything(self) -> list[PollResult]:
        names = [s.name for s in self.config.sources if s.enabled]
        results = await asyncio.gather(*(self.poll(n) for n in names))
        return [r for r in results if r is not None]

    # -- delivery ------------------------------------------------------------------------

    def digest_message(self, batch: Sequence[Pending]) -> Message:
        rule = next(r for r in self.config.rules if r.name == batch[0].rule)
        items = []
        for row in batch:
            if row.article_id is None:
                continue
            article = self.store.article(row.article_id)
            match = self.store.match_for(row.article_id, row.rule)
            if article is not None and match is not None:
                items.append((article, match, article.source))
        return alerts.render_digest(
            items, rule=rule, timezone=self.config.settings.timezone, now=utcnow()
        )

    async def drain(self) -> DrainResult | None:
        """Send what is due; overlapping calls return at once (the next tick picks up)."""
        if self._drain_lock.locked():
            return None
        async with self._drain_lock:
            result = await drain_outbox(
                self.outbox, self.policy, now=utcnow, digest_message=self.digest_message
            )
        for outcome, count in (
            ("sent", result.sent),
            ("failed", result.failed),
            ("dead", result.dead),
        ):
            for _ in range(count):
                self.metrics.alert_done(outcome)
        if result.failed or result.dead:
            log.warning(
                "delivery failed",
                failed=result.failed,
                dead=result.dead,
                errors=result.outcomes[:3],
            )
        self.metrics.set_outbox_depth(self.outbox.depth())
        return result

    def prune(self) -> int:
        cutoff = utcnow() - timedelta(seconds=self.config.settings.retention)
        removed = self.store.prune(cutoff)
        if removed:
            log.info("pruned old articles", removed=removed)
        return removed


class Daemon:
    """`news-monitor run`: the Monitor under APScheduler, signals, reloads and health."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.stopping = asyncio.Event()
        self._config_stamp = self._stamp()
        self.monitor: Monitor | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.health: HealthServer | None = None
        self._last_tick = utcnow()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def run(self, config: config_mod.Config) -> int:
        monitor = self.monitor = Monitor(config)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        scheduler = self.scheduler = AsyncIOScheduler(timezone=UTC)
        options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
        scheduler.add_job(self.tick, "interval", seconds=TICK, id="tick", **options)
        scheduler.add_job(monitor.drain, "interval", seconds=TICK, id="drain", **options)
        scheduler.add_job(self.watch_config, "interval", seconds=2, id="watch", **options)
        scheduler.add_job(monitor.prune, "interval", hours=1, id="prune", **options)
        scheduler.start()
        if config.settings.health_port:
            self.health = await start_health_server(
                "127.0.0.1", config.settings.health_port, metrics=monitor.metrics, check=self.check
            )
        log.info(
            "daemon started",
            sources=len(config.sources),
            rules=len(config.rules),
            database=str(config.settings.database),
        )
        self.tick()
        await self.stopping.wait()
        await self.shutdown()
        return 0

    def tick(self) -> None:
        """Start due polls; measure how late the scheduler runs (lag)."""
        now = utcnow()
        lag = max(0.0, (now - self._last_tick).total_seconds() - TICK)
        self._last_tick = now
        if self.monitor is None or self.stopping.is_set():
            return
        self.monitor.metrics.set_scheduler_lag(lag)
        try:
            self.monitor.start_due_polls()
        except MonitorError:
            log.exception("cannot start polls")

    async def check(self) -> dict[str, bool | str]:
        alive = self.scheduler is not None and self.scheduler.running
        fresh = (utcnow() - self._last_tick).total_seconds() < 30
        database = self.monitor is not None and self.monitor.store.writable()
        return {"scheduler": alive and fresh, "database": database}

    def watch_config(self) -> None:
        stamp = self._stamp()
        if stamp != self._config_stamp:
            self._config_stamp = stamp
            log.info("config file changed", path=str(self.config_path))
            self.reload()

    def reload(self) -> None:
        if self.monitor is None:
            return
        try:
            config = config_mod.load(self.config_path)
        except ConfigError as exc:
            log.error("config reload failed; keeping the running config", problems=exc.problems)
            return
        self.monitor.apply(config)
        log.info("config reloaded", sources=len(config.sources), rules=len(config.rules))

    async def shutdown(self) -> None:
        log.info("stopping")
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        monitor = self.monitor
        if monitor is not None:
            tasks = list(monitor.inflight.values())
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
                for task in pending:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.gather(*pending, return_exceptions=True)
            async with monitor._drain_lock:  # let a delivery in progress finish recording
                pass
        if self.health is not None:
            await self.health.stop()
        if monitor is not None:
            await monitor.close()
        log.info("stopped")
