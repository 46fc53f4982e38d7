"""Store writes off the event loop: one daemon thread with a connection of its own.

A poll with thousands of new matches takes seconds to store (copies, stories, alerts: one
transaction). On the event loop that would hold up `/healthz`, the scheduler and SIGTERM for as
long. The writer thread does it instead, on its own SQLite connection; the loop keeps reading
through the main one (WAL readers never wait for the writer) and awaits the result.

It is a daemon thread, so stopping never waits for it: a save cut short by the process exiting
is rolled back whole (WAL), and the next poll of that source does it again. While the writer is
busy, the loop's own writes (claims, deliveries, housekeeping) wait for the next tick rather
than block on the database lock (`busy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.store import Store, open_store

__all__ = ["Writer"]

_STOP = object()


class Writer:
    """Runs `Store` methods on a dedicated thread; `await writer.call("save_poll", ...)`."""

    def __init__(self, database: str | Path, *, timeout: float = 30.0) -> None:
        self._database, self._timeout = database, timeout
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._count = threading.Lock()
        self._pending = 0  # calls queued or running on the thread (a cancelled await included)

    @property
    def busy(self) -> bool:
        """Is the thread writing, or about to? Then the loop's own writes wait."""
        return self._pending > 0

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`Store.<method>(*args, **kwargs)` on the writer thread, awaited on the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._start()
        with self._count:
            self._pending += 1
        self._jobs.put((method, args, kwargs, loop, future))
        return await future

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._main, name="store-writer", daemon=True)
            self._thread.start()

    def _main(self) -> None:
        store: Store | None = None
        while (job := self._jobs.get()) is not _STOP:
            method, args, kwargs, loop, future = job
            try:
                store = store or open_store(self._database, timeout=self._timeout)
                outcome: tuple[Callable[..., Any], Any] = (
                    _set_result, getattr(store, method)(*args, **kwargs)
                )  # fmt: skip
            except BaseException as exc:  # handed to the awaiting coroutine, raised there
                outcome = (_set_exception, exc)
            with self._count:
                self._pending -= 1
            # a closed loop (RuntimeError) means nobody waits for this any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])
            # let go of the call's arguments now: a poll's articles otherwise stay alive until
            # the next call comes in, which for an idle daemon is the next poll interval
            del job, args, kwargs, outcome
        if store is not None:
            store.close()

    def close(self, wait: float = 2.0) -> None:
        """Let the thread finish what it holds (at most `wait` s: it is a daemon thread)."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join(wait)
        self._thread = None


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # the poll may have been cancelled at its deadline meanwhile
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
