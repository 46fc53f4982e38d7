"""OPML in and out (`sources import`, `sources export`) and `sources --json`, as a user runs them.

Real OPML exports of other readers (Flym, RSS Guard, AntennaPod, The Old Reader, NetNewsWire's
test lists) are read in place from ../shared/corpus/parser-corpora, plus OPML written here. The
config is a real file: `--write` must keep every byte the user wrote, back it up first, and
leave a config the real loader accepts, or none of it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from monitor.config.loader import load
from monitor.config.values import valid_name
from monitor.errors import ParseError
from monitor.ingest.opml import MAX_FEEDS, parse_opml, write_opml
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

OPML_DIRS = "parser-corpora/feeder/androidTest-model/opml"
ATOMA = "parser-corpora/atoma/tests/opml"
CONFIG = """\
# my news-monitor config: these comments must survive an import byte for byte
[monitor]
database = "{db}"   # keep the database beside the config
timezone = "Europe/Rome"

[[sources]]
name = "smbc"                       # a name the import must not reuse
url = "https://example.org/smbc.xml"

[[sources]]
name = "arch"
url = "https://www.archlinux.org/feeds/news"   # http vs https, no trailing slash: same feed

[[rules]]
name = "talks"
query = "ceasefire"
"""
NESTED = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My reader</title></head>
  <body>
    <outline text="News">
      <outline text="Italia">
        <outline type="rss" text="Città di Roma" xmlUrl="https://roma.example/feed" language="it"/>
        <outline type="rss" text="Новости" xmlUrl="https://www.pravda.example/rss"/>
      </outline>
      <outline type="rss" title="SMBC" xmlUrl="https://smbc.example/rss.php"
               htmlUrl="https://smbc.example/"/>
    </outline>
    <outline type="rss" text="Roma &amp; Lazio" xmlUrl="https://roma.example/feed/"/>
    <outline type="rss" text="Bad" xmlUrl="javascript:alert(1)"/>
    <outline type="link" text="Just a page" url="https://x.example/"/>
  </body>
</opml>
"""


def accepts(name: str) -> bool:
    try:
        valid_name(name)
    except ValueError:
        return False
    return True


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_bytes(text.replace("{db}", str(tmp_path / "monitor.db")).encode("utf-8"))
    return path


def run(config: Path, clock, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj=clock)


def blocks(stdout: str) -> list[dict]:
    return tomllib.loads(stdout).get("sources", [])


# ---------------------------------------------------------------- reading real OPML files


@pytest.mark.parametrize(
    ("path", "title", "count", "first"),
    [
        (f"{OPML_DIRS}/Flym_auto_backup.opml", "Flym export", 11, ("SMBC", "black humor")),
        (f"{OPML_DIRS}/rssguard_2.opml", "RSS Guard", 30, ("avril de perthuis", "Amis")),
        (f"{OPML_DIRS}/antennapod-feeds.opml", "AntennaPod Subscriptions", 8, None),
        (f"{ATOMA}/nested-subscription-list.xml", "Nested", 5, ("1", "")),
        (f"{ATOMA}/broken-no-title.xml", "The Old Reader", 3, ("", "")),
        ("parser-corpora/rsparser/Resources/Subs.opml", "Subs", 206, ("Daring Fireball", "")),
    ],
)
def test_real_opml_exports(corpus: Path, path: str, title: str, count: int, first) -> None:
    opml = parse_opml((corpus / path).read_bytes())
    assert (opml.title, len(opml.feeds)) == (title, count)
    assert all(f.xml_url.startswith(("http://", "https://")) for f in opml.feeds)
    if first is not None:
        assert (opml.feeds[0].title, opml.feeds[0].category) == first


def test_nested_folders_are_flattened_and_repeats_skipped(corpus: Path) -> None:
    nested = parse_opml((corpus / f"{ATOMA}/nested-subscription-list.xml").read_bytes())
    assert [(f.title, f.category) for f in nested.feeds][2:4] == [("3", "nested"), ("4", "nested")]
    subs = parse_opml((corpus / "parser-corpora/rsparser/Resources/Subs.opml").read_bytes())
    assert subs.skipped == (("http://feed.katiefloyd.com/", "repeats http://feed.katiefloyd.com"),)


def test_broken_real_export_names_its_line(corpus: Path) -> None:
    """Plenary's export leaves a raw `<a href=...>` inside an attribute."""
    with pytest.raises(ParseError, match=r"^line 42, column 170: not well-formed XML: Unescaped"):
        parse_opml((corpus / f"{OPML_DIRS}/Programming.opml").read_bytes())


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + ']><opml version="2.0"><body><outline text="&i;" xmlUrl="https://x.example/"/></body></opml>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<opml version="2.0"><body><outline text="&x;" xmlUrl="https://x.example/"/></body></opml>'
)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (BOMB.encode(), "refused: the document declares XML entities"),
        (XXE.encode(), "refused: the document declares XML entities"),
        (b"", "empty file"),
        (b"<rss version='2.0'><channel/></rss>", "not an OPML file: the document is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "<opml> has no <body>"),
        (b"<opml><body>" + b"<outline>" * 5000 + b"</opml>", "not well-formed XML"),
        (b"<opml><body>" + b"x" * 10_000_001, "too large"),
    ],
    ids=["billion-laughs", "external-entity", "empty", "rss", "no-body", "deep", "huge"],
)
def test_hostile_and_wrong_files_are_clear_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_opml(data)
    assert fragment in str(caught.value)


