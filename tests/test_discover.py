"""`news-monitor discover URL`: the feeds a page advertises and the ones at common paths.

Real homepages and article pages from ../shared/corpus/articles (read in place: Corriere's
homepage, fundus pages) served by the loopback server, next to real feeds, and discovered by
the real command over real HTTP through the project's fetcher.
"""

from __future__ import annotations

import gzip
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from monitor.ingest.discover import COMMON_PATHS, advertised, candidates
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

FUNDUS = "articles/fundus-test-data"
CORRIERE_HOME = "articles/italian-news-html/corriere/homepage_2020-02-17.html"
JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "items": [
            {"id": "1", "title": "One", "url": "https://w.example/1",
             "date_published": "2026-02-01T10:00:00Z"},
            {"id": "2", "title": "Two", "url": "https://w.example/2",
             "date_published": "2026-02-03T07:30:00+01:00"},
        ],
    }
).encode()  # fmt: skip
HEADLINES = rss([Item("a", "Uno"), Item("b", "Due"), Item("c", "Tre")], title="Alle Hauptartikel")


def page(corpus: Path, relative: str) -> bytes:
    data = (corpus / relative).read_bytes()
    return gzip.decompress(data) if relative.endswith(".gz") else data


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "monitor.db"}"\ntimezone = "Europe/Rome"\n\n'
        '[[sources]]\nname = "wire"\nurl = "https://elsewhere.example/wire.xml"\n' + extra,
        encoding="utf-8",
    )
    return path


def discover(config: Path, clock, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "discover", *args], obj=clock)


def blocks(stdout: str) -> list[dict]:
    """The [[sources]] blocks printed, read back by a TOML parser: they must paste as they are."""
    return tomllib.loads(stdout).get("sources", [])


# ---------------------------------------------------------------- the pure part


def test_advertised_feeds_of_real_pages(corpus: Path) -> None:
    """Relative and absolute hrefs, Atom and RSS, in page order; WordPress's REST API link
    (`application/json`, /wp-json/) is no feed; a page with none gives none."""
    base = "https://site.example/a/b.html"
    welt = advertised(page(corpus, f"{FUNDUS}/de/JungeWelt_2024_04_26.html.gz"), url=base)
    assert len(welt) == 22 and welt[0].url == "https://site.example/feeds/newsticker.rss"
    assert welt[0].title == "junge Welt: Alle Hauptartikel"
    tagesschau = advertised(page(corpus, f"{FUNDUS}/de/Tagesschau_2023_04_28.html.gz"), url=base)
    assert [c.url for c in tagesschau] == [
        "https://www.tagesschau.de/index~atom.xml",
        "https://www.tagesschau.de/index~rss2.xml",
        "https://www.tagesschau.de/index~rdf.xml",
    ]
    ruhr = advertised(page(corpus, f"{FUNDUS}/de/RuhrNachrichten_2024_05_03.html.gz"), url=base)
    assert [c.url for c in ruhr] == ["https://www.ruhrnachrichten.de/feed/"]
    assert advertised(page(corpus, CORRIERE_HOME), url="https://www.corriere.it/") == []


def test_common_paths_on_the_site_and_in_the_pages_folder() -> None:
    found = [c.url for c in candidates(b"<html></html>", url="https://x.example/news/index.html")]
    assert found[: len(COMMON_PATHS)] == [f"https://x.example{p}" for p in COMMON_PATHS]
    assert "https://x.example/news/feed" in found and len(found) == 2 * len(COMMON_PATHS)


# ---------------------------------------------------------------- the command, over HTTP


def test_discover_a_real_page_lists_advertised_and_common_path_feeds(
    corpus: Path, tmp_path: Path, clock
) -> None:
    """junge Welt's page advertises 22 feeds (relative links); this site serves one of them,
    and a JSON Feed at /feed.json that the page does not advertise."""
    config = write_config(tmp_path)
    with LoopbackServer() as server:
        server.route("/", Reply(body=page(corpus, f"{FUNDUS}/de/JungeWelt_2024_04_26.html.gz")))
        server.route("/feeds/newsticker.rss", Reply(body=HEADLINES))
        server.route("/feed.json", Reply(body=JSON_FEED, headers={"Content-Type": "text/plain"}))
        done = discover(config, clock, server.url("/"))
        feed_url = server.url("/feeds/newsticker.rss")
    assert done.exit_code == 0, done.output
    found = blocks(done.stdout)
    assert found == [
        {"name": "alle-hauptartikel", "url": feed_url},
        {"name": "wire-2", "url": server.url("/feed.json")},  # "wire" is taken
    ]
    assert "# Alle Hauptartikel: 3 items, newest 2026-02-03 09:02 (advertised)" in done.stdout
    assert "# Wire: 2 items, newest 2026-02-03 07:30 (common path)" in done.stdout
    assert "2 feeds found" in done.stderr
    not_feeds = [ln for ln in done.stderr.splitlines() if ln.startswith("advertised but not")]
    assert len(not_feeds) == 21 and "404" in not_feeds[0]


