"""What the long-running process needs from the OS beyond the database lock (that is
`monitor.service.lock`): an executor whose stuck threads never hold the process at exit."""

from __future__ import annotations

import concurrent.futures
import os
import threading


class LooseThreads(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (parsing, Apprise sends) with daemon threads, never joined.

    A send still stuck when the stop deadline passes must not hold the process past it (the
    stock executor is joined at exit); `busy` counts such jobs, and `Daemon.run` then exits
    hard, because Apprise's own worker threads would be joined too. The stuck send's row stays
    leased and goes out again after restart. A ThreadPoolExecutor only because asyncio insists.
    """

    def __init__(self, workers: int = min(32, (os.cpu_count() or 1) + 4)) -> None:
        super().__init__(max_workers=1)
        self._slots = threading.BoundedSemaphore(workers)
        self.busy = 0

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass  # nothing to wait for: see the class docstring

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: concurrent.futures.Future = concurrent.futures.Future()

        def work() -> None:
            with self._slots:
                if not future.set_running_or_notify_cancel():
                    return
                self.busy += 1  # a racy count is fine: read once, at exit
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the awaiting coroutine
                    future.set_exception(exc)
                finally:
                    self.busy -= 1

        threading.Thread(target=work, name="monitor-worker", daemon=True).start()
        return future
