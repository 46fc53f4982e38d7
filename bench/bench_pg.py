"""Workers sharing one PostgreSQL: throughput with 1, 2 and 4 `news-monitor run` workers, and
the cost of a poll against the SQLite store, measured in one run.

Run: `python bench/bench_pg.py` (2,000 feeds x 20 items; ~10 minutes), or
`python bench/bench_pg.py --feeds 500 --workers 1,2 --steady 30` for a quick look. Needs
Debian's postgresql binaries (a throwaway cluster is made as tests/pg.py makes it).

Each row is a fresh database and a fresh feed server (bench/_feeds.py, its own process): the
workers start together on it, every feed is new (the cold cycle: fetch, parse, match, store
every item) until each feed has been served once; then, after `--steady` more seconds of polls
answered 304, the workers are stopped. CPU is /proc/PID/stat utime+stime of the worker
processes (all threads), and of the PostgreSQL server's processes apart. Printed: cold-cycle
wall time and feeds per wall second (the throughput that should grow with workers up to the
2 cores), feeds per CPU-second of the workers and of workers + server (the efficiency, which
should hold), and the steady state's CPU ms per poll. The SQLite row (one worker) is the
baseline of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _feeds  # noqa: E402
import _procs  # noqa: E402
from _procs import PY, Server, proc_cpu  # noqa: E402

from tests.pg import PgServer  # noqa: E402

NEWS_MONITOR = Path(PY).with_name("news-monitor")
CONCURRENCY = 16


def server_pids(pg: PgServer) -> list[int]:
    """The postmaster and its children (backends, background workers)."""
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        # exited: its CPU is not counted (pooled connections rarely exit)
        with contextlib.suppress(OSError, IndexError):
            total += proc_cpu(pid)
    return total


def run_row(args: argparse.Namespace, pg: PgServer | None, workers: int, work: Path) -> dict:
    """One row: `workers` workers on a fresh database (PostgreSQL, or SQLite when pg is None)."""
    server = Server(args.feeds, args.items)
    database = pg.create_database() if pg else str(work / "monitor.db")
    procs: list[subprocess.Popen] = []
    try:
        cfg = work / "monitor.toml"
        _feeds.write_config(cfg, database=database, base_url=server.base, feeds=args.feeds,
                            interval=f"{args.interval:g}s", concurrency=CONCURRENCY,
                            rules=args.rules, log_level="warning")  # fmt: skip
        for w in range(workers):
            log = open(work / f"worker-{w}.log", "w")  # noqa: SIM115  # closed with the process
            env = {**os.environ, "NEWS_MONITOR_WORKER": f"bench-{w}"}
            cmd = [str(NEWS_MONITOR), "--config", str(cfg), "run"]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                          env=env))  # fmt: skip
        pg_pids = server_pids(pg) if pg else []
        start, cpu0, db0 = time.monotonic(), cpu_of([p.pid for p in procs]), cpu_of(pg_pids)
        deadline = start + args.cold_timeout
        while server.stats()["requests"] < args.feeds or _busy(procs, pg_pids):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"cold cycle did not end: see {work}/worker-*.log")
            time.sleep(1.0)
        cold = time.monotonic() - start
        cpu1, db1 = cpu_of([p.pid for p in procs]), cpu_of(server_pids(pg) if pg else [])
        polls0 = server.stats()["requests"]
        time.sleep(args.steady)
        polls = server.stats()["requests"] - polls0
        cpu2, db2 = cpu_of([p.pid for p in procs]), cpu_of(server_pids(pg) if pg else [])
        return {
            "backend": "postgresql" if pg else "sqlite", "workers": workers, "cold_s": cold,
            "cold_cpu": cpu1 - cpu0, "cold_db": db1 - db0, "polls": polls,
            "steady_cpu": cpu2 - cpu1, "steady_db": db2 - db1,
        }  # fmt: skip
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.close()
        if pg:
            pg.drop_database(database)


def _busy(procs: list[subprocess.Popen], pg_pids: list[int]) -> bool:
    """Still storing the last polls? (more than half a core over a second)"""
    before = cpu_of([p.pid for p in procs] + pg_pids)
    time.sleep(1.0)
    return cpu_of([p.pid for p in procs] + pg_pids) - before > 0.5


def print_rows(rows: list[dict], feeds: int) -> None:
    base = rows[0]
    print(f"\n{'backend':<11}{'workers':>8}{'cold s':>8}{'feeds/s':>9}{'x base':>8}"
          f"{'feeds/CPU-s':>12}{'(+db)':>8}{'steady polls':>13}{'ms/poll':>8}{'(+db)':>7}"
          f"{'x sqlite':>9}")  # fmt: skip
    base_ms = (base["steady_cpu"] + base["steady_db"]) * 1000 / max(base["polls"], 1)
    for r in rows:
        rate = feeds / r["cold_s"]
        per_cpu = feeds / r["cold_cpu"]
        per_all = feeds / (r["cold_cpu"] + r["cold_db"])
        ms = r["steady_cpu"] * 1000 / max(r["polls"], 1)
        ms_all = (r["steady_cpu"] + r["steady_db"]) * 1000 / max(r["polls"], 1)
        print(f"{r['backend']:<11}{r['workers']:>8}{r['cold_s']:>8.1f}{rate:>9.1f}"
              f"{rate / (feeds / base['cold_s']):>7.2f}x{per_cpu:>12.1f}{per_all:>8.1f}"
              f"{r['polls']:>13}{ms:>8.2f}{ms_all:>7.2f}{ms_all / base_ms:>8.2f}x")  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--workers", default="1,2,4", help="worker counts on PostgreSQL")
    p.add_argument("--interval", type=float, default=60.0, help="s between polls of a feed")
    p.add_argument("--steady", type=float, default=60.0, help="s of 304 polls measured")
    p.add_argument("--rules", default="shipped")
    p.add_argument("--cold-timeout", type=float, default=900.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    _procs.compile_package()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pg = PgServer().start()
    work = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    print(f"bench_pg: {args.feeds} feeds x {args.items} items, interval {args.interval:g}s, "
          f"{args.steady:g}s steady; {os.cpu_count()} CPUs; rows: sqlite x1 (baseline), "
          f"postgresql x {args.workers}")  # fmt: skip
    rows = []
    try:
        rows.append(run_row(args, None, 1, work))
        for n in (int(w) for w in args.workers.split(",")):
            (work / "monitor.toml").unlink(missing_ok=True)
            rows.append(run_row(args, pg, n, work))
            print(f"  done: postgresql x{n}", flush=True)
        print_rows(rows, args.feeds)
        print(
            "feeds/s: cold-cycle throughput (wall); feeds/CPU-s: workers' CPU (+db: and the "
            "server's); ms/poll: steady state, 304 polls; x sqlite: (+db) against SQLite's"
        )
        return rows
    finally:
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
