"""The database lock file: how a process knows it is the only one alive on a database file.

Leases and crashes: a process killed mid-poll or mid-send leaves leases in the database. Every
process that uses a database file holds a shared `flock` on `<database>.lock` for its lifetime
(the kernel drops it when the process dies, SIGKILL included). A process that can take that lock
exclusively at start (or at stop) is the only one alive on the file, so every lease it finds was
left by a dead process, and it hands them back at once instead of waiting for them to expire.
With another process alive (a second daemon, a `once`), it releases nothing: its leases may be
real, and stale ones still expire (`delivery.LEASE`). flock needs a local filesystem, as WAL does.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from monitor.errors import StorageError

__all__ = ["LockFileError", "alone", "lock_database"]


class LockFileError(StorageError):
    """The lock file cannot be opened; the message is the whole story (file, cause, fix)."""


def lock_database(database: Path | str) -> int | None:
    """Open `<database>.lock`, whose shared flock this process holds (see the module doc).
    A server's database (a URL) has none: its workers are on other machines, and their leases
    expire instead.

    Raises LockFileError, one line naming the file and the fix: typically the files were
    created by another user (root, once) and this one may not write them.
    """
    if isinstance(database, str) or str(database) == ":memory:":
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
