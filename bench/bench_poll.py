"""One poll cycle of N feeds: news-monitor against `reader` and against the floors.

Run: `python bench/bench_poll.py --feeds 1000 --items 20` (see bench/README.md).

A loopback feed server (bench/_feeds.py, its own process) serves N feeds. Scenarios, in order,
per contender (the server is reset before each contender):

  cold        everything is new (first poll of a fresh database)
  304         nothing changed; the server answers If-None-Match with 304
  same-body   nothing changed; no ETag, identical bodies (the body-hash path)
  10%-new     every 10th feed has one new item (ETags on again)

Two kinds of figures, printed side by side:
- whole process, what a user running either from cron pays: `news-monitor once` as a child
  process, and a child script doing what a reader user runs (import reader, make_reader, add the
  feeds on the first run, `update_feeds(workers=16)`); CPU user+sys and peak RSS of the child
  itself (`os.wait4`), imports included;
- in-process: a fresh subprocess of this script (`worker ...`) that times one poll cycle only
  (getrusage around `Monitor.poll_everything()` + `drain()`, or `update_feeds`), plus the floors:
  raw fetch with the same aiohttp client (monitor.ingest.fetch.Fetcher) and lxml parsing.
news-monitor runs each scenario with two rule sets (`_feeds.rule_set`): "10%" matches one item in
ten (story work, alerts), "none" matches nothing. Then the cost curve (whole-process `once` at
100, 1,000 and 10,000 feeds) and the latency of one new matching item through `news-monitor run`.
The daemon's steady state is bench/bench_daemon.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.metadata
import json
import os
import pstats
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# after PYTHONPATH: PYTHONPATH=/some/snapshot measures that tree's `monitor` (workers included)
sys.path.append(str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _feeds  # noqa: E402
import _procs
from _procs import Server, run_measured  # noqa: E402

PY = sys.executable
HERE = Path(__file__).resolve()
SCENARIOS = ("cold", "304", "same-body", "10%-new")
CONCURRENCY = 16  # news-monitor and the fetch floor; reader gets workers=16
NEWS_MONITOR = Path(PY).with_name("news-monitor")  # the console script a user runs
# A reader user's cron job. scheduled=False: the default would skip every feed updated less than
# an hour ago, which is not a poll. Feeds are added on the first run only, as a user would.
READER_RUN = """
import sys
from reader import make_reader
database, base, feeds, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
reader = make_reader(database)
if first:
    for i in range(feeds):
        reader.add_feed(f"{base}/f/{i}.xml", exist_ok=True)
reader.update_feeds(workers=16, scheduled=False)
reader.close()
"""
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
        _inline_writer()
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


def _inline_writer() -> None:
    """Profile mode: the store writer's calls run on the loop's thread, so cProfile sees
    `save_poll` and the rest of the store's work (they normally run on the writer thread)."""
    from monitor.store import open_store
    from monitor.store.writer import Writer

    stores: dict[int, object] = {}

    async def call(self, method, *a, **k):
        if id(self) not in stores:
            stores[id(self)] = open_store(self._database, timeout=self._timeout)
        store = stores[id(self)]
        return getattr(store, method)(*a, **k)

    Writer.call = call


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


def run_worker(kind: str, scenario: str, work: Path, extra: list[str]) -> dict:
    """A worker subprocess, through the launcher so that its ru_maxrss is its own."""
    out = work / f"{kind}-{scenario}.json".replace("%", "pc")
    cmd = [PY, str(HERE), "worker", kind, "--scenario", scenario, "--out", str(out), *extra]
    log = out.with_suffix(".log")
    done = run_measured(cmd, output=log, timeout=1800)
    if done["code"] != 0:
        raise RuntimeError(f"worker {kind} {scenario} failed:\n{log.read_text()[-3000:]}")
    return json.loads(out.read_text())


def once_summary(log: Path) -> dict:
    """New articles and matches from `once`'s summary line ('N sources: ...; X new articles,
    Y matches')."""
    found = re.search(r"(\d+) new articles, (\d+) matches", log.read_text())
    return {"new": int(found[1]), "matches": int(found[2])} if found else {}


