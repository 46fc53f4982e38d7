"""Helpers for bench_poll.py: N distinct feeds, the loopback feed server, a webhook, configs.

The feed server runs in its own process (`python bench/_feeds.py serve ...`) so that serving
costs no CPU in the process being measured. Feeds are real ones from ../shared/corpus/feeds/news
when present, cycled; each copy gets its own GUIDs and links so that items are distinct across
feeds. One item in ten (`marked`), and one new item in ten, carries MARKER in its title and a
text of its own (`_vary`; so do all new items): the rule set "10%" (`write_config(rules="10%")`)
matches those, "none" matches nothing (see `rule_set`). Up to tens of thousands of feeds: the
parsed templates are shared between feeds, only the bodies are per feed (about 50 KB each).
A control API switches scenarios:

  POST /control/reset            every feed back to its first version, ETags on
  POST /control/etag?on=0|1      ETags (and 304 answers) on or off; off = identical bodies only
  POST /control/bump?every=10    one new item in every 10th feed
  POST /control/bump?feed=I&title=T   one new item (with title T) in feed I
  GET  /control/stats            requests served; ?feed=I&gen=G adds when that version was
                                 first served with a body (the poll that saw the new item)
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FEEDS = ROOT.parent / "shared" / "corpus" / "feeds" / "news"
SHIPPED_CONFIG = ROOT / "config" / "monitor.toml"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_WORD_TEXT = (
    "government council minister market energy court election city river storm school budget "
    "talks report police hospital train summit border vote strike festival museum bank port "
    "ukraine russia kyiv moscow ceasefire negotiations security guarantees peace"
)
WORDS = _WORD_TEXT.split()
MARKER = "zqmarker"  # in the title of one served item in ten; no real text has it


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(recover=True, resolve_entities=False, no_network=True, load_dtd=False)


def _generated_template(seed: int) -> bytes:
    """A plain RSS 2.0 feed for machines without the corpus."""
    items = []
    for k in range(25):
        words = [WORDS[(seed * 7 + k * 3 + j * 5) % len(WORDS)] for j in range(8)]
        title = " ".join(words[:6]).capitalize()
        text = " ".join(words * 6)
        items.append(
            f"<item><title>{title}</title><link>https://example.org/{seed}/{k}</link>"
            f"<guid>https://example.org/{seed}/{k}</guid><description>&lt;p&gt;{text}&lt;/p&gt;"
            f"</description><pubDate>Mon, 0{k % 9 + 1} Jun 2025 10:00:00 GMT</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Generated {seed}</title><link>https://example.org/{seed}/</link>"
        f"<description>generated</description><language>en</language>{''.join(items)}"
        "</channel></rss>"
    ).encode()


def templates() -> tuple[list[bytes], str]:
    """Feed bodies to copy: the corpus's news feeds (with items), else generated ones."""
    found: list[bytes] = []
    if CORPUS_FEEDS.is_dir():
        for path in sorted(CORPUS_FEEDS.glob("*.xml")):
            body = path.read_bytes()
            try:
                root = etree.fromstring(body, _parser())
            except (etree.LxmlError, ValueError):
                continue
            items = [] if root is None else list(root.iter("{*}item", "{*}entry"))
            # one parent for all items: skips the corpus's deliberately mis-nested feeds
            if items and len({id(item.getparent()) for item in items}) == 1:
                found.append(body)
    if found:
        return found, f"corpus ({len(found)} real feeds from {CORPUS_FEEDS})"
    return [_generated_template(s) for s in range(20)], "generated (corpus absent)"


def _set_ids(item: etree._Element, uid: str) -> None:
    """Give an item (RSS, RDF or Atom) its own link and GUID, keeping everything else."""
    link = f"https://bench.example.org/{uid}"
    if item.get(f"{{{RDF}}}about") is not None:
        item.set(f"{{{RDF}}}about", link)
    for child in item:
        name = _local(child.tag)
        if name in ("guid", "id", "origLink", "feedburner:origLink"):
            child.text = link
        elif name == "link":
            if child.get("href") is not None:
                child.set("href", link)
            else:
                child.text = link


def _set_title(item: etree._Element, title: str | None, tag: str) -> None:
    """Replace the title, or tag it: copies must not look like the same article (same text)."""
    for child in item:
        if _local(child.tag) == "title":
            if title is None:
                title = f"{''.join(child.itertext()).strip()} ({tag})"
            for sub in list(child):
                child.remove(sub)
            child.text = title
            return


def _set_date(item: etree._Element, when: datetime) -> None:
    """Date an item (RSS pubDate, Atom and Dublin Core dates) `when`."""
    for child in item:
        name = _local(child.tag)
        if name == "pubDate":
            child.text = format_datetime(when)
        elif name in ("date", "published", "updated", "issued", "modified"):
            child.text = when.strftime("%Y-%m-%dT%H:%M:%SZ")


_TEXTS = ("title", "description", "summary", "content", "encoded")
_TAG = re.compile(r"<[^>]+>")