def test_corriere_homepage_advertises_nothing_and_a_common_path_answers(
    corpus: Path, tmp_path: Path, clock
) -> None:
    config = write_config(tmp_path)
    with LoopbackServer() as server:
        server.route("/", Reply(body=page(corpus, CORRIERE_HOME)))
        server.route("/rss.xml", Reply(body=rss([Item("x", "Esteri")], title="Corriere")))
        server.route("/rss", Reply(body=rss([Item("x", "Esteri")], title="Corriere")))  # again
        done = discover(config, clock, server.url("/"), "--json")
        tried = {hit.path for hit in server.requests}
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["is_feed"] is False and report["not_feeds"] == []
    [feed] = report["feeds"]  # /rss and /rss.xml serve one body: listed once
    assert feed["url"] == server.url("/rss") and feed["via"] == "common path"
    assert (feed["title"], feed["items"], feed["name"]) == ("Corriere", 1, "corriere")
    assert feed["newest"] == "2026-02-03T08:00:00+00:00"
    assert blocks(feed["toml"]) == [{"name": "corriere", "url": server.url("/rss")}]
    assert set(COMMON_PATHS) <= tried


def test_a_feed_url_is_said_to_be_a_feed(tmp_path: Path, clock) -> None:
    config = write_config(tmp_path)
    with LoopbackServer() as server:
        server.route("/f.json", Reply(body=JSON_FEED, headers={"Content-Type": "application/json"}))
        done = discover(config, clock, server.url("/f.json"))
        requests = len(server.requests)
    assert done.exit_code == 0, done.output
    assert "is a feed itself" in done.stderr and requests == 1  # nothing else probed
    assert blocks(done.stdout) == [{"name": "wire-2", "url": server.url("/f.json")}]


def test_a_feed_already_configured_is_named_not_repeated(tmp_path: Path, clock) -> None:
    with LoopbackServer() as server:
        config = write_config(
            tmp_path, f'\n[[sources]]\nname = "hp"\nurl = "{server.url("/feed")}"\n'
        )
        server.route("/", Reply(body=b"<html><head><title>x</title></head></html>"))
        server.route("/feed", Reply(body=HEADLINES))
        done = discover(config, clock, server.url("/"))
    assert done.exit_code == 0, done.output
    assert blocks(done.stdout) == []
    assert f"{server.url('/feed')} is already configured as hp" in done.stdout


def test_no_feed_anywhere_is_exit_1_with_why(tmp_path: Path, clock) -> None:
    config = write_config(tmp_path)
    with LoopbackServer() as server:
        server.route("/", Reply(body=b"<html><body>hello</body></html>"))
        server.route("/feed", Reply(body=b"<html><body>soft 404</body></html>"))
        done = discover(config, clock, server.url("/"))
        gone = discover(config, clock, server.url("/nothing"))
    assert done.exit_code == 1 and "no feed found" in done.stderr and done.stdout == ""
    assert gone.exit_code == 1 and "cannot fetch" in gone.stderr and "404" in gone.stderr


def test_a_link_to_another_private_host_needs_allow_private(tmp_path: Path, clock) -> None:
    """The page (the user's URL) is trusted; a link it advertises to another host that is a
    loopback address is refused, as the daemon refuses such redirects, unless allowed."""
    config = write_config(tmp_path)
    with LoopbackServer() as server:
        elsewhere = f"http://localhost:{server.port}/private/news.xml"
        link = f'<link rel="alternate" type="application/rss+xml" href="{elsewhere}">'
        server.route("/", Reply(body=f"<html><head>{link}</head></html>".encode()))
        server.route("/private/news.xml", Reply(body=HEADLINES))
        refused = discover(config, clock, server.url("/"))
        allowed = discover(config, clock, server.url("/"), "--allow-private")
    assert refused.exit_code == 1 and "refused: a private, loopback" in refused.stderr
    assert allowed.exit_code == 0, allowed.output
    assert blocks(allowed.stdout) == [{"name": "alle-hauptartikel", "url": elsewhere}]


@pytest.mark.parametrize("url", ["ftp://x.example/", "not a url"])
def test_a_bad_url_is_a_usage_error(tmp_path: Path, clock, url: str) -> None:
    done = discover(write_config(tmp_path), clock, url)
    assert done.exit_code == 2 and "not an http:// or https:// URL" in done.output