def whole_monitor(cfg: Path, work: Path, tag: str) -> dict:
    """`news-monitor --config CFG once` as a whole process: its own CPU and peak RSS."""
    log = work / f"once-{tag}.log".replace("%", "pc")
    done = run_measured([str(NEWS_MONITOR), "--config", str(cfg), "once"],
                               output=log, cwd=work)  # fmt: skip
    if done["code"] != 0:
        raise RuntimeError(f"news-monitor once failed:\n{log.read_text()[-3000:]}")
    return {**done, **once_summary(log)}


def whole_reader(db: Path, base: str, feeds: int, work: Path, tag: str) -> dict:
    """READER_RUN as a whole process; new entries counted afterwards, outside the figures."""
    first = not db.exists()
    before = 0 if first else _count(db, "entries")
    log = work / f"reader-{tag}.log".replace("%", "pc")
    argv = [PY, "-c", READER_RUN, str(db), base, str(feeds), "1" if first else "0"]
    done = run_measured(argv, output=log, cwd=work)
    if done["code"] != 0:
        raise RuntimeError(f"reader run failed:\n{log.read_text()[-3000:]}")
    return {**done, "new": _count(db, "entries") - before}


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def prepare(server: Server, scenario: str) -> None:
    """Put the server in the scenario's state (called after the previous scenario ran)."""
    if scenario == "cold":
        server.call("/control/reset")
    elif scenario == "same-body":
        server.call("/control/etag?on=0")
    elif scenario == "10%-new":
        server.call("/control/etag?on=1")
        server.call("/control/bump?every=10")


def contender(kind: str, server: Server, work: Path, feeds: int, rules: str = "10%") -> dict:
    """One contender's scenarios in order, on its own database: {scenario: figures}.

    kind: monitor / reader / floor (in-process workers), once / reader-run (whole processes).
    """
    results = {}
    tag = f"{kind}-{rules}-{feeds}"
    db = work / f"{tag}.sqlite".replace("%", "pc")
    cfg = work / f"{tag}.toml".replace("%", "pc")
    if kind in ("monitor", "once"):
        _feeds.write_config(cfg, database=db, base_url=server.base, feeds=feeds, interval="5m",
                            concurrency=CONCURRENCY, rules=rules)  # fmt: skip
    for scenario in SCENARIOS:
        prepare(server, scenario)
        if kind == "once":
            results[scenario] = whole_monitor(cfg, work, f"{tag}-{scenario}")
            continue
        if kind == "reader-run":
            results[scenario] = whole_reader(db, server.base, feeds, work, f"{tag}-{scenario}")
            continue
        extra = ["--base", server.base, "--feeds", str(feeds)]
        if kind == "monitor":
            extra += ["--config", str(cfg)]
        if kind == "reader":
            extra += ["--database", str(db)]
        results[scenario] = run_worker(kind, scenario, work, extra)
    return results


def profile_monitor(server: Server, work: Path, args: argparse.Namespace) -> None:
    """Run news-monitor's scenarios again under cProfile (a fresh database) and print hot spots."""
    pcfg = work / "profile.toml"
    _feeds.write_config(
        pcfg,
        database=work / "profile.db",
        base_url=server.base,
        feeds=args.feeds,
        interval="5m",
        concurrency=CONCURRENCY,
        rules=args.rules.split(",")[0],
    )
    for scenario in SCENARIOS:
        prepare(server, scenario)
        pfile = work / f"profile-{scenario.replace('%', 'pc')}.pstats"
        run_worker("monitor", scenario, work, ["--config", str(pcfg), "--profile", str(pfile)])
        print(f"\n--- cProfile, news-monitor, {scenario} (top {args.profile_top} by own time) ---")
        stats = pstats.Stats(str(pfile))
        stats.sort_stats("tottime").print_stats(args.profile_top)
        stats.sort_stats("cumulative").print_stats(args.profile_top)


