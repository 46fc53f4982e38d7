"""The long-running service: APScheduler ticks drive polls, outbox drains and housekeeping.

Why ticks instead of one job per source: each source's next poll time lives in the database, so
a restart resumes the schedule instead of hammering every source at once, and thousands of
sources cost one cheap query per tick. A poll runs as its own task with a deadline, so a hung
source never blocks the schedule or the delivery of alerts; a lease in the database keeps two
polls of one source from overlapping. SIGTERM/SIGINT stop cleanly, SIGHUP (or an edit of the
config file) reloads: a valid config takes effect at once, an invalid one is logged and the old
one keeps running.
Leases and crashes: see `monitor.service.lock`.

What the log says at info: "daemon started", then, once the start-up's polls are done, when the
next poll is ("next poll in 4m 58s: 12 of 12 sources due by 10:21:25"), then one "poll cycle"
line per `[monitor] interval` with polls in it (service/tally.py); each poll's own "polled"
line is at debug, a failed one at warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.clock import Clock, SystemClock
from monitor.config import loader as config_mod
from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.runtime import logs as logs
from monitor.runtime.healthz import HealthServer, is_loopback, start_health_server
from monitor.runtime.process import LooseThreads
from monitor.service.monitor import Monitor
from monitor.service.tally import PollTally
from monitor.store import describe
from monitor.text import format_size

log = logs.get_logger("monitor.daemon")

TICK = 1.0  # seconds between scheduler ticks (claim due sources, drain the outbox)
WATCH = 2.0  # seconds between looks at the config file's mtime and size
STOP_GRACE = 7.0  # in-flight work gets this long after SIGTERM; the rest of the 10 s is closing
NEXT_WINDOW = 60.0  # "N sources due by": those due within this many seconds of the next poll


class Daemon:
    """`news-monitor run`: the Monitor under APScheduler, signals, reloads and health.

    Every job is a coroutine: AsyncIOScheduler runs plain functions in worker threads, where
    the store's SQLite connection and `asyncio.create_task` cannot be used.
    """

    def __init__(self, config_path: Path, *, clock: Clock | None = None) -> None:
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.stopping = asyncio.Event()
        self._config_stamp = self._stamp()
        self.monitor: Monitor | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.health: HealthServer | None = None
        self._drain_task: asyncio.Task | None = None
        self._announce_task: asyncio.Task | None = None
        self._last_tick = self.clock.now()
        self.exit_code = 0  # 1 once the database file is lost (see tick)
        self._away_since: datetime | None = None  # the database stopped answering then

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
        monitor = self.monitor = Monitor(config, clock=self.clock)
        if not await self._serve_health(config):
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
        for job, every in (("prune", 3600), ("check_sources", 60)):
            args = [job, every]
            scheduler.add_job(self.housekeeping, "interval", args, id=job, seconds=every, **options)
        every = config.settings.interval  # the "poll cycle" line
        scheduler.add_job(self.summary, "interval", seconds=every, id="summary", **options)
        scheduler.start()
        log.info(
            "daemon started",
            worker=config.settings.worker,
            sources=len(config.sources),
            rules=len(config.rules),
            database=describe(config.settings.database),
            max_bytes=format_size(config.settings.max_bytes),
            log_level=config.settings.log_level or "info",
        )
        await self.tick()
        self._announce_task = asyncio.create_task(self.announce_next_poll(), name="announce")
        await self.stopping.wait()
        await self.shutdown()
        if workers.busy:  # everything is recorded and closed: do not wait for stuck threads
            log.warning("exiting with work still stuck in threads", jobs=workers.busy)
            logging.shutdown()
            os._exit(self.exit_code)
        return self.exit_code

    async def _serve_health(self, config: config_mod.Config) -> bool:
        """Start `/healthz` and `/metrics` when `health_port` is set; False if it cannot bind.
        `health_host` beyond loopback is the user's (or the image's) explicit choice: allowed,
        with a warning, since the endpoint has no authentication."""
        s = config.settings
        if not s.health_port or self.monitor is None:
            return True
        try:
            self.health = await start_health_server(
                s.health_host, s.health_port, metrics=self.monitor.metrics, check=self.check,
                allow_remote=True,
            )  # fmt: skip
        except OSError as exc:
            log.error("cannot serve /healthz", host=s.health_host, port=s.health_port,
                      error=str(exc))  # fmt: skip
            return False
        if not is_loopback(s.health_host):
            log.warning(
                "/healthz and /metrics are reachable from the network, without authentication",
                url=self.health.url,
            )
        return True

    async def tick(self) -> None:
        """Start due polls; measure how late the scheduler runs (lag). A database file deleted or
        replaced (Store.lost) stops us with exit status 1, for systemd or Docker to restart us."""
        now = self.clock.now()
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
        except StorageError as exc:
            self._database_away(exc)
        except MonitorError:
            log.exception("cannot start polls")
        else:
            self._database_back()

    def _database_away(self, exc: StorageError) -> None:
        """One line when the database stops answering (a server restarting), not one a tick:
        polls and sends wait for it, and /healthz says why meanwhile."""
        if self._away_since is None:
            self._away_since = self.clock.now()
            log.error("database unavailable: polls and sends wait for it", error=str(exc))

    def _database_back(self) -> None:
        if self._away_since is not None:
            seconds = (self.clock.now() - self._away_since).total_seconds()
            self._away_since = None
            log.info("database available again", seconds_away=round(seconds, 1))

    async def announce_next_poll(self) -> None:
        """Once the start-up's polls are done (or their deadline passed), say when the next
        poll is: the log is where someone who just started the daemon looks."""
        monitor = self.monitor
        if monitor is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + monitor.poll_deadline() + 5  # real seconds, whatever the clock
        while monitor.inflight and loop.time() < deadline and not self.stopping.is_set():
            await asyncio.sleep(0.2)
        if self.stopping.is_set():
            return
        try:
            times = monitor.store.next_polls()
        except MonitorError:
            log.exception("cannot read the next poll times")
            return
        message, fields = next_poll_message(
            times, self.clock.now(), monitor.config.settings.timezone
        )
        log.info(message, **fields)

    async def summary(self) -> None:
        """One "poll cycle" line at info for the polls since the last one (none: no line)."""
        if self.monitor is None or self.stopping.is_set():
            return
        tally, self.monitor.tally = self.monitor.tally, PollTally()
        if tally.polls:
            log.info("poll cycle", **tally.fields())

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
        except StorageError as exc:
            self._database_away(exc)
        except MonitorError:
            log.exception("cannot drain the outbox")

    async def housekeeping(self, job: str, every: float) -> None:
        """Retention ("prune") and source health ("check_sources"), once per `every` seconds
        across every worker on the database (Store.claim_job; a little early, so the next
        worker's timer finds it due): a failure is logged, and the job runs again at its
        next time."""
        monitor = self.monitor
        if monitor is not None and not self.stopping.is_set() and not monitor.writer.busy:
            try:
                now = self.clock.now()
                won = monitor.store.claim_job(job, now, now + timedelta(seconds=every * 0.9))
                if job == "check_sources":  # every worker's gauges; the winner's alerts
                    monitor.check_sources(announce=won)
                elif won:
                    getattr(monitor, job)()
            except StorageError as exc:
                self._database_away(exc)
            except MonitorError:
                log.exception("housekeeping failed", job=job)

    async def check(self) -> dict[str, bool | str]:
        alive = self.scheduler is not None and self.scheduler.running
        fresh = (self.clock.now() - self._last_tick).total_seconds() < 30
        store = self.monitor.store if self.monitor is not None else None
        # while the writer stores a poll, the write lock is ours: the database is fine
        busy = self.monitor is not None and self.monitor.writer.busy
        database: bool | str = False
        if store is not None:  # failing: why (a file lost, a server away: its URL, no password)
            database = store.lost() or busy or store.write_problem() or True
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
        old = self.monitor.config.settings
        try:
            self.monitor.apply(config)
        except MonitorError:
            log.exception("config reload failed; keeping the running config", cause=cause)
            return
        log.info(
            "config reloaded", cause=cause, sources=len(config.sources), rules=len(config.rules)
        )
        self._relog(old, config.settings)
        if self.scheduler is not None and old.interval != config.settings.interval:
            self.scheduler.reschedule_job(
                "summary", trigger="interval", seconds=config.settings.interval
            )

    @staticmethod
    def _relog(old: config_mod.Settings, new: config_mod.Settings) -> None:
        """A reload that changed `log_level` or `timezone` changes the log lines at once."""
        level = new.log_level or "info"
        if (old.log_level or "info", old.timezone) != (level, new.timezone):
            logs.reconfigure(level=level, timezone=new.timezone)
            log.info("log settings changed", log_level=level, timezone=new.timezone)

    async def shutdown(self) -> None:
        """Finish in-flight polls and the drain within STOP_GRACE, cancel what is left.

        A cancelled poll leaves no trace but its lease; a cancelled send may have reached the
        channel without being recorded, and is sent again after restart (at least once).
        """
        monitor = self.monitor
        log.info("stopping", polls=sorted(monitor.inflight) if monitor else [])
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._announce_task is not None:
            self._announce_task.cancel()
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


def next_poll_message(
    times: list[datetime | None], now: datetime, timezone: str
) -> tuple[str, dict[str, object]]:
    """The start-up line, "next poll in 4m 58s: 12 of 12 sources due by 10:21:25" (wall time
    of `timezone`), and its fields; `times`: each enabled source's next poll (None: now)."""
    if not times:
        return "no enabled source: nothing to poll", {"sources": 0}
    soonest = max(now, min(t or now for t in times))
    until = soonest + timedelta(seconds=NEXT_WINDOW)
    due = sum(1 for t in times if (t or now) <= until)
    by = until.astimezone(ZoneInfo(timezone)).strftime("%H:%M:%S")
    wait = span((soonest - now).total_seconds())
    fields: dict[str, object] = {"next_poll": soonest.isoformat(), "due": due}
    when = "next poll now" if wait == "now" else f"next poll in {wait}"
    return f"{when}: {due} of {len(times)} sources due by {by}", fields


def span(seconds: float) -> str:
    """A wait in its two largest units: "4m 58s", "1h 5m", "2d", "12s"; "now" for none."""
    left = round(seconds)
    if left <= 0:
        return "now"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for (unit, size), (small_unit, small_size) in zip(units, [*units[1:], ("", 1)], strict=True):
        if left >= size:
            big, small = left // size, left % size // small_size
            return f"{big}{unit} {small}{small_unit}" if small and small_unit else f"{big}{unit}"
    return "now"