def _words(items: list[etree._Element]) -> list[str]:
    """The words of the items' titles and texts: what `_vary` draws from (same language)."""
    found = []
    for item in items:
        for child in item:
            if _local(child.tag) in _TEXTS:
                found += _TAG.sub(" ", "".join(child.itertext())).split()
    return found or WORDS


def _vary(item: etree._Element, seed: str, words: list[str]) -> None:
    """A distinct article from a real one: about a third of the words of its title and texts
    swapped for other words of its feed (tags dropped). Without this, an item and its copies in
    other feeds are (rightly) taken for one article, and a matching item would cost only a copy
    lookup instead of an article's story work."""
    rnd = random.Random(seed)
    for child in item:
        if _local(child.tag) in _TEXTS:
            text = _TAG.sub(" ", "".join(child.itertext())).split()
            for sub in list(child):
                child.remove(sub)
            child.text = " ".join(rnd.choice(words) if rnd.random() < 0.34 else w for w in text)


@dataclass(frozen=True)
class Template:
    """A parsed template feed without its items; shared by every feed copied from it (never
    changed: a body is built from deep copies)."""

    skeleton: etree._Element
    parent_path: str
    position: int
    items: list[etree._Element]
    words: list[str]


def marked(index: int, k: int) -> bool:
    """Does item `k` of feed `index` carry MARKER? One in ten, across feeds and new items."""
    return (index // 10 + k) % 10 == 0


@dataclass
class Feed:
    """One served feed: its template, and the new items added since reset."""

    index: int
    template: Template
    size: int
    new_titles: list[str | None] = field(default_factory=list)
    cache: dict[int, bytes] = field(default_factory=dict)

    @property
    def gen(self) -> int:
        return len(self.new_titles)

    def body(self) -> bytes:
        gen = self.gen
        cached = self.cache.get(gen)
        if cached is not None:
            return cached
        t = self.template
        root = copy.deepcopy(t.skeleton)
        parent = root if not t.parent_path else root.find(t.parent_path)
        assert parent is not None
        fresh, now = [], datetime.now(UTC)
        for g in range(gen, 0, -1):  # newest first
            item = copy.deepcopy(t.items[0])
            _set_ids(item, f"f{self.index}/new{g}")
            _vary(item, f"f{self.index}/new{g}", t.words)  # real news items do not share text
            mark = f" {MARKER}" if marked(self.index, g) else ""
            _set_title(item, self.new_titles[g - 1], f"f{self.index} new {g}{mark}")
            _set_date(item, now)  # new news: else `max_age` holds it (its template is old)
            fresh.append(item)
        for k in range(self.size - len(fresh)):
            item = copy.deepcopy(t.items[k % len(t.items)])
            _set_ids(item, f"f{self.index}/i{k}")
            mark = ""
            if marked(self.index, k):  # a matching item is an article of its own
                _vary(item, f"f{self.index}/i{k}", t.words)
                mark = f" {MARKER}"
            _set_title(item, None, f"f{self.index} {k}{mark}")
            fresh.append(item)
        for offset, item in enumerate(fresh):
            parent.insert(t.position + offset, item)
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        self.cache = {gen: body}
        return body


def parse_template(body: bytes) -> Template:
    root = etree.fromstring(body, _parser())
    items = list(root.iter("{*}item", "{*}entry"))
    parent = items[0].getparent()
    assert parent is not None
    position = list(parent).index(items[0])
    for item in items:
        item.getparent().remove(item)
    path = "" if parent is root else root.getroottree().getelementpath(parent)
    return Template(root, path, position, items, _words(items))


class FeedServer:
    """The state behind the HTTP handler; one lock, since the server is threaded."""

    def __init__(self, feeds: int, items: int) -> None:
        bodies, self.origin = templates()
        parsed = [parse_template(b) for b in bodies]
        self.feeds = [Feed(i, parsed[i % len(parsed)], items) for i in range(feeds)]
        self.etags = True
        self.requests = 0
        self.served: dict[tuple[int, int], float] = {}
        self.lock = threading.Lock()
        for feed in self.feeds:
            feed.body()

    def reset(self) -> None:
        for feed in self.feeds:
            if feed.new_titles:
                feed.new_titles = []
                feed.body()
        self.etags = True
        self.served.clear()

    def bump(self, index: int, title: str | None) -> int:
        feed = self.feeds[index]
        feed.new_titles.append(title)
        feed.body()
        return feed.gen

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                if path == "/control/stats":
                    with server.lock:
                        out = {"requests": server.requests, "etags": server.etags}
                        if "feed" in args:
                            key = (int(args["feed"]), int(args["gen"]))
                            out["served_at"] = server.served.get(key)
                    self._reply(200, json.dumps(out).encode(), {"Content-Type": "text/json"})
                    return
                match = re.fullmatch(r"/f/(\d+)\.xml", path)
                if not match or int(match[1]) >= len(server.feeds):
                    self._reply(404, b"not found", {})
                    return
                index = int(match[1])
                with server.lock:
                    server.requests += 1
                    feed = server.feeds[index]
                    body, gen, etags = feed.body(), feed.gen, server.etags
                etag = f'"{index}-{gen}"'
                headers = {"Content-Type": "application/xml"}
                if etags:
                    headers["ETag"] = etag
                    if self.headers.get("If-None-Match") == etag:
                        self._reply(304, b"", headers)
                        return
                with server.lock:
                    server.served.setdefault((index, gen), time.time())
                self._reply(200, body, headers)

            def do_POST(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                out: dict[str, object] = {}
                with server.lock:
                    if path == "/control/reset":
                        server.reset()
                    elif path == "/control/etag":
                        server.etags = args.get("on", "1") == "1"
                    elif path == "/control/bump" and "every" in args:
                        every = int(args["every"])
                        bumped = [i for i in range(0, len(server.feeds), every)]
                        for i in bumped:
                            server.bump(i, None)
                        out["feeds"] = len(bumped)
                    elif path == "/control/bump":
                        from urllib.parse import unquote_plus

                        title = unquote_plus(args["title"]) if "title" in args else None
                        out["gen"] = server.bump(int(args["feed"]), title)
                    else:
                        self._reply(404, b"{}", {})
                        return
                out["at"] = time.time()
                self._reply(200, json.dumps(out).encode(), {"Content-Type": "text/json"})

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops concurrent SYNs: 1 s retransmit stalls

    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing a kept-alive connection is routine; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(feeds: int, items: int, port: int) -> None:
    """Entry point of the server process: prints `PORT n ORIGIN ...` once it listens."""
    state = FeedServer(feeds, items)
    httpd = _Server(("127.0.0.1", port), state.handler())
    print(f"PORT {httpd.server_address[1]} ORIGIN {state.origin}", flush=True)
    httpd.serve_forever()


# ----------------------------------------------------------------------- webhook receiver


class Webhook:
    """A loopback receiver for Apprise `json://` posts that records (arrival time, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, bytes]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.cond:
                    hook.posts.append((time.time(), raw))
                    hook.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, token: str, timeout: float) -> float | None:
        """Arrival time of the first post containing `token`, or None after `timeout` s."""
        needle = token.encode()
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, raw in self.posts:
                    if needle in raw:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------- configs


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


ABSENT = "zqabsent"  # a word no served item has
RULE_SETS = ("shipped", "10%", "none")


def rule_set(name: str) -> list[dict]:
    """The rules of a bench config.

    shipped: the four rules of config/monitor.toml (they match ~0.15 % of the served items);
    10%: those and `bench-marker` (MARKER, story mode), so ~10 % of items match and go through
        facts, story grouping and alerts;
    none: the same five rules, each also requiring ABSENT: the same matching work, no match.
    """
    shipped = tomllib.loads(SHIPPED_CONFIG.read_text())["rules"]
    if name == "shipped":
        return shipped
    # backfill: the served items carry their real (old) dates, which max_age would hold
    marker = {"name": "bench-marker", "query": MARKER, "alert": "story", "backfill": True}
    rules = [*shipped, marker]
    if name == "none":
        rules = [dict(r, query=f"({' '.join(r['query'].split())}) AND {ABSENT}") for r in rules]
    elif name != "10%":
        raise ValueError(f"unknown rule set {name!r}; one of {RULE_SETS}")
    return rules


def write_config(
    path: Path,
    *,
    database: Path,
    base_url: str,
    feeds: int,
    interval: str,
    concurrency: int,
    channels: dict[str, str] | None = None,
    rules: str = "shipped",
    log_level: str | None = None,
) -> None:
    """A real config: N sources on the loopback server and the rules of `rule_set(rules)`.

    With `channels`, every rule sends to all of them (the shipped rules print to stdout).
    `log_level`: None leaves the command's default (`once` logs errors only, as a user's does);
    bench_daemon asks for "debug", since it reads each poll's "polled" line.
    """
    shipped = tomllib.loads(SHIPPED_CONFIG.read_text())
    lines = [
        "[monitor]",
        f"database = {_toml_str(str(database))}",
        f'interval = "{interval}"',
        f'min_interval = "{interval}"',  # the bench polls faster than a user may by default
        f'timezone = "{shipped["monitor"].get("timezone", "UTC")}"',
        f"concurrency = {concurrency}",
        f"per_host = {concurrency}",
        'log_format = "json"',
        *([f'log_level = "{log_level}"'] if log_level else []),
        "",
        "[channels]",
    ]
    lines += [f"{name} = {_toml_str(url)}" for name, url in (channels or {}).items()]
    for i in range(feeds):
        lines += ["", "[[sources]]", f'name = "feed-{i}"', f'url = "{base_url}/f/{i}.xml"']
    for rule in rule_set(rules):
        lines += ["", "[[rules]]", f"name = {_toml_str(rule['name'])}"]
        lines.append(f"query = {_toml_str(' '.join(rule['query'].split()))}")
        for key in ("alert", "cooldown", "urgent", "digest", "quiet_hours", "backfill"):
            if key in rule and not (channels and key in ("digest", "quiet_hours")):
                value = rule[key]
                lines.append(f"{key} = {'true' if value is True else _toml_str(str(value))}")
        lines.append(f"channels = {json.dumps(list(channels or {}))}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.feeds, args.items, args.port)


if __name__ == "__main__":
    sys.exit(main())