def fmt_row(name: str, r: dict, feeds: int, cpu: float | None = None) -> str:
    cpu = r["cpu"] if cpu is None else cpu
    wall = max(r["wall"], 1e-9)
    new = r.get("new", 0)
    rss = r["rss_mb"] if "rss_mb" in r else r.get("rss_kb", 0) / 1024
    return (
        f"  {name:<26} {wall:8.2f} {feeds / wall:9.0f} {new:7d} {new / wall:9.0f} "
        f"{cpu:8.2f} {cpu / feeds * 1000:9.3f} {rss:8.0f}"
    )


def print_table(res: dict, feeds: int, rule_sets: list[str]) -> None:
    """Per scenario: every contender's row, whole process first, and the CPU ratios."""
    head = (
        f"  {'contender':<26} {'wall s':>8} {'feeds/s':>9} {'new':>7} {'new/s':>9} "
        f"{'CPU s':>8} {'CPU ms/f':>9} {'RSS MB':>8}"
    )
    for scenario in SCENARIOS:
        r, f = res["reader", "-"][scenario], res["floor", "-"][scenario]
        rr = res["reader-run", "-"][scenario]
        floor_cpu = f["cpu"] + f["lxml_cpu"]
        outcomes = res["monitor", rule_sets[0]][scenario].get("outcomes")
        print(f"\n[{scenario}]  outcomes: monitor {outcomes}  reader {r.get('outcomes')}")
        print(head)
        print("  whole process (imports included):")
        for rules in rule_sets:
            print(fmt_row(f"news-monitor once [{rules}]", res["once", rules][scenario], feeds))
        print(fmt_row("reader (script)", rr, feeds))
        print("  in-process (one poll cycle):")
        for rules in rule_sets:
            print(fmt_row(f"news-monitor [{rules}]", res["monitor", rules][scenario], feeds))
        print(fmt_row("reader", r, feeds))
        print(fmt_row("floor: fetch", f, feeds))
        lx = dict(f, wall=f["lxml_wall"] or 1e-9)
        print(fmt_row("floor: lxml parse", lx, feeds, f["lxml_cpu"]))
        for rules in rule_sets:
            w, m = res["once", rules][scenario], res["monitor", rules][scenario]
            print(
                f"  ratios (CPU) [{rules}]: reader/news-monitor = {rr['cpu'] / w['cpu']:.2f}x "
                f"whole, {r['cpu'] / m['cpu']:.2f}x in-process   "
                f"news-monitor/floor(fetch+lxml) = {m['cpu'] / floor_cpu:.2f}x   "
                f"news-monitor/floor(fetch) = {m['cpu'] / f['cpu']:.2f}x"
            )


TARGETS = {"cold": 2.0, "304": 3.0, "same-body": 3.0, "10%-new": 4.0}


def print_summary(res: dict, feeds: int, rule_sets: list[str]) -> None:
    """The issue's table: whole-process CPU, in-process in brackets, reader / news-monitor."""
    print(f"\n[summary] {feeds} feeds; CPU s of the whole process (in-process figure in "
          "brackets); ratio = reader / news-monitor")  # fmt: skip
    cols = "".join(
        f" {'news-monitor [' + k + ']':>22} {'ratio':>15} {'matches':>7}" for k in rule_sets
    )
    peaks = " / ".join(f"nm [{k}]" for k in rule_sets)
    print(f"  {'scenario':<10} {'reader':>15}{cols} {'target':>6}   peak RSS MB: {peaks} / reader")
    for scenario in SCENARIOS:
        rr, r = res["reader-run", "-"][scenario], res["reader", "-"][scenario]
        line = f"  {scenario:<10} {rr['cpu']:6.2f} ({r['cpu']:6.2f})"
        rss = []
        for rules in rule_sets:
            w, m = res["once", rules][scenario], res["monitor", rules][scenario]
            ratio = f"{rr['cpu'] / w['cpu']:.2f}x ({r['cpu'] / m['cpu']:.2f}x)"
            line += f" {w['cpu']:13.2f} ({m['cpu']:6.2f}) {ratio:>15} {w.get('matches', 0):7d}"
            rss.append(f"{w['rss_mb']:.0f}")
        print(f"{line} {TARGETS[scenario]:5.0f}x   {' / '.join(rss)} / {rr['rss_mb']:.0f}")


