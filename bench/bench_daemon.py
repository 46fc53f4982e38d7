"""The daemon's steady state: `news-monitor run` with N unchanged sources, cycle after cycle.

Run: `python bench/bench_daemon.py` (10,000 sources, interval 5m, 3 cycles: ~20 minutes), or
`python bench/bench_daemon.py --sources 1000 --interval 1m` for a quick look (see bench/README.md).

The loopback feed server (bench/_feeds.py, its own process) serves N feeds with ETags. The daemon
is the console script a user runs, `news-monitor --config CFG run`, on a fresh database: its first
cycle stores everything (cold), after that every poll is answered 304. Every `--sample` seconds
the daemon's CPU (/proc/PID/stat utime+stime, all threads; the event loop's thread apart) and RSS
(VmRSS) are read, with the server's request count. After the cold cycle (every feed served once
and the daemon quiet again), the run is cut into `--cycles` windows of one interval each, and
printed per window: polls (requests served), CPU as % of one core, CPU ms per poll, RSS mean and
max. Targets (issue 13): below 5 % of one core and below 300 MB at 10,000 sources, 5 minutes.
`--profile FILE` runs the daemon under cProfile (event loop thread only) and prints the top.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _feeds  # noqa: E402
import _procs
from _procs import PY, Server, proc_cpu, proc_rss  # noqa: E402

NEWS_MONITOR = Path(PY).with_name("news-monitor")
CONCURRENCY = 16  # as bench_poll: all feeds share one loopback host
TARGET_CPU, TARGET_RSS = 5.0, 300.0


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic s
    cpu: float  # s, all threads
    loop: float  # s, the main (event loop) thread
    rss: float  # MB
    requests: int  # served by the feed server so far


def seconds(text: str) -> float:
    """ "300", "300s", "5m", "1h" -> seconds."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 300, 90s, 5m)")
    return float(found[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[found[2]]


def thread_cpu(pid: int) -> float:
    """CPU s of the process's main thread (the event loop: ticks, claims, fetches, logging)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(pid: int, server: Server) -> Sample:
    return Sample(
        time.monotonic(), proc_cpu(pid), thread_cpu(pid), proc_rss(pid)[0],
        server.stats()["requests"],
    )  # fmt: skip


def start_daemon(cfg: Path, work: Path, profile: Path | None) -> tuple[subprocess.Popen, Path]:
    log = work / "daemon.log"
    cmd = [str(NEWS_MONITOR), "--config", str(cfg), "run"]
    if profile is not None:  # SIGTERM ends `run` with SystemExit: cProfile still writes the file
        cmd = [
            PY,
            "-m",
            "cProfile",
            "-o",
            str(profile),
            "-m",
            "monitor",
            "--config",
            str(cfg),
            "run",
        ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    return proc, log


def wait_cold(proc: subprocess.Popen, server: Server, n: int, args: argparse.Namespace) -> list:
    """Samples until the cold cycle is over: every feed served once, then a quiet sample (under
    half a core), so that storing the last polls does not count in the first window."""
    samples = [sample(proc.pid, server)]
    deadline = time.monotonic() + args.cold_timeout
    while time.monotonic() < deadline:
        time.sleep(args.sample)
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({proc.returncode}) in the cold cycle")
        samples.append(s := sample(proc.pid, server))
        prev = samples[-2]
        if s.requests >= n and (s.cpu - prev.cpu) / (s.at - prev.at) < 0.5:
            return samples
    raise RuntimeError(f"the cold cycle did not end within {args.cold_timeout:.0f} s")


def watch(proc: subprocess.Popen, server: Server, args: argparse.Namespace) -> list[Sample]:
    samples = [sample(proc.pid, server)]
    end = samples[0].at + args.cycles * args.interval
    while (now := time.monotonic()) < end:
        time.sleep(min(args.sample, max(0.0, end - now)))
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({proc.returncode}) while measured")
        samples.append(sample(proc.pid, server))
    return samples


def window(samples: list[Sample], start: float, stop: float) -> dict:
    """Figures of the samples in [start, stop] (monotonic s)."""
    inside = [s for s in samples if start - 1e-6 <= s.at <= stop + 1e-6]
    a, b = inside[0], inside[-1]
    span = max(b.at - a.at, 1e-9)
    polls = b.requests - a.requests
    cpu = b.cpu - a.cpu
    rss = [s.rss for s in inside]
    per_poll = 1000 * cpu / polls if polls else 0.0
    return {
        "seconds": span, "polls": polls, "cpu": cpu, "pct": 100 * cpu / span,
        "loop_pct": 100 * (b.loop - a.loop) / span, "ms_per_poll": per_poll,
        "rss_mean": statistics.fmean(rss), "rss_max": max(rss),
    }  # fmt: skip


def outcomes(log: Path) -> Counter:
    """Outcomes of the daemon's "polled" log lines (JSON), and the count of error lines."""
    found: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "polled":
            found[event.get("outcome")] += 1
        elif event.get("level") in ("error", "critical"):
            found["error lines"] += 1
    return found


def report(cold: list[Sample], steady: list[Sample], args: argparse.Namespace) -> dict:
    figures = {0: window(cold, cold[0].at, cold[-1].at)}
    t0 = steady[0].at
    for k in range(1, args.cycles + 1):
        figures[k] = window(steady, t0 + (k - 1) * args.interval, t0 + k * args.interval)
    print(f"  {'cycle':<8} {'seconds':>8} {'polls':>7} {'CPU s':>8} {'% core':>7} {'loop %':>7} "
          f"{'ms/poll':>8} {'RSS mean':>9} {'RSS max':>8}")  # fmt: skip
    for k, f in figures.items():
        name = "0 (cold)" if k == 0 else str(k)
        print(f"  {name:<8} {f['seconds']:8.0f} {f['polls']:7d} {f['cpu']:8.2f} {f['pct']:7.2f} "
              f"{f['loop_pct']:7.2f} {f['ms_per_poll']:8.2f} {f['rss_mean']:9.0f} "
              f"{f['rss_max']:8.0f}")  # fmt: skip
    whole = window(steady, steady[0].at, steady[-1].at)
    verdict = "ok" if whole["pct"] < TARGET_CPU and whole["rss_max"] < TARGET_RSS else "ABOVE"
    print(f"  steady state over {args.cycles} cycles: {whole['pct']:.2f}% of one core "
          f"(target < {TARGET_CPU:.0f}%), RSS mean {whole['rss_mean']:.0f} MB, max "
          f"{whole['rss_max']:.0f} MB (target < {TARGET_RSS:.0f} MB): {verdict}")  # fmt: skip
    return {"cycles": figures, "steady": whole}


def print_profile(path: Path, top: int) -> None:
    if not path.exists():
        print("  (no profile written: the daemon did not exit through SystemExit)")
        return
    print(f"\n--- cProfile of the daemon's event loop thread (top {top} by own time) ---")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def stop(proc: subprocess.Popen) -> float | None:
    """SIGTERM, then SIGKILL after 60 s; seconds until the daemon exited (None: killed)."""
    if proc.poll() is not None:
        return 0.0
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None
    return time.monotonic() - t0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sources", type=int, default=10_000)
    p.add_argument("--interval", type=seconds, default=300.0, help="e.g. 300, 60s, 5m")
    p.add_argument("--cycles", type=int, default=3, help="measured cycles after the cold one")
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--rules", default="10%", choices=_feeds.RULE_SETS)
    p.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--cold-timeout", type=float, default=3600.0)
    p.add_argument("--profile", type=Path, help="run the daemon under cProfile, stats here")
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument("--keep", action="store_true", help="keep the work directory (daemon log)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    _procs.compile_package()  # as installed: see _procs.compile_package
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the daemon and server too
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    server = Server(args.sources, args.items)
    proc = None
    try:
        cfg = work / "monitor.toml"
        interval = f"{args.interval:g}s"
        _feeds.write_config(cfg, database=work / "monitor.db", base_url=server.base,
                            feeds=args.sources, interval=interval, concurrency=CONCURRENCY,
                            rules=args.rules, log_level="debug")  # fmt: skip
        print(f"bench_daemon: news-monitor run, {args.sources} sources x {args.items} items, "
              f"interval {interval}, {args.cycles} cycles after the cold one, rules "
              f"[{args.rules}]; {os.cpu_count()} CPUs; {server.origin}")  # fmt: skip
        print("  CPU: /proc/PID/stat utime+stime, all threads (loop %: the event loop's thread); "
              "RSS: VmRSS; polls: requests served (304 after the cold cycle)")  # fmt: skip
        proc, log = start_daemon(cfg, work, args.profile)
        cold = wait_cold(proc, server, args.sources, args)
        steady = watch(proc, server, args)
        figures = report(cold, steady, args)
        took = stop(proc)
        seen = outcomes(log)
        print(f"  poll outcomes over the run (daemon log): {dict(seen)}")
        print(
            "  SIGTERM -> exit: " + (f"{took:.1f} s" if took is not None else "killed after 60 s")
        )
        figures["outcomes"] = dict(seen)
        if args.profile:
            print_profile(args.profile, args.profile_top)
        return figures
    finally:
        if proc is not None:
            stop(proc)
        server.close()
        if args.keep:
            print(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
