"""parse.py on real feeds (the shared corpus, one served over loopback HTTP) and hostile ones."""

from __future__ import annotations

import tracemalloc
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.ingest.parse import ParsedFeed, parse_feed, scan_items
from tests.loopback import LoopbackServer, Reply

FEED_URL = "https://www.example.org/rss/esteri.xml"
# Real headlines (Il Giornale, 2022; Corriere della Sera, 3 February 2026: the seed story).
GIORNALE = "Arrestato in Pakistan Shabbar Abbas. In Italia è accusato per l'omicidio di Saman"
CORRIERE = (
    "Garanzie di sicurezza per Kiev, una reazione in tre «step»: gli Usa agirebbero in 72 ore "
    "in caso di nuovo attacco russo"
)


def rss(items: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> str:
    return (
        f'{prolog}<rss version="2.0"><channel><title>Esteri</title>'
        f"<language>it-IT</language>{items}</channel></rss>"
    )


def item(title: str, link: str = "https://www.example.org/a/1", extra: str = "") -> str:
    return f"<item><title>{title}</title><link>{link}</link>{extra}</item>"


def index(corpus: Path) -> dict[str, list[str]]:
    lines = (corpus / "feeds" / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    return {line.split("\t")[0]: line.split("\t") for line in lines[1:]}


# --- the real corpus --------------------------------------------------------------------------


def test_every_corpus_news_feed_parses_or_raises_parse_error(corpus: Path) -> None:
    rows = index(corpus)
    news = sorted((corpus / "feeds" / "news").iterdir())
    assert len(news) >= 30
    for path in news:
        rel = f"news/{path.name}"
        try:
            parsed = parse_feed(path.read_bytes(), url=FEED_URL)
        except ParseError:
            continue
        assert isinstance(parsed, ParsedFeed)
        assert parsed.entries, rel
        _, _, _, _, bozo, _, count, _ = rows[rel]
        if bozo == "0":  # well-formed: exactly what feedparser itself reports
            assert len(parsed.entries) == int(count), rel
        for entry in parsed.entries:
            assert entry.published is None or entry.published.tzinfo is UTC


def test_malformed_but_salvageable_feed_returns_its_entries(corpus: Path) -> None:
    body = (corpus / "feeds/news/en_guardian-world_2022-09-25.rss.xml").read_bytes()
    parsed = parse_feed(body, url="https://www.theguardian.com/world/rss")
    assert len(parsed.entries) == 54
    assert parsed.entries[0].title.startswith("Saudi foreign minister defends role")
    assert parsed.language == "en-gb"


def test_declared_iso_8859_1_feed_keeps_its_accents(corpus: Path) -> None:
    body = (corpus / "feeds/news/pt_jornaldenoticias_iso-8859-1.rss.xml").read_bytes()
    parsed = parse_feed(body, url="https://feeds.jn.pt/JN-ULTIMAS")
    assert parsed.title == "Jornal de Notícias - Últimas Notícias"
    assert parsed.entries[0].title == "Mãe de utente é a nova presidente da Raríssimas"


def test_undeclared_latin_feed_keeps_its_accents(corpus: Path) -> None:
    body = (corpus / "feeds/news/pt_uol-noticias_no-decl.rss.xml").read_bytes()
    parsed = parse_feed(body, url="https://noticias.uol.com.br/feed")
    assert parsed.entries[0].title == (
        "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )


def test_windows_1251_feed_reads_as_cyrillic(corpus: Path) -> None:
    body = (corpus / "feeds/news/ru_windows-1251_2014-01-23.rss.xml").read_bytes()
    parsed = parse_feed(body, url="http://www.oren.ru/rss/")
    assert parsed.title == "Новости Оренбурга и области / Раздел Новости"
    assert parsed.entries[0].title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"
    assert parsed.entries[0].published == datetime(2014, 1, 22, 14, 31, 31, tzinfo=UTC)


def test_italian_feed_entry_fields(corpus: Path) -> None:
    body = (corpus / "feeds/news/it_ilgiornale-cronache_2022-09.rss.xml").read_bytes()
    parsed = parse_feed(body, url="https://www.ilgiornale.it/feed.xml")
    entry = parsed.entries[0]
    assert entry.title == GIORNALE
    assert entry.link and entry.link.startswith("https://www.ilgiornale.it/news/cronaca-nera/")
    assert entry.guid == entry.link
    assert entry.author and "Angela Leucci" in entry.author
    assert entry.language == "it"
    assert entry.published == datetime(2022, 11, 15, 20, 15, 4, tzinfo=UTC)
    assert "<" in entry.summary_html or entry.summary_html  # raw HTML kept for normalize


def test_atom_feed_relative_links_resolve_against_the_feed_url(corpus: Path) -> None:
    body = (corpus / "feeds/news/en_talkingpointsmemo_2017-11-08.atom.xml").read_bytes()
    parsed = parse_feed(body, url="https://talkingpointsmemo.com/feed/all")
    entry = parsed.entries[0]
    assert entry.guid == "tag:talkingpointsmemo.com,2005:ArticleDecorator/270060"
    assert entry.link == (
        "https://talkingpointsmemo.com/livewire/"
        "hannity-announces-fox-hired-sebastian-gorka-national-security-strategist"
    )
    assert entry.author == "Esme Cribb"
    assert entry.content_html


def test_json_and_html_corpus_files_are_not_feeds(corpus: Path) -> None:
    json_body = (corpus / "feeds/derived/en_newsapi-nbc-news_2024-05.json").read_bytes()
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(
            json_body, url="https://newsapi.org/v2/top-headlines", content_type="application/json"
        )
    page = (corpus / "articles/italian-news-html/corriere/homepage_2020-02-17.html").read_bytes()
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(page, url="https://www.corriere.it/", content_type="text/html")


# --- encodings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prolog", "charset"),
    [
        ('<?xml version="1.0" encoding="ISO-8859-1"?>\n', None),  # declared in the document
        ("", "ISO-8859-1"),  # declared only in the HTTP header
        ("", None),  # declared nowhere (falls back to windows-1252, a superset)
    ],
)
def test_italian_latin1_feed_keeps_accents(prolog: str, charset: str | None) -> None:
    body = rss(item(GIORNALE) + item(CORRIERE, "/b/2"), prolog=prolog).encode("iso-8859-1")
    parsed = parse_feed(body, url=FEED_URL, charset=charset, content_type="text/xml")
    assert [e.title for e in parsed.entries] == [GIORNALE, CORRIERE]


def test_utf8_feed_mislabelled_latin1_by_the_server_keeps_accents() -> None:
    body = rss(item(CORRIERE)).encode("utf-8")
    parsed = parse_feed(body, url=FEED_URL, charset="iso-8859-1", content_type="text/xml")
    assert parsed.entries[0].title == CORRIERE


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_wide_unicode_feeds_parse(codec: str) -> None:
    text = rss(item(CORRIERE), prolog=f'<?xml version="1.0" encoding="{codec}"?>\n')
    body = text.encode(codec)
    if codec == "utf-16-be":
        body = b"\xfe\xff" + body
    assert parse_feed(body, url=FEED_URL).entries[0].title == CORRIERE


def test_charset_from_a_real_http_response(server: LoopbackServer) -> None:
    """Served without an XML declaration; only the Content-Type header says ISO-8859-1."""
    body = rss(item(GIORNALE), prolog="").encode("iso-8859-1")
    server.route(
        "/feed", Reply(body=body, headers={"Content-Type": "text/xml; charset=ISO-8859-1"})
    )
    with urllib.request.urlopen(server.url("/feed"), timeout=5) as resp:
        data, ctype = resp.read(), resp.headers.get_content_type()
        charset = resp.headers.get_content_charset()
    parsed = parse_feed(data, url=server.url("/feed"), charset=charset, content_type=ctype)
    assert parsed.entries[0].title == GIORNALE
    assert parsed.language == "it-IT"


# --- what is not a feed -----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\x00\x00"])
def test_empty_body_is_an_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty response"):
        parse_feed(body, url=FEED_URL)


@pytest.mark.parametrize(
    "body",
    [
        b"<!doctype html><html><head><title>Corriere</title></head><body><p>Ciao</p></body></html>",
        b'{"status": "ok", "articles": [{"title": "Kyiv"}]}',
        b"Service temporarily unavailable",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
)
def test_non_feeds_are_errors(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, url=FEED_URL)


def test_well_formed_feed_without_items_has_no_entries() -> None:
    parsed = parse_feed(rss("").encode(), url=FEED_URL)
    assert parsed.title == "Esteri" and parsed.entries == ()


def test_malformed_feed_without_items_has_no_entries() -> None:
    body = b'<rss version="2.0"><channel><title>Esteri&nbsp;</title></channel></rss>'
    parsed = parse_feed(body, url=FEED_URL)  # &nbsp; is undefined in XML: feedparser's bozo
    assert parsed.title == "Esteri" and parsed.entries == ()


# --- hostile XML ------------------------------------------------------------------------------


def _bounded(body: bytes) -> ParseError:
    """Parse, expecting ParseError, and check memory stayed near the input size."""
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as info:
            parse_feed(body, url=FEED_URL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(body) + 2_000_000
    return info.value


def test_large_entity_repeated_many_times_is_refused() -> None:
    # One declaration per line is the form feedparser's lenient fallback expands: unguarded,
    # this 60 KB body becomes a 102 MB title (about 320 MiB of process memory).
    body = rss(
        item("&big;" * 10_000),
        prolog=f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "{"A" * 10_240}">\n]>\n',
    ).encode()
    assert "entit" in str(_bounded(body))


def test_billion_laughs_is_refused() -> None:
    decls = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    ]
    subset = "\n".join(decls)
    prolog = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n{subset}\n]>\n'
    _bounded(rss(item("&lol9;"), prolog=prolog).encode())


def test_internal_subset_without_entities_is_refused() -> None:
    prolog = '<?xml version="1.0"?>\n<!DOCTYPE rss [<!ELEMENT rss ANY>]>\n'
    with pytest.raises(ParseError, match="DTD"):
        parse_feed(rss(item("x"), prolog=prolog).encode(), url=FEED_URL)


def test_entity_bomb_in_utf16_is_refused() -> None:
    prolog = '<?xml version="1.0" encoding="utf-16"?>\n<!DOCTYPE r [<!ENTITY e "x">]>\n'
    with pytest.raises(ParseError, match="entit"):
        parse_feed(rss(item("&e;"), prolog=prolog).encode("utf-16"), url=FEED_URL)


def test_entity_bomb_hidden_in_utf7_is_refused() -> None:
    # "+ADw-" is "<" in UTF-7: the bytes never contain "<!ENTITY" but feedparser would decode it.
    body = (
        b'<?xml version="1.0" encoding="utf-7"?>\n'
        b'+ADw-!DOCTYPE rss +AFs-+ADw-!ENTITY e "x"+AD4-+AF0-+AD4-'
        b'<rss version="2.0"><channel><item><title>&e;</title></item></channel></rss>'
    )
    with pytest.raises(ParseError, match="entit"):
        parse_feed(body, url=FEED_URL)


def test_plain_doctype_without_internal_subset_parses() -> None:
    prolog = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
    )
    body = rss(item(CORRIERE), prolog=prolog).encode("iso-8859-1")
    assert parse_feed(body, url=FEED_URL).entries[0].title == CORRIERE


