"""One poll cycle of N feeds: news-monitor against `reader` and against the floors.

Run: `python bench/bench_poll.py --feeds 1000 --items 20` (see bench/README.md).

A loopback feed server (bench/_feeds.py, its own process) serves N feeds. Each measurement runs in
a fresh subprocess of this script (`worker ...`) and reports its own whole-process CPU
(getrusage user+sys, all threads) around one poll cycle, and its peak RSS. Scenarios, in order,
per contender (the server is reset before each contender):

  cold        everything is new (first poll of a fresh database)
  304         nothing changed; the server answers If-None-Match with 304
  same-body   nothing changed; no ETag, identical bodies (the body-hash path)
  10%-new     every 10th feed has one new item (ETags on again)

Contenders: news-monitor (`Monitor.poll_everything()` + `drain()`, a real config with the shipped
rules), reader (`update_feeds(workers=16, scheduled=False)`), and the floors: raw fetch with the
same aiohttp client (monitor.fetch.Fetcher) and lxml parsing of the same bytes.
Then the latency of one new matching item through `news-monitor run` to a loopback webhook, and
the idle cost of `run` with all feeds unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _feeds  # noqa: E402

PY = sys.executable
HERE = Path(__file__).resolve()
SCENARIOS = ("cold", "304", "same-body", "10%-new")
CONCURRENCY = 16  # news-monitor and the fetch floor; reader gets workers=16
ABU_DHABI = "Abu Dhabi talks: Ukraine and Russia delegations meet again, round {n} ({token})"


def rusage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


# ----------------------------------------------------------------------------- workers


def measure(run, profile: str | None) -> dict:
    """CPU, wall and peak RSS of `run()` in this process; optionally under cProfile."""
    prof = cProfile.Profile() if profile else None
    cpu0, _ = rusage()
    wall0 = time.perf_counter()
    if prof:
        prof.enable()
    extra = run()
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    cpu1, rss = rusage()
    return {"cpu": cpu1 - cpu0, "wall": time.perf_counter() - wall0, "rss_kb": rss, **extra}


def worker_monitor(args: argparse.Namespace) -> dict:
    from monitor.config import loader as config_mod
    from monitor.runtime import logs as logs
    from monitor.service.monitor import Monitor

    if args.profile:  # cProfile sees one thread: run the parse step inline so it is counted

        async def inline(func, /, *a, **k):
            return func(*a, **k)

        asyncio.to_thread = inline
    cfg = config_mod.load(Path(args.config))
    logs.configure("json", level="error", secrets=cfg.secrets)

    async def cycle() -> dict:
        monitor = Monitor(cfg)
        try:
            results = await monitor.poll_everything()
            await monitor.drain()
        finally:
            await monitor.close()
        outcomes: dict[str, int] = {}
        for r in results:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        return {"new": sum(r.new for r in results), "outcomes": outcomes}

    return measure(lambda: asyncio.run(cycle()), args.profile)


def worker_reader(args: argparse.Namespace) -> dict:
    from reader import make_reader

    reader = make_reader(args.database)
    if args.scenario == "cold":
        for i in range(args.feeds):
            reader.add_feed(f"{args.base}/f/{i}.xml", exist_ok=True)
    before = reader.get_entry_counts().total

    def run() -> dict:
        reader.update_feeds(workers=16, scheduled=False)
        return {}

    out = measure(run, args.profile)
    out["new"] = reader.get_entry_counts().total - before
    errors = sum(1 for f in reader.get_feeds() if f.last_exception)
    out["outcomes"] = {"errors": errors}
    reader.close()
    return out


def worker_floor(args: argparse.Namespace) -> dict:
    """Raw fetch of every URL with the same client, then lxml parsing of the bodies."""
    from lxml import etree

    from monitor.ingest.fetch import Fetcher

    conditional = args.scenario in ("304", "10%-new")

    async def fetch_all() -> list[bytes]:
        async with Fetcher(concurrency=CONCURRENCY, per_host=CONCURRENCY) as fetcher:
            got = await asyncio.gather(
                *(
                    fetcher.fetch(
                        f"{args.base}/f/{i}.xml", etag=f'"{i}-0"' if conditional else None
                    )
                    for i in range(args.feeds)
                )
            )
        return [f.body for f in got if f.status == 200 and f.body]

    bodies: list[bytes] = []

    def fetch() -> dict:
        bodies.extend(asyncio.run(fetch_all()))
        return {"bodies": len(bodies)}

    out = measure(fetch, None)

    def parse() -> dict:
        parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
        items = 0
        for body in bodies:
            root = etree.fromstring(body, parser)
            items += sum(1 for _ in root.iter("{*}item", "{*}entry"))
        return {"items": items}

    lx = measure(parse, None)
    out["lxml_cpu"], out["lxml_wall"], out["items"] = lx["cpu"], lx["wall"], lx["items"]
    out["new"] = 0
    return out


def worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["monitor", "reader", "floor"])
    p.add_argument("--scenario", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    p.add_argument("--database")
    p.add_argument("--base")
    p.add_argument("--feeds", type=int, default=0)
    p.add_argument("--profile")
    args = p.parse_args(argv)
    fn = {"monitor": worker_monitor, "reader": worker_reader, "floor": worker_floor}[args.kind]
    Path(args.out).write_text(json.dumps(fn(args)))


# ----------------------------------------------------------------------------- coordinator


class Server:
    """The feed server process and its control API."""

    def __init__(self, feeds: int, items: int) -> None:
        helper = str(HERE.parent / "_feeds.py")
        cmd = [PY, helper, "serve", "--feeds", str(feeds), "--items", str(items)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            raise RuntimeError("feed server did not start")
        self.base = f"http://127.0.0.1:{line[1]}"
        self.origin = " ".join(line[3:])

    def call(self, path: str, method: str = "POST") -> dict:
        req = urllib.request.Request(
            self.base + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self, query: str = "") -> dict:
        return self.call("/control/stats" + query, "GET")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_worker(kind: str, scenario: str, work: Path, extra: list[str]) -> dict:
    out = work / f"{kind}-{scenario}.json".replace("%", "pc")
    cmd = [PY, str(HERE), "worker", kind, "--scenario", scenario, "--out", str(out), *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    return json.loads(out.read_text())


def prepare(server: Server, scenario: str) -> None:
    """Put the server in the scenario's state (called after the previous scenario ran)."""
    if scenario == "cold":
        server.call("/control/reset")
    elif scenario == "same-body":
        server.call("/control/etag?on=0")
    elif scenario == "10%-new":
        server.call("/control/etag?on=1")
        server.call("/control/bump?every=10")