def curve(server: Server, work: Path, sizes: list[int], rules: str) -> None:
    """CPU per feed and peak RSS of the whole-process `once` as the number of feeds grows."""
    rows: dict[tuple[int, str], dict] = {}
    for n in sizes:
        db, cfg = work / f"curve-{n}.sqlite", work / f"curve-{n}.toml"
        _feeds.write_config(cfg, database=db, base_url=server.base, feeds=n, interval="5m",
                            concurrency=CONCURRENCY, rules=rules)  # fmt: skip
        for scenario in ("cold", "304"):
            prepare(server, scenario)
            rows[n, scenario] = whole_monitor(cfg, work, f"curve-{n}-{scenario}")
    first = sizes[0]
    print(f"\n[curve] news-monitor once, whole process, rules [{rules}]; x{first} = CPU per "
          f"feed against the {first}-feed figure (target: within 1.5x)")  # fmt: skip
    print(f"  {'feeds':>6} {'scenario':<9} {'CPU s':>8} {'ms/feed':>8} {'x' + str(sizes[0]):>7} "
          f"{'RSS MB':>7} {'wall s':>7} {'new':>7} {'matches':>7}")  # fmt: skip
    for scenario in ("cold", "304"):
        base = rows[sizes[0], scenario]["cpu"] / sizes[0]
        for n in sizes:
            w = rows[n, scenario]
            per = w["cpu"] / n
            print(f"  {n:6d} {scenario:<9} {w['cpu']:8.2f} {per * 1000:8.3f} {per / base:6.2f}x "
                  f"{w['rss_mb']:7.0f} {w['wall']:7.1f} {w.get('new', 0):7d} "
                  f"{w.get('matches', 0):7d}")  # fmt: skip


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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=20)
    p.add_argument(
        "--rules", default="10%,none", help="rule sets of news-monitor (_feeds.rule_set)"
    )
    p.add_argument("--curve", default="100,1000,10000", help="feed counts of the cost curve")
    p.add_argument("--latency-trials", type=int, default=10)
    p.add_argument("--latency-feeds", type=int, default=20)
    p.add_argument("--profile", action="store_true", help="also profile news-monitor (cProfile)")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--skip", default="", help="comma list of: compare, curve, latency")
    args = p.parse_args()
    _procs.compile_package()  # as installed: see _procs.compile_package
    skip = set(filter(None, args.skip.split(",")))
    rule_sets = args.rules.split(",")
    sizes = [] if "curve" in skip else [int(n) for n in args.curve.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    server = Server(max([args.feeds, *sizes]), args.items)
    try:
        print(f"bench_poll: {args.feeds} feeds x {args.items} items, {server.origin}")
        print(f"  reader {importlib.metadata.version('reader')}; {os.cpu_count()} CPUs; "
              f"python {sys.version.split()[0]}")  # fmt: skip
        print("  whole process: CPU = user+sys of the child (os.wait4), imports included; "
              "RSS = its peak")  # fmt: skip
        print("  in-process: CPU = getrusage around one poll cycle; RSS = ru_maxrss")
        res: dict[tuple[str, str], dict] = {}
        for rules in [] if "compare" in skip else rule_sets:
            res["once", rules] = contender("once", server, work, args.feeds, rules)
            res["monitor", rules] = contender("monitor", server, work, args.feeds, rules)
        if "compare" not in skip:
            for kind in ("reader-run", "reader", "floor"):
                res[kind, "-"] = contender(kind, server, work, args.feeds)
            print_table(res, args.feeds, rule_sets)
            print_summary(res, args.feeds, rule_sets)
        if sizes:
            curve(server, work, sizes, rule_sets[0])
        if "latency" not in skip:
            latency(server, work, args)
        if args.profile:
            profile_monitor(server, work, args)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
