"""Fetcher against a real HTTP server on 127.0.0.1: what a poll sees and what the server sees."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import resource
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator

import pytest

from monitor import __version__
from monitor.errors import FetchError
from monitor.ingest.fetch import Fetcher
from tests.loopback import LoopbackServer, Reply, Seen


@pytest.fixture(scope="module")
def _shared_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        httpd = srv._httpd
        report = httpd.handle_error

        def quiet(request: object, client_address: object) -> None:
            # The fetcher drops connections on purpose (oversize, deadline): not worth a trace.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                report(request, client_address)

        httpd.handle_error = quiet  # type: ignore[method-assign]
        yield srv


@pytest.fixture
def server(_shared_server: LoopbackServer) -> LoopbackServer:
    """One server for the module (each shutdown costs 0.5 s), wiped before every test."""
    with _shared_server._lock:
        _shared_server.routes.clear()
        _shared_server.requests.clear()
    return _shared_server


FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def redirect(to: str, status: int = 302) -> Reply:
    return Reply(status, b"", {"Location": to})


async def test_200_sends_user_agent_and_hashes_body(server: LoopbackServer) -> None:
    server.route("/feed", Reply(200, FEED, {"Content-Type": "application/rss+xml"}))
    async with Fetcher() as fetcher:
        got = await fetcher.fetch(server.url("/feed"))
    assert got.status == 200 and got.body == FEED
    assert got.body_hash == hashlib.sha256(FEED).hexdigest()
    assert got.content_type == "application/rss+xml" and got.charset is None
    assert got.url == server.url("/feed")
    sent = server.hits("/feed")[0].headers
    ua = f"news-monitor/{__version__} (+https://github.com/news-monitor/news-monitor)"
    assert sent["User-Agent"] == ua
    assert "gzip" in sent["Accept-Encoding"]


async def test_etag_then_304(server: LoopbackServer) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.headers.get("If-None-Match") == '"v1"':
            return Reply(304)
        return Reply(200, FEED, {"ETag": '"v1"'})

    server.route("/feed", handler)
    async with Fetcher() as fetcher:
        first = await fetcher.fetch(server.url("/feed"))
        second = await fetcher.fetch(server.url("/feed"), etag=first.etag)
    assert first.status == 200 and first.etag == '"v1"'
    assert second.not_modified and second.body == b"" and second.body_hash is None
    assert second.etag == '"v1"'  # carried over: the 304 did not repeat it
    assert server.hits("/feed")[1].headers["If-None-Match"] == '"v1"'


async def test_last_modified_if_modified_since(server: LoopbackServer) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def handler(seen: Seen) -> Reply:
        if seen.headers.get("If-Modified-Since") == stamp:
            return Reply(304)
        return Reply(200, FEED, {"Last-Modified": stamp})

    server.route("/feed", handler)
    async with Fetcher() as fetcher:
        first = await fetcher.fetch(server.url("/feed"))
        second = await fetcher.fetch(server.url("/feed"), last_modified=first.last_modified)
    assert first.last_modified == stamp
    assert second.status == 304 and second.last_modified == stamp
    assert server.hits("/feed")[1].headers["If-Modified-Since"] == stamp


async def test_gzip_body_is_decompressed(server: LoopbackServer) -> None:
    server.route("/feed", Reply(200, gzip.compress(FEED), {"Content-Encoding": "gzip"}))
    async with Fetcher() as fetcher:
        got = await fetcher.fetch(server.url("/feed"))
    assert got.body == FEED and got.body_hash == hashlib.sha256(FEED).hexdigest()


@pytest.mark.parametrize(
    ("header", "ctype", "charset"),
    [
        ('text/xml; charset="ISO-8859-1"', "text/xml", "iso-8859-1"),
        ("Application/RSS+XML;Charset=UTF-8", "application/rss+xml", "utf-8"),
        ("text/html; boundary=x; charset=windows-1252 ", "text/html", "windows-1252"),
        ("text/html", "text/html", None),
    ],
)
async def test_charset_parsed_from_content_type(
    server: LoopbackServer, header: str, ctype: str, charset: str | None
) -> None:
    server.route("/feed", Reply(200, FEED, {"Content-Type": header}))
    async with Fetcher() as fetcher:
        got = await fetcher.fetch(server.url("/feed"))
    assert (got.content_type, got.charset) == (ctype, charset)


async def test_429_retry_after_seconds_and_host_memory(server: LoopbackServer) -> None:
    server.route("/busy", Reply(429, b"slow down", {"Retry-After": "120"}))
    server.route("/other", Reply(200, FEED))
    now = 1_700_000_000.0
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as first:
            await fetcher.fetch(server.url("/busy"), now=now)
        assert first.value.status == 429 and first.value.retry_after == 120
        assert "HTTP 429 Too Many Requests" in str(first.value)
        # Same host, another path, 30 s later: refused without a request.
        with pytest.raises(FetchError) as second:
            await fetcher.fetch(server.url("/other"), now=now + 30)
        assert second.value.retry_after == pytest.approx(90)
        assert "Retry-After" in str(second.value)
        assert server.hits("/other") == []
        assert fetcher.retry_after(server.url("/"), now=now + 30) == pytest.approx(90)
        # Once the window has closed the host is contacted again.
        got = await fetcher.fetch(server.url("/other"), now=now + 121)
    assert got.status == 200 and len(server.hits("/other")) == 1


async def test_429_retry_after_http_date(server: LoopbackServer) -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 300, usegmt=True)
    server.route("/busy", Reply(429, b"", {"Retry-After": date}))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as err:
            await fetcher.fetch(server.url("/busy"), now=now)
    assert err.value.status == 429 and err.value.retry_after == pytest.approx(300)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, 60.0), ({"Retry-After": "9999999"}, 86400.0), ({"Retry-After": "soon"}, 60.0)],
)
async def test_503_default_and_capped_retry_after(
    server: LoopbackServer, headers: dict[str, str], expected: float
) -> None:
    server.route("/down", Reply(503, b"maintenance", headers))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as err:
            await fetcher.fetch(server.url("/down"))
    assert err.value.status == 503 and err.value.retry_after == expected
    assert "HTTP 503 Service Unavailable" in str(err.value)


async def test_500_is_a_clear_error(server: LoopbackServer) -> None:
    server.route("/boom", Reply(500, b"Traceback..."))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as err:
            await fetcher.fetch(server.url("/boom"))
    assert err.value.status == 500 and err.value.retry_after is None
    assert str(err.value) == "HTTP 500 Internal Server Error"


async def test_slow_drip_is_cut_off_at_the_deadline(server: LoopbackServer) -> None:
    server.route("/drip", Reply(200, chunks=[b"x"] * 100, delay=0.5))
    t0 = time.monotonic()
    async with Fetcher(timeout=1.5) as fetcher:
        with pytest.raises(FetchError) as err:
            await fetcher.fetch(server.url("/drip"))
    assert "timed out" in str(err.value) and "1.5 s" in str(err.value)
    assert time.monotonic() - t0 < 5  # hang guard, not a benchmark


async def test_server_that_never_sends_headers_is_cut_off(server: LoopbackServer) -> None:
    release = threading.Event()

    def stall(seen: Seen) -> Reply:
        release.wait(10)
        return Reply(200, FEED)

    server.route("/stall", stall)
    t0 = time.monotonic()
    try:
        async with Fetcher(timeout=1.0) as fetcher:
            with pytest.raises(FetchError, match="timed out"):
                await fetcher.fetch(server.url("/stall"))
    finally:
        release.set()
    assert time.monotonic() - t0 < 5


async def test_content_length_over_cap_is_refused(server: LoopbackServer) -> None:
    server.route("/big", Reply(200, b"a" * 300_000))
    async with Fetcher(max_bytes=100_000) as fetcher:
        with pytest.raises(FetchError, match="Content-Length 300,000 bytes exceeds"):
            await fetcher.fetch(server.url("/big"))


async def test_oversized_body_without_length_is_cut(server: LoopbackServer) -> None:
    server.route("/big", Reply(200, chunks=[b"a" * 65_536] * 64))  # 4 MB, no Content-Length
    async with Fetcher(max_bytes=1_000_000) as fetcher:
        with pytest.raises(FetchError, match="more than 1,000,000 bytes after decompression"):
            await fetcher.fetch(server.url("/big"))


def _gzip_of_zeros(total: int) -> bytes:
    """A gzip stream that inflates to `total` zero bytes, built without holding them."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(total >> 20)]
    parts.append(comp.flush())
    return b"".join(parts)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def test_gzip_bomb_stops_at_cap_with_bounded_memory(server: LoopbackServer) -> None:
    bomb = _gzip_of_zeros(200 << 20)  # ~200 KB inflating to 200 MB
    assert len(bomb) < 1_000_000
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}
    server.route("/bomb", Reply(200, bomb, headers))
    before = _maxrss_mb()
    async with Fetcher(max_bytes=1_000_000) as fetcher:
        with pytest.raises(FetchError, match="after decompression"):
            await fetcher.fetch(server.url("/bomb"))
    assert _maxrss_mb() - before < 100