# --- entry mapping ----------------------------------------------------------------------------


def test_nul_bytes_are_stripped() -> None:
    body = rss(item("Kyiv\x00 talks")).encode().replace(b"<channel>", b"<chan\x00nel>")
    assert parse_feed(body, url=FEED_URL).entries[0].title == "Kyiv talks"


def test_relative_link_resolved_guid_kept_raw() -> None:
    extra = '<guid isPermaLink="false">1559104147038</guid>'
    body = rss(item("x", "/esteri/26_febbraio_03/kiev.shtml", extra)).encode()
    entry = parse_feed(body, url=FEED_URL).entries[0]
    assert entry.link == "https://www.example.org/esteri/26_febbraio_03/kiev.shtml"
    assert entry.guid == "1559104147038"


def test_atom_prefers_the_alternate_link() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><title>World</title>
<entry><id>urn:uuid:1</id><title type="html">Talks in &lt;b&gt;Abu Dhabi&lt;/b&gt;</title>
<link rel="self" href="https://api.example.org/e/1"/>
<link rel="alternate" type="text/html" href="https://www.example.org/world/1"/>
<link rel="enclosure" href="https://cdn.example.org/1.jpg"/>
<updated>2026-02-03T10:00:00+01:00</updated><author><name>Jane Roe</name></author>
<summary type="html">&lt;p&gt;Short&lt;/p&gt;</summary>
<content type="html">&lt;p&gt;Long &lt;i&gt;text&lt;/i&gt;&lt;/p&gt;</content></entry></feed>"""
    entry = parse_feed(body, url=FEED_URL).entries[0]
    assert entry.link == "https://www.example.org/world/1"
    assert entry.guid == "urn:uuid:1"
    assert entry.title == "Talks in <b>Abu Dhabi</b>"  # raw: normalize turns it into text
    assert entry.summary_html == "<p>Short</p>"
    assert entry.content_html == "<p>Long <i>text</i></p>"
    assert entry.updated == datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    assert entry.published is None
    assert entry.author == "Jane Roe"
    assert entry.language == "en"


def test_nonsense_dates_become_none() -> None:
    body = rss(
        item("old", "/1", "<pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate>")
        + item("far", "/2", "<pubDate>Fri, 01 Jan 2300 00:00:00 GMT</pubDate>")
        + item("junk", "/3", "<pubDate>yesterday-ish</pubDate>")
        + item("ok", "/4", "<pubDate>Tue, 03 Feb 2026 07:12:00 +0100</pubDate>")
    ).encode()
    entries = parse_feed(body, url=FEED_URL).entries
    assert [e.published for e in entries[:3]] == [None, None, None]
    assert entries[3].published == datetime(2026, 2, 3, 6, 12, tzinfo=UTC)


def test_empty_media_thumbnail_does_not_break_anything() -> None:
    ns = ' xmlns:media="http://search.yahoo.com/mrss/"'
    body = rss(item("Kyiv", extra='<media:thumbnail url=""/><media:content url=""/>'))
    body = body.replace('<rss version="2.0"', f'<rss version="2.0"{ns}')
    entry = parse_feed(body.encode(), url=FEED_URL).entries[0]
    assert entry.title == "Kyiv" and entry.link == "https://www.example.org/a/1"


def test_entry_without_link_or_guid_is_kept_with_none() -> None:
    body = rss("<item><title>Only a title</title></item>").encode()
    entry = parse_feed(body, url=FEED_URL).entries[0]
    assert (entry.guid, entry.link, entry.title) == (None, None, "Only a title")


# --- the pre-scan's item keys ----------------------------------------------------------------


def scan_ids(body: bytes, *, url: str = "") -> list[str] | None:
    """The keys of parse.scan_items, in document order (None when it is unsure)."""
    items = scan_items(body, url=url)
    return None if items is None else [key for key, _ in items]


def test_scan_ids_agrees_with_the_full_parser_on_the_corpus(corpus: Path) -> None:
    rows = index(corpus)
    scanned = 0
    for rel, row in rows.items():
        path = corpus / "feeds" / rel
        if row[4] != "0" or not path.is_file():
            continue
        body = path.read_bytes()
        ids = scan_ids(body, url=FEED_URL)
        full = [e.guid or e.link for e in parse_feed(body, url=FEED_URL).entries]
        if ids is not None:  # None only means "unsure, run the full parser"
            assert ids == full, rel
            scanned += 1
    assert scanned >= 60


def test_scan_ids_reads_rss_atom_and_rdf() -> None:
    assert scan_ids(
        rss(item("a", "/x", "<guid>g1</guid>") + item("b", "/y")).encode(), url=FEED_URL
    ) == [
        "g1",
        "https://www.example.org/y",
    ]
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>urn:1</id></entry>
<entry><link rel="alternate" href="https://e.org/2"/></entry></feed>"""
    assert scan_ids(atom) == ["urn:1", "https://e.org/2"]
    rdf = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/"><item rdf:about="https://e.org/r1"><link>https://e.org/x</link>
</item></rdf:RDF>"""
    assert scan_ids(rdf) == ["https://e.org/r1"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>not a feed</body></html>",
        b'{"items": []}',
        rss("").encode(),  # no items: nothing to compare, let the full parser decide
        rss(item("a") + "<item><title>no id</title></item>").encode(),
        rss(item("a & b")).encode(),  # not well-formed: lxml may have dropped items
        rss(item("&e;"), prolog='<!DOCTYPE r [<!ENTITY e "x">]>').encode(),
    ],
)
def test_scan_ids_returns_none_when_unsure(body: bytes) -> None:
    assert scan_ids(body) is None
