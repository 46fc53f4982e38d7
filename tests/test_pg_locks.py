"""A worker paused inside the cluster's write lock holds up nobody for long (PostgreSQL).

A worker stopped (SIGSTOP, a paused VM) while it stores a poll keeps its session and the
advisory lock as long as its TCP link stays up. Alert claims take a lock of their own, so
sending goes on meanwhile; the server ends a session idle in its transaction past
`idle_in_transaction_session_timeout` (60 s by default; a URL's own `options` win, as here:
3 s), and the others' polls are stored then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.models import Article, Candidate, GoodPoll, Source
from monitor.store import open_store

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
HOLDER = textwrap.dedent(
    """
    import sys, time
    from monitor.store import open_store
    store = open_store(sys.argv[1])
    with store.serialized(), store.immediate():  # as a save_poll of new articles does
        print("locked", flush=True)
        time.sleep(120)
    """
)


def paused_holder(url: str) -> subprocess.Popen:
    """A worker stopped while it holds the write lock (its session and TCP link up)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGSTOP)
    return holder


def test_a_worker_paused_in_the_write_lock_is_cut_off_and_sends_go_on(pg_url: str) -> None:
    holders = []
    with open_store(pg_url) as store:
        store.sync_sources([Source("wire", "http://wire.example/")], NOW)
        try:
            holders.append(paused_holder(pg_url))
            # sending is not held up: claims take a lock of their own (sharing the write lock,
            # this claim would fail after the 30 s a worker waits for it)
            assert store.claim_alerts(NOW, NOW + timedelta(minutes=5)) == []
            holders.pop().kill()  # its connection closes: the lock goes with it
            # paused for good: the server cuts its session off (after 3 s, from the URL), and
            # a poll with a new article is stored (else: no lock within 30 s, StorageError)
            short = f"{pg_url}?options=-c%20idle_in_transaction_session_timeout%3D3000"
            holders.append(paused_holder(short))
            article = Article("wire", "g1", "https://wire.example/1", "Talks resume", "", "")
            poll = GoodPoll("wire", NOW, NOW, "http://wire.example/")
            saved = store.save_poll(poll, [Candidate(article)])
            assert len(saved.new_ids) == 1 and store.count_articles() == 1
        finally:
            for holder in holders:
                holder.kill()
                holder.wait(10)