async def test_redirect_followed_relative_location(server: LoopbackServer) -> None:
    server.route("/old", redirect("/new", 301))
    server.route("/new", Reply(200, FEED))
    async with Fetcher() as fetcher:
        got = await fetcher.fetch(server.url("/old"))
    assert got.status == 200 and got.url == server.url("/new") and got.body == FEED


async def test_redirect_loop(server: LoopbackServer) -> None:
    server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a"))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match="redirect loop"):
            await fetcher.fetch(server.url("/a"))
    assert len(server.hits("/a")) == 1 and len(server.hits("/b")) == 1


async def test_too_many_redirects(server: LoopbackServer) -> None:
    for i in range(10):
        server.route(f"/r{i}", redirect(f"/r{i + 1}"))
    async with Fetcher(max_redirects=3) as fetcher:
        with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
            await fetcher.fetch(server.url("/r0"))
    assert server.hits("/r4") == []  # the fourth hop was never requested


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_redirect_to_loopback_refused_unless_allowed(
    server: LoopbackServer, host: str
) -> None:
    server.route("/start", redirect(f"http://{host}:{server.port}/inside"))
    server.route("/inside", Reply(200, b"secret"))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match="refused redirect") as err:
            await fetcher.fetch(server.url("/start"), allow_private=False)
        assert "private" in str(err.value)
        assert server.hits("/inside") == []
        got = await fetcher.fetch(server.url("/start"), allow_private=True)
    assert got.body == b"secret"


