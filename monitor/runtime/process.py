"""What one monitor process needs from the OS: a database lock file and loose worker threads.

Leases and crashes: a process killed mid-poll or mid-send leaves leases in the database. Every
process that uses a database file holds a shared `flock` on `<database>.lock` for its lifetime
(the kernel drops it when the process dies, SIGKILL included). A process that can take that lock
exclusively at start (or at stop) is the only one alive on the file, so every lease it finds was
left by a dead process, and it hands them back at once instead of waiting for them to expire.
With another process alive (a second daemon, a `once`), it releases nothing: its leases may be
real, and stale ones still expire (`delivery.LEASE`). flock needs a local filesystem, as WAL does.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import os
import threading
from pathlib import Path

from monitor.errors import StorageError


class LockFileError(StorageError):
    """The lock file cannot be opened; the message is the whole story (file, cause, fix)."""


def lock_database(database: Path) -> int | None:
    """Open `<database>.lock`, whose shared flock this process holds (see the module doc).

    Raises LockFileError, one line naming the file and the fix: typically the files were
    created by another user (root, once) and this one may not write them.
    """
    if str(database) == ":memory:":
        return None
    path = database.with_name(database.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        where = f"{path.parent}/"
        if exc.errno in (errno.EACCES, errno.EPERM):
            fix = f"run as the user that owns {where} or fix its permissions"
        elif exc.errno == errno.EROFS:
            fix = f"mount {where} read-write or move the database"
        else:
            fix = f"check that {where} is a writable local directory"
        reason = (exc.strerror or str(exc)).lower()
        raise LockFileError(f"cannot open lock file {path}: {reason} — {fix}") from None


def alone(lock: int | None) -> bool:
    """Try the lock exclusively, then share it again: True if no other process held it.

    flock's conversion is not atomic: another process may slip in between, which is harmless
    because we ask only while we hold no lease.
    """
    if lock is None:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = True
    except BlockingIOError:
        result = False
    fcntl.flock(lock, fcntl.LOCK_SH)
    return result


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