def test_too_many_feeds_is_refused() -> None:
    outlines = "".join(f'<outline xmlUrl="https://f{i}.example/"/>' for i in range(MAX_FEEDS + 1))
    with pytest.raises(ParseError, match="more than 5,000 feeds"):
        parse_opml(f"<opml><body>{outlines}</body></opml>".encode())


# ---------------------------------------------------------------- `sources import`


def test_import_prints_blocks_named_uniquely_and_skips_what_is_configured(
    tmp_path: Path, clock
) -> None:
    config = write_config(tmp_path)
    opml = tmp_path / "reader.opml"
    opml.write_text(NESTED, encoding="utf-8")
    before = config.read_bytes()
    done = run(config, clock, "sources", "import", str(opml))
    assert done.exit_code == 0, done.output
    citta = "città-di-roma" if accepts("città") else "citta-di-roma"
    news = "новости" if accepts("новости") else "pravda"
    assert blocks(done.stdout) == [
        {"name": citta, "url": "https://roma.example/feed", "language": "it"},
        {"name": news, "url": "https://www.pravda.example/rss"},
        {"name": "smbc-2", "url": "https://smbc.example/rss.php"},  # "smbc" is configured
    ]
    assert "# Città di Roma · folder: News / Italia" in done.stdout
    assert "# SMBC · folder: News · https://smbc.example/" in done.stdout
    assert "5 feeds: 3 new, 0 already configured, 2 left out" in done.stderr
    assert "repeats https://roma.example/feed" in done.stderr  # the same feed, slash added
    assert "javascript:alert(1): not an http:// or https:// URL" in done.stderr
    assert config.read_bytes() == before and not list(tmp_path.glob("*.bak-*"))


def test_import_write_backs_up_appends_and_reloads(corpus: Path, tmp_path: Path, clock) -> None:
    config = write_config(tmp_path)
    before = config.read_bytes()
    flym = corpus / f"{OPML_DIRS}/Flym_auto_backup.opml"
    done = run(config, clock, "sources", "import", str(flym), "--write")
    assert done.exit_code == 0, done.output
    [backup] = tmp_path.glob("monitor.toml.bak-*")
    assert backup.name == "monitor.toml.bak-20260203110000"  # the clock, in Europe/Rome
    assert backup.read_bytes() == before and str(backup) in done.stderr
    after = config.read_bytes()
    assert after.startswith(before)  # every comment and byte of the user's file kept
    assert b"# imported from Flym_auto_backup.opml on 2026-02-03 11:00" in after
    names = [s.name for s in load(config).sources]
    assert names[:2] == ["smbc", "arch"] and len(names) == 2 + 10  # Arch news: configured
    assert "smbc-2" in names and "arch-news" not in names
    assert "already configured as arch" in done.stderr
    again = run(config, clock, "sources", "import", str(flym), "--write")
    assert again.exit_code == 0 and "0 new, 11 already configured" in again.stderr
    assert config.read_bytes() == after and len(list(tmp_path.glob("*.bak-*"))) == 1


def test_import_write_keeps_crlf_and_a_missing_final_newline(tmp_path: Path, clock) -> None:
    text = CONFIG.replace("\n", "\r\n").rstrip("\r\n")
    config = write_config(tmp_path, text)
    opml = tmp_path / "one.opml"
    opml.write_text(
        '<opml><body><outline text="One" xmlUrl="https://one.example/f"/></body></opml>'
    )
    done = run(config, clock, "sources", "import", str(opml), "--write")
    assert done.exit_code == 0, done.output
    after = config.read_bytes()
    assert b"\n" not in after.replace(b"\r\n", b"") and after.endswith(b"\r\n")
    assert [s.name for s in load(config).sources][-1] == "one"


def test_import_write_that_would_break_the_config_leaves_it_as_it_was(
    tmp_path: Path, clock
) -> None:
    """An inline `sources = [...]` cannot be extended by a [[sources]] block: the real loader
    says so, and the file is put back byte for byte."""
    config = write_config(
        tmp_path, 'sources = [{ name = "a", url = "https://a.example/f.xml" }]\n\n[monitor]\n'
    )
    before = config.read_bytes()
    opml = tmp_path / "one.opml"
    opml.write_text(
        '<opml><body><outline text="One" xmlUrl="https://one.example/f"/></body></opml>'
    )
    done = run(config, clock, "sources", "import", str(opml), "--write")
    assert done.exit_code == 2
    assert "would not load with the new sources; left as it was" in done.stderr
    assert "TOML syntax" in done.stderr and config.read_bytes() == before