async def test_redirect_to_other_scheme_refused(server: LoopbackServer) -> None:
    server.route("/start", redirect("file:///etc/passwd"))
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match="not http or https"):
            await fetcher.fetch(server.url("/start"))


async def test_only_http_urls() -> None:
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match="not http or https"):
            await fetcher.fetch("ftp://example.org/feed.xml")


async def test_connection_refused_on_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Fetcher(timeout=5) as fetcher:
        with pytest.raises(FetchError) as err:
            await fetcher.fetch(f"http://127.0.0.1:{port}/feed")
    assert str(err.value) == f"connection refused by 127.0.0.1:{port}"


async def test_corrupt_gzip_is_a_clear_error(server: LoopbackServer) -> None:
    server.route(
        "/bad", Reply(200, b"\x1f\x8b\x08\x00not really gzip", {"Content-Encoding": "gzip"})
    )
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match="could not be decoded"):
            await fetcher.fetch(server.url("/bad"))


async def test_concurrent_fetches_respect_per_host_limit(server: LoopbackServer) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(seen: Seen) -> Reply:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return Reply(200, FEED)

    server.route("/slow", slow)
    async with Fetcher(per_host=3, concurrency=16) as fetcher:
        results = await asyncio.gather(
            *(fetcher.fetch(server.url(f"/slow?n={i}")) for i in range(15))
        )
    assert all(r.status == 200 for r in results)
    assert len(server.hits("/slow")) == 15
    assert 2 <= state["max"] <= 3


async def test_global_limit_across_hosts(server: LoopbackServer) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(seen: Seen) -> Reply:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return Reply(200, FEED)

    server.route("/slow", slow)
    hosts = ["127.0.0.1", "localhost"]
    async with Fetcher(per_host=4, concurrency=2) as fetcher:
        await asyncio.gather(
            *(fetcher.fetch(f"http://{hosts[i % 2]}:{server.port}/slow?n={i}") for i in range(10))
        )
    assert len(server.hits("/slow")) == 10
    assert state["max"] <= 2
