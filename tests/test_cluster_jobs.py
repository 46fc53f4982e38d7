"""Housekeeping once per period across every worker on a database (`Store.claim_job`).

Retention and the source-health check run on each worker's timer; only the worker that moves
the job's next run from the past wins the period. Several handles (as several workers have)
race for it at the same instant: exactly one wins, on both backends.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from monitor.store import open_store
from tests.conftest import T0

WORKERS = 4


def race(database: str | Path, job: str, now_offset: float) -> list[bool]:
    """Every worker asks for `job` at T0 + `now_offset` s at once; who won."""
    barrier = threading.Barrier(WORKERS, timeout=30)
    won: list[bool] = []
    lock = threading.Lock()
    now = T0 + timedelta(seconds=now_offset)

    def worker() -> None:
        with open_store(database) as store:
            barrier.wait()
            result = store.claim_job(job, now, now + timedelta(seconds=54))
        with lock:
            won.append(result)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == WORKERS
    return won


def test_one_worker_runs_each_period_of_a_job(database: str | Path) -> None:
    with open_store(database):
        pass  # made (and migrated) before the race, as a running worker has it
    assert sorted(race(database, "check_sources", 0)) == [False] * (WORKERS - 1) + [True]
    # within the period nobody runs it again; once it is over, one worker does
    assert race(database, "check_sources", 30) == [False] * WORKERS
    assert sorted(race(database, "check_sources", 60)) == [False] * (WORKERS - 1) + [True]
    # jobs are apart: retention's period is its own
    assert sorted(race(database, "prune", 60)) == [False] * (WORKERS - 1) + [True]
