"""Peak memory of one `news-monitor once` over the hostile and parser corpora plus a 60 MB body.

Issue 13, item 5: bodies and parse trees must not pile up across concurrent polls. The feeds of
`../shared/corpus` (feedparser's `illformed/`, `encoding/`, `entities/` and the feeds of the ten
other parsers' corpora: 684 files) and one 60 MB RSS feed (3,000 long items that match no rule)
are served on loopback by a server process of their own; `news-monitor once` runs as a
subprocess, and its own peak RSS and CPU come from `os.wait4` (ru_maxrss), imports included, as a
user running it from cron pays them. (Linux carries a parent's RSS high-water mark into a child
across fork+exec, so this process stays small and serves nothing itself.)

Baselines, measured in the same run, so that figures read as "baseline + X MB":
- `import`: `python -c "import monitor.cli.commands"`, the interpreter and the CLI's imports;
- `tiny`: `once` on a config with one tiny feed: the machinery, with nothing to hold.

Scenarios (`--quick`: the first four):
- `corpus+big`: the shipped defaults (concurrency 32, max_bytes 10 MiB). The 60 MB body is sent
  without Content-Length (chunked), so the cap must stop it while it streams in;
- `corpus+big c=1`: the same with `concurrency = 1`: what concurrency costs;
- `corpus+big accepted`: max_bytes 100 MB, so the 60 MB feed is read, parsed and stored;
- `corpus`, `big accepted`: each part alone.
On loopback every feed has the same host, so `per_host` is set equal to `concurrency` (real
feeds are spread over many hosts).

`--compare DIR[,DIR...]` also runs the `monitor` package found in each DIR (a copy of another
version's tree, put first on PYTHONPATH), interleaved with this one: before/after from one run.

    python bench/bench_memory.py --quick              # ~2 minutes on 2 cores
    python bench/bench_memory.py --repeat 2           # twice, to show the spread
    python bench/bench_memory.py --quick --compare /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import _procs

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
HOSTILE = ("feedparser-tests/illformed", "feedparser-tests/encoding", "feedparser-tests/entities")
PARSERS = "parser-corpora"
TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".html": "text/html",
    ".json": "application/feed+json",
}
BIG_MB = 60
MB = 1_000_000


def corpus_files(corpus: Path) -> list[Path]:
    """Every hostile file, and the feeds (not the expected-output JSON) of the parser corpora."""
    files = [p for d in HOSTILE for p in sorted((corpus / d).rglob("*")) if p.is_file()]
    for path in sorted((corpus / PARSERS).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in TYPES:
            continue
        if path.suffix.lower() == ".json" and b"jsonfeed.org" not in path.read_bytes()[:4096]:
            continue  # a parser's expected output, not a feed
        files.append(path)
    return files


def big_feed(size: int) -> Iterator[bytes]:
    """A well-formed RSS 2.0 feed of about `size` bytes, in chunks: items of ~20 KB (a feed that
    carries its articles' full text), none matching the bench's rule."""
    yield b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>big</title>'
    yield b"<link>http://example.com/</link><description>big</description>"
    words = b"river festival museum budget school train harbour orchestra library garden " * 260
    sent, n = 0, 0
    while sent < size:
        item = (
            b"<item><title>Item %d of the big feed</title><link>http://example.com/a/%d</link>"
            b"<guid>big-%d</guid><description>%d %s</description></item>" % (n, n, n, n, words)
        )
        sent += len(item)
        n += 1
        yield item
    yield b"</channel></rss>"


@dataclass
class Route:
    body: bytes
    ctype: str
    chunked: bool = False


class Server:
    """Loopback HTTP server in a thread; the measured process is the `once` subprocess."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                route = routes.get(self.path)
                try:
                    if route is None:
                        self.send_error(404)
                    elif route.chunked:
                        self._chunked(route)
                    else:
                        self.send_response(200)
                        self.send_header("Content-Type", route.ctype)
                        self.send_header("Content-Length", str(len(route.body)))
                        self.end_headers()
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _chunked(self, route: Route) -> None:
                self.send_response(200)
                self.send_header("Content-Type", route.ctype)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                view = memoryview(route.body)
                for at in range(0, len(view), 256 * 1024):
                    part = view[at : at + 256 * 1024]
                    self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def write_config(
    path: Path, urls: list[str], *, concurrency: int | None, max_bytes: str | None
) -> Path:
    lines = ["[monitor]", 'database = "monitor.db"', 'timeout = "120s"']
    if concurrency is not None:
        lines += [f"concurrency = {concurrency}", f"per_host = {concurrency}"]
    else:
        lines.append("per_host = 32")  # the default concurrency; one host on loopback
    if max_bytes:
        lines.append(f'max_bytes = "{max_bytes}"')
    for n, url in enumerate(urls):
        lines += ["", "[[sources]]", f'name = "s{n}"', f'url = "{url}"']
    lines += ["", "[[rules]]", 'name = "ukraine"', 'query = "ukraine OR kyiv OR ceasefire"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Run:
    name: str
    tree: str
    rss_mb: float
    cpu: float
    wall: float
    code: int


def measure(name: str, argv: list[str], cwd: Path, tree: Path) -> Run:
    """Run `argv` with `tree`'s monitor package; its own peak RSS (ru_maxrss, KiB on Linux) and
    CPU from os.wait4."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    with open(cwd / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _pid, status, ru = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return Run(name, tree.name, ru.ru_maxrss * 1024 / MB, ru.ru_utime + ru.ru_stime, wall, code)


def once(name: str, work: Path, tree: Path, urls: list[str], **settings: object) -> Run:
    run_dir = Path(tempfile.mkdtemp(prefix=name.replace(" ", "_"), dir=work))
    cfg = write_config(run_dir / "monitor.toml", urls, **settings)  # type: ignore[arg-type]
    argv = [sys.executable, "-m", "monitor", "--config", str(cfg), "once"]
    return measure(name, argv, run_dir, tree)


def serve_all(server: Server, files: list[Path], big_mb: int) -> tuple[list[str], str]:
    """Route every corpus file and the big body; their URLs."""
    urls = []
    for n, path in enumerate(files):
        ctype = TYPES.get(path.suffix.lower(), "text/xml")
        server.routes[f"/f{n}"] = Route(path.read_bytes(), ctype)
        urls.append(server.url(f"/f{n}"))
    server.routes["/big"] = Route(b"".join(big_feed(big_mb * MB)), "application/rss+xml", True)
    server.routes["/tiny"] = Route(b"".join(big_feed(2000)), "application/rss+xml")
    return urls, server.url("/big")


SCENARIOS = {  # name -> (sources, settings); "urls" = the corpus feeds
    "tiny": ("tiny", {}),
    "corpus+big": ("urls+big", {}),
    "corpus+big c=1": ("urls+big", {"concurrency": 1}),
    "corpus+big accepted": ("urls+big", {"max_bytes": "100MB"}),
    "corpus+big acc. c=1": ("urls+big", {"max_bytes": "100MB", "concurrency": 1}),
    "corpus": ("urls", {}),
    "big accepted": ("big", {"max_bytes": "100MB"}),
}
QUICK = ("tiny", "corpus+big", "corpus+big c=1", "corpus+big accepted")


def one_round(work: Path, served: dict, trees: list[Path], args: argparse.Namespace) -> list[Run]:
    """Every scenario, for each tree in turn (interleaved, so drift hits both alike)."""
    sources = {
        "tiny": [served["tiny"]],
        "urls": served["urls"],
        "urls+big": [*served["urls"], served["big"]],
        "big": [served["big"]],
    }
    names = QUICK if args.quick else tuple(SCENARIOS)
    if args.only:
        names = ("tiny", *(n for n in args.only.split(",") if n != "tiny"))
    runs = []
    for tree in trees:
        argv = [sys.executable, "-c", "import monitor.cli.commands"]
        runs.append(measure("import", argv, work, tree))
    for name in names:
        which, settings = SCENARIOS[name]
        for tree in trees:
            kw = {"concurrency": None, "max_bytes": None, **settings}
            runs.append(once(name, work, tree, sources[which], **kw))
    return runs


def report(runs: list[Run], feeds: int) -> None:
    trees = list(dict.fromkeys(r.tree for r in runs))
    base = {(r.name, r.tree): r for r in runs}
    print(f"{'run':<20} {'tree':<10} {'peak RSS MB':>11} {'- tiny':>7} {'CPU s':>7} "
          f"{'wall s':>7} {'exit':>4}")  # fmt: skip
    for r in runs:
        tiny = base[("tiny", r.tree)].rss_mb
        print(f"{r.name:<20} {r.tree[:10]:<10} {r.rss_mb:>11.0f} {r.rss_mb - tiny:>+7.0f} "
              f"{r.cpu:>7.2f} {r.wall:>7.1f} {r.code:>4}")  # fmt: skip
    if any((n, trees[0]) not in base for n in QUICK):
        return
    for tree in trees:
        tiny = base[("tiny", tree)].rss_mb
        main, serial = base[("corpus+big", tree)], base[("corpus+big c=1", tree)]
        accepted = base[("corpus+big accepted", tree)]
        print(f"[{tree}] {feeds} feeds + {BIG_MB} MB: tiny {tiny:.0f} MB; corpus+big "
              f"{main.rss_mb:.0f} MB = tiny + {main.rss_mb - tiny:.0f} "
              f"(concurrency 32 costs {main.rss_mb - serial.rss_mb:+.0f} MB over 1); "
              f"with the 60 MB body accepted {accepted.rss_mb:.0f} MB; target < 200 MB: "
              f"{'met' if max(main.rss_mb, accepted.rss_mb) < 200 else 'NOT met'}")  # fmt: skip


def serve(big_mb: int) -> None:
    """The server process: route the corpus and the big body, print their URLs as one JSON
    line, serve until stdin closes. Kept out of the measuring process, whose RSS a child
    inherits as its starting ru_maxrss (Linux carries the high-water mark across fork+exec)."""
    files = corpus_files(CORPUS)
    server = Server()
    urls, big = serve_all(server, files, big_mb)
    print(json.dumps({"urls": urls, "big": big, "tiny": server.url("/tiny")}), flush=True)
    sys.stdin.read()
    server.httpd.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only tiny, corpus+big (c=32, c=1) and corpus+big accepted",
    )
    parser.add_argument("--json", action="store_true", help="also print the runs as JSON")
    parser.add_argument("--only", metavar="A,B", help="these scenarios (and tiny) only")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also run the monitor package in DIR "
        "(a copy of another version's tree), interleaved, for before/after",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _procs.compile_package()  # as installed: see _procs.compile_package
    if not CORPUS.is_dir():
        print(f"skipped: {CORPUS} is not present")
        return
    if args.serve:
        serve(BIG_MB)
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    served = json.loads(server.stdout.readline())
    urls = served["urls"]
    print(
        f"{len(urls)} corpus feeds + one {BIG_MB} MB feed (chunked); "
        f"python {sys.version.split()[0]}; "
        f"bench process RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
    )
    others = args.compare.split(",") if args.compare else []
    trees = [ROOT, *(Path(d).resolve() for d in others)]
    try:
        for round_ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
                runs = one_round(Path(tmp), served, trees, args)
            print(f"\n[round {round_ + 1}]")
            report(runs, len(urls))
            if args.json:
                print(json.dumps([r.__dict__ for r in runs]))
    finally:
        server.stdin.close()
        server.wait()


if __name__ == "__main__":
    main()