def contender(kind: str, server: Server, work: Path, args: argparse.Namespace, cfg: Path) -> dict:
    results = {}
    db = work / f"{kind}.sqlite"
    for scenario in SCENARIOS:
        prepare(server, scenario)
        extra = ["--base", server.base, "--feeds", str(args.feeds)]
        if kind == "monitor":
            extra += ["--config", str(cfg)]
        if kind == "reader":
            extra += ["--database", str(db)]
        results[scenario] = run_worker(kind, scenario, work, extra)
    return results


def profile_monitor(server: Server, work: Path, cfg: Path, args: argparse.Namespace) -> None:
    """Run news-monitor's scenarios again under cProfile (a fresh database) and print hot spots."""
    pcfg = work / "profile.toml"
    _feeds.write_config(
        pcfg,
        database=work / "profile.db",
        base_url=server.base,
        feeds=args.feeds,
        interval="5m",
        concurrency=CONCURRENCY,
    )
    for scenario in SCENARIOS:
        prepare(server, scenario)
        pfile = work / f"profile-{scenario.replace('%', 'pc')}.pstats"
        run_worker("monitor", scenario, work, ["--config", str(pcfg), "--profile", str(pfile)])
        print(f"\n--- cProfile, news-monitor, {scenario} (top {args.profile_top} by own time) ---")
        stats = pstats.Stats(str(pfile))
        stats.sort_stats("tottime").print_stats(args.profile_top)
        stats.sort_stats("cumulative").print_stats(args.profile_top)


def fmt_row(name: str, r: dict, feeds: int, cpu: float) -> str:
    wall = r["wall"]
    new = r.get("new", 0)
    rss = r.get("rss_kb", 0) / 1024
    return (
        f"  {name:<18} {wall:8.2f} {feeds / wall:9.0f} {new:7d} {new / wall:9.0f} "
        f"{cpu:8.2f} {cpu / feeds * 1000:9.3f} {rss:8.0f}"
    )


