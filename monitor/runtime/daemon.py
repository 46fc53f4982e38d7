"""The long-running service: APScheduler ticks drive polls, outbox drains and housekeeping.

Why ticks instead of one job per source: each source's next poll time lives in the database, so
a restart resumes the schedule instead of hammering every source at once, and thousands of
sources cost one cheap query per tick. A poll runs as its own task with a deadline, so a hung
source never blocks the schedule or the delivery of alerts; a lease in the database keeps two
polls of one source from overlapping. SIGTERM/SIGINT stop cleanly, SIGHUP (or an edit of the
config file) reloads: a valid config takes effect at once, an invalid one is logged and the old
one keeps running.
Leases and crashes: see `monitor.service.lock`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.clock import Clock, SystemClock
from monitor.config import loader as config_mod
from monitor.errors import ConfigError, MonitorError
from monitor.runtime import logs as logs
from monitor.runtime.healthz import HealthServer, start_health_server
from monitor.runtime.process import LooseThreads
from monitor.service.monitor import Monitor

log = logs.get_logger("monitor.daemon")

TICK = 1.0  # seconds between scheduler ticks (claim due sources, drain the outbox)
WATCH = 2.0  # seconds between looks at the config file's mtime and size
STOP_GRACE = 7.0  # in-flight work gets this long after SIGTERM; the rest of the 10 s is closing


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
        self._last_tick = self.clock.now()
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
        monitor = self.monitor = Monitor(config, clock=self.clock)
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
        fresh = (self.clock.now() - self._last_tick).total_seconds() < 30
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