def test_bad_opml_is_exit_2_naming_the_file(corpus: Path, tmp_path: Path, clock) -> None:
    config = write_config(tmp_path)
    broken = corpus / f"{OPML_DIRS}/Programming.opml"
    done = run(config, clock, "sources", "import", str(broken), "--write")
    assert done.exit_code == 2 and done.stdout == ""
    assert f"error: {broken}: line 42, column 170: not well-formed XML" in done.stderr
    assert not list(tmp_path.glob("*.bak-*"))
    missing = run(config, clock, "sources", "import", str(tmp_path / "nope.opml"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


# ---------------------------------------------------------------- `sources export`


def test_export_round_trips_through_import(tmp_path: Path, clock, monkeypatch) -> None:
    """The exported OPML imports into an empty config as the same names and URLs; a URL with
    a ${VAR} secret is exported as written, never with the secret."""
    monkeypatch.setenv("FEED_KEY", "s3cret-value")
    extra = (
        '\n[[sources]]\nname = "keyed"\nurl = "https://api.example/feed?key=${FEED_KEY}"\n'
        'language = "en"\n\n[[sources]]\nname = "page"\nkind = "html"\n'
        'url = "https://page.example/"\nlinks = "h2 a"\n'
    )
    config = write_config(tmp_path, CONFIG + extra)
    out = tmp_path / "export.opml"
    done = run(config, clock, "sources", "export", str(out))
    assert done.exit_code == 0, done.output
    assert (
        "wrote 3 feeds" in done.stderr
        and "not exported (pages without a feed): page" in done.stderr
    )
    text = out.read_text(encoding="utf-8")
    assert "s3cret" not in text and "key=${FEED_KEY}" in text
    assert run(config, clock, "sources", "export").stdout == text  # the same on stdout
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    empty = write_config(fresh, '[monitor]\ndatabase = "{db}"\n')
    back = run(empty, clock, "sources", "import", str(out))
    assert back.exit_code == 0, back.output
    assert blocks(back.stdout) == [
        {"name": "smbc", "url": "https://example.org/smbc.xml"},
        {"name": "arch", "url": "https://www.archlinux.org/feeds/news"},
    ]  # a ${VAR} from a file would read this machine's environment: added by hand only
    assert "left out https://api.example/feed?key=${FEED_KEY}: holds ${FEED_KEY}" in back.stderr
    same = run(config, clock, "sources", "import", str(out))
    assert "0 new, 3 already configured" in same.stderr and same.stdout == ""


def test_write_opml_escapes_what_it_writes() -> None:
    from datetime import UTC, datetime

    from monitor.ingest.opml import Outline

    feeds = [Outline('A "quoted" <b>&</b>', "https://x.example/f?a=1&b=2", "https://x.example/")]
    text = write_opml(feeds, title="mine", now=datetime(2026, 2, 3, tzinfo=UTC))
    [feed] = parse_opml(text.encode()).feeds
    assert feed == feeds[0] and 'version="2.0"' in text and "Tue, 03 Feb 2026" in text


# ---------------------------------------------------------------- `sources --json`


def test_sources_json_for_scripts(tmp_path: Path, clock) -> None:
    with LoopbackServer() as server:
        server.route("/feed", Reply(body=rss([Item("a", "Ceasefire"), Item("b", "Weather")])))
        config = write_config(
            tmp_path,
            '[monitor]\ndatabase = "{db}"\n\n[[sources]]\nname = "wire"\n'
            f'url = "{server.url("/feed")}"\n\n[[sources]]\nname = "gone"\n'
            f'url = "{server.url("/gone")}"\n',
        )
        assert run(config, clock, "once").exit_code == 0
    config.write_text(
        config.read_text() + '\n[[sources]]\nname = "later"\nurl = "https://l.example/f"\n'
    )
    done = run(config, clock, "sources", "--json")
    assert done.exit_code == 0, done.output
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["wire"]["status"] == "ok" and rows["wire"]["articles"] == 2
    assert rows["wire"]["last_success"] == "2026-02-03T10:00:00+00:00"
    assert rows["gone"]["status"] == "failing" and "404" in rows["gone"]["last_error"]
    assert rows["later"]["status"] == "new" and rows["later"]["articles"] == 0
    check = run(config, clock, "sources", "--check", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True
    table = run(config, clock, "sources")
    assert table.exit_code == 0 and table.stdout.startswith("source") and "later" in table.stdout
    mixed = run(config, clock, "sources", "--json", "export")
    assert mixed.exit_code == 2 and "--check and --json go with plain `sources`" in mixed.output