def print_table(res: dict, feeds: int) -> None:
    head = (
        f"  {'contender':<18} {'wall s':>8} {'feeds/s':>9} {'new':>7} {'new/s':>9} "
        f"{'CPU s':>8} {'CPU ms/f':>9} {'RSS MB':>8}"
    )
    for scenario in SCENARIOS:
        m, r, f = res["monitor"][scenario], res["reader"][scenario], res["floor"][scenario]
        floor_cpu = f["cpu"] + f["lxml_cpu"]
        print(f"\n[{scenario}]  outcomes: monitor {m.get('outcomes')}  reader {r.get('outcomes')}")
        print(head)
        print(fmt_row("news-monitor", m, feeds, m["cpu"]))
        print(fmt_row("reader", r, feeds, r["cpu"]))
        print(fmt_row("floor: fetch", f, feeds, f["cpu"]))
        lx = dict(f, wall=f["lxml_wall"] or 1e-9)
        print(fmt_row("floor: lxml parse", lx, feeds, f["lxml_cpu"]))
        print(
            f"  ratios (CPU): reader/news-monitor = {r['cpu'] / m['cpu']:.2f}x   "
            f"news-monitor/reader = {m['cpu'] / r['cpu']:.2f}   "
            f"news-monitor/floor(fetch+lxml) = {m['cpu'] / floor_cpu:.2f}x   "
            f"news-monitor/floor(fetch) = {m['cpu'] / f['cpu']:.2f}x"
        )


def latency(server: Server, work: Path, args: argparse.Namespace) -> None:
    """New item on the server -> alert at a loopback webhook, through `news-monitor run`."""
    server.call("/control/reset")
    hook = _feeds.Webhook()
    n = min(args.latency_feeds, args.feeds)
    cfg = work / "latency.toml"
    _feeds.write_config(
        cfg,
        database=work / "latency.db",
        base_url=server.base,
        feeds=n,
        interval="1s",
        concurrency=CONCURRENCY,
        channels={"hook": f"json://127.0.0.1:{hook.port}/hook"},
    )
    log = open(work / "latency-daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [PY, "-m", "monitor", "--config", str(cfg), "run"], stdout=log, stderr=log, cwd=work
    )
    appear, after_poll, missed = [], [], 0
    try:
        deadline = time.monotonic() + 120
        while server.stats()["requests"] < 3 * n and time.monotonic() < deadline:
            time.sleep(0.2)  # the cold first cycle is done once every feed is polled again
        time.sleep(1.0)
        for trial in range(args.latency_trials):
            token = f"benchtoken{trial}x{os.getpid()}"
            feed = trial % n
            title = ABU_DHABI.format(n=trial, token=token).replace(" ", "+")
            bumped = server.call(f"/control/bump?feed={feed}&title={title}")
            at = bumped["at"]
            got = hook.wait_for(token, 20.0)
            if got is None:
                missed += 1
                continue
            served = server.stats(f"?feed={feed}&gen={bumped['gen']}").get("served_at")
            appear.append(got - at)
            if served:
                after_poll.append(got - served)
            time.sleep(0.3 + 0.1 * (trial % 7))  # land at different points of the interval
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        hook.close()
    print(f"\n[latency] news-monitor run, {n} sources at interval 1s, {len(appear)} items")
    if appear:
        print(
            f"  item appears -> alert at webhook: p50 {statistics.median(appear):.3f} s, "
            f"max {max(appear):.3f} s"
        )
    if after_poll:
        print(
            f"  poll that sees it -> alert:       p50 {statistics.median(after_poll):.3f} s, "
            f"max {max(after_poll):.3f} s  (target: < 1 s)"
        )
    if missed:
        print(f"  {missed} items never arrived within 20 s")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> tuple[float, float]:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def idle(server: Server, work: Path, args: argparse.Namespace, monitor_db: Path) -> None:
    """`run` with N sources, everything known and unchanged: CPU and RSS of the daemon.

    A 5-minute interval would need a long run; instead the interval is shortened to
    `--idle-interval` and the cost is split into a per-cycle part (CPU in the seconds when polls
    happen) and a baseline (ticks, outbox drains, config watch: CPU in the quiet seconds). The
    estimate for 5 minutes is baseline + per-cycle CPU / 300 s.
    """
    server.call("/control/reset")
    db = work / "idle.db"
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(monitor_db) + suffix)
        if src.exists():
            shutil.copy(src, str(db) + suffix)
    with sqlite3.connect(db) as conn:  # every source due now, as after a restart
        conn.execute("UPDATE sources SET next_poll = NULL, lease_until = NULL")
    cfg = work / "idle.toml"
    _feeds.write_config(
        cfg,
        database=db,
        base_url=server.base,
        feeds=args.feeds,
        interval=f"{args.idle_interval}s",
        concurrency=CONCURRENCY,
    )
    log = open(work / "idle-daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [PY, "-m", "monitor", "--config", str(cfg), "run"], stdout=log, stderr=log, cwd=work
    )
    samples: list[tuple[float, float, int]] = []  # (time, cpu s, requests)
    peak_rss = 0.0
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.idle_seconds:
            samples.append((time.monotonic(), proc_cpu(proc.pid), server.stats()["requests"]))
            peak_rss = max(peak_rss, proc_rss(proc.pid)[0])
            time.sleep(1.0)
        hwm = proc_rss(proc.pid)[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    # the measured window starts when the first (restart) cycle is over
    start = next(
        (
            k
            for k in range(1, len(samples))
            if samples[k][2] >= samples[0][2] + args.feeds and samples[k][2] == samples[k - 1][2]
        ),
        None,
    )
    print(f"\n[idle] news-monitor run, {args.feeds} sources, all unchanged (304 after restart)")
    if start is None or start >= len(samples) - 2:
        print("  the first cycle did not finish in time; run longer (--idle-seconds)")
        return
    window = samples[start:]
    span = window[-1][0] - window[0][0]
    cpu = window[-1][1] - window[0][1]
    polls = window[-1][2] - window[0][2]
    quiet = busy = quiet_cpu = busy_cpu = 0.0
    for a, b in zip(window, window[1:], strict=False):
        dt, dc = b[0] - a[0], b[1] - a[1]
        if b[2] == a[2]:
            quiet, quiet_cpu = quiet + dt, quiet_cpu + dc
        else:
            busy, busy_cpu = busy + dt, busy_cpu + dc
    base = quiet_cpu / quiet if quiet else 0.0
    per_poll = (busy_cpu - base * busy) / polls if polls else 0.0
    estimate = base + per_poll * args.feeds / 300.0
    print(
        f"  at interval {args.idle_interval}s: {span:.0f} s window, {polls} polls, "
        f"CPU {cpu:.2f} s = {100 * cpu / span:.1f}% of one core"
    )
    print(
        f"  baseline (no polls) {100 * base:.2f}% of a core; {1000 * per_poll:.2f} ms CPU per "
        f"unchanged poll"
    )
    print(f"  estimate at a 5-minute interval: {100 * estimate:.2f}% of one core (target < 5%)")
    print(f"  RSS: peak sampled {peak_rss:.0f} MB, VmHWM {hwm:.0f} MB (target < 300 MB)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--latency-trials", type=int, default=10)
    p.add_argument("--latency-feeds", type=int, default=20)
    p.add_argument("--idle-seconds", type=float, default=100.0)
    p.add_argument("--idle-interval", type=int, default=30)
    p.add_argument("--profile", action="store_true", help="also profile news-monitor (cProfile)")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--skip", default="", help="comma list of: latency, idle")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    import reader

    work = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    server = Server(args.feeds, args.items)
    try:
        print(f"bench_poll: {args.feeds} feeds x {args.items} items, {server.origin}")
        print(
            f"  reader {reader.__version__}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}"
        )
        print("  CPU = whole-process user+sys of the measuring subprocess; RSS = its ru_maxrss")
        cfg = work / "monitor.toml"
        _feeds.write_config(
            cfg,
            database=work / "monitor.db",
            base_url=server.base,
            feeds=args.feeds,
            interval="5m",
            concurrency=CONCURRENCY,
        )
        res = {k: contender(k, server, work, args, cfg) for k in ("monitor", "reader", "floor")}
        print_table(res, args.feeds)
        if "latency" not in skip:
            latency(server, work, args)
        if "idle" not in skip:
            idle(server, work, args, work / "monitor.db")
        if args.profile:
            profile_monitor(server, work, cfg, args)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
