"""normalize.py: canonical URLs, HTML -> text, dates, language, fingerprints, articles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.ingest.identity import has_link
from monitor.ingest.normalize import (
    MAX_HTML,
    SUMMARY_CHARS,
    canonical_url,
    detect_language,
    fingerprint,
    html_to_text,
    normalize_language,
    to_article,
    to_articles,
    to_utc,
)
from monitor.ingest.parse import parse_feed
from monitor.models import RawEntry, Source

NOW = datetime(2026, 2, 3, 12, 0, tzinfo=UTC)
SOURCE = Source(name="corriere-esteri", url="https://xml2.corriereobjects.it/rss/esteri.xml")
# Real headlines: Corriere della Sera 3 Feb 2026 (the seed story), Il Messaggero, Il Giornale.
CORRIERE = (
    "Garanzie di sicurezza per Kiev, una reazione in tre «step»: gli Usa agirebbero in 72 ore "
    "in caso di nuovo attacco russo"
)
CORRIERE_SUB = (
    "Nuovi colloqui Mosca-Kiev ad Abu Dhabi (presenti anche gli Usa). Pioggia di missili "
    "sull'Ucraina durante la visita di Rutte"
)
MESSAGGERO = "Missili Polonia, cosa è successo? Tensione Nato-Russia, Mosca: non siamo stati noi"
GIORNALE = "Arrestato in Pakistan Shabbar Abbas. In Italia è accusato per l'omicidio di Saman"


# --- canonical_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://WWW.Corriere.IT/esteri/", "https://www.corriere.it/esteri/"),
        ("https://www.corriere.it:443/esteri/a.shtml", "https://www.corriere.it/esteri/a.shtml"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("http://example.org:8080/a", "http://example.org:8080/a"),
        ("https://example.org/a#comments", "https://example.org/a"),
        ("https://example.org/a?", "https://example.org/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org./a", "https://example.org/a"),
        (
            "https://www.theguardian.com/world/2026/feb/03/kyiv?CMP=share_btn_tw&utm_source=x",
            "https://www.theguardian.com/world/2026/feb/03/kyiv",
        ),
        (
            "https://www.bbc.co.uk/news/world-68?at_medium=RSS&at_campaign=KARANGA",
            "https://www.bbc.co.uk/news/world-68",
        ),
        (
            "https://e.org/p?utm_source=rss&utm_medium=feed&fbclid=Iw&gclid=1&mc_cid=a&mc_eid=b"
            "&ocid=x&cmpid=y&ref=tw&xtor=RSS-1&__twitter_impression=true&id=7",
            "https://e.org/p?id=7",
        ),
        ("https://e.org/p?b=2&a=1&c=", "https://e.org/p?a=1&b=2&c="),
        ("https://e.org/p?q=a+b&q=a%2bb", "https://e.org/p?q=a%2Bb&q=a+b"),
        ("https://e.org/%7euser/%e2%82%ac", "https://e.org/~user/%E2%82%AC"),
        ("https://e.org/città ucraine", "https://e.org/citt%C3%A0%20ucraine"),
        ("https://e.org/100%", "https://e.org/100%25"),
        ("https://e.org/a%2Fb", "https://e.org/a%2Fb"),  # an escaped slash is not a slash
        ("  https://e.org/a  ", "https://e.org/a"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("tag:talkingpointsmemo.com,2005:Article/1", "tag:talkingpointsmemo.com,2005:Article/1"),
        ("1559104147038", "1559104147038"),
        ("https://[broken/x", "https://[broken/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected


def test_canonical_url_is_idempotent_on_every_corpus_link(corpus: Path) -> None:
    links = 0
    for path in sorted((corpus / "feeds" / "news").iterdir()):
        for entry in parse_feed(path.read_bytes(), url="https://example.org/feed").entries:
            for value in (entry.link, entry.guid):
                if value:
                    once = canonical_url(value)
                    assert canonical_url(once) == once, value
                    links += 1
    assert links > 500


# --- html_to_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("Kyiv  and\tMoscow ", "Kyiv and Moscow"),
        ("line one\n\n  line two", "line one\nline two"),
        ("Tom &amp; Jerry &egrave; &#233; &#x263A;", "Tom & Jerry è é ☺"),
        ("AT&T and 5 < 6", "AT&T and 5 < 6"),
        ("<p>Garanzie di&nbsp;sicurezza</p><p>per Kiev</p>", "Garanzie di sicurezza\nper Kiev"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<b>bold</b> <i>it</i>alic", "bold italic"),
        (
            "<script>alert('x')</script><style>p{color:red}</style>"
            "<noscript>enable js</noscript>Text<!-- a comment -->",
            "Text",
        ),
        ("<ul><li>one</li><li>two <ul><li>nested</li></ul></li></ul>", "one\ntwo\nnested"),
        ("<table><tr><td>Kyiv</td><td>-25°</td></tr></table>", "Kyiv -25°"),
        ("<p>unclosed <b>bold <i>italic</p> tail", "unclosed bold italic\ntail"),
        ("<div><p>x</div></span></p>", "x"),
        ("a\x00b\x07c", "abc"),
        ("<p>a\x00b</p>", "ab"),
        ('<img src="x.jpg" alt="photo">Caption', "Caption"),
        ("<![CDATA[odd]]>text", "text"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_survives_hostile_markup() -> None:
    deep = "<div>" * 100_000 + "deep text" + "</div>" * 100_000
    assert "deep text" in html_to_text(deep)
    huge = html_to_text("<p>" + "parola " * 1_000_000 + "</p>")
    assert 0 < len(huge) <= MAX_HTML
    assert html_to_text("<" * 10_000) is not None
    assert html_to_text("<a href='" * 50_000) is not None
    assert html_to_text("\ud800 lone surrogate") == "lone surrogate"


def test_html_to_text_on_real_feed_items(corpus: Path) -> None:
    body = (corpus / "feeds/news/de_golem_iso-8859-1.rss.xml").read_bytes()
    for entry in parse_feed(body, url="https://rss.golem.de/rss.php").entries:
        text = html_to_text(entry.content_html)
        assert text and "<" not in text.replace("< ", "") and "&amp;" not in text


# --- dates ------------------------------------------------------------------------------------


def test_to_utc() -> None:
    rome = timezone(timedelta(hours=1))
    assert to_utc(datetime(2026, 2, 3, 8, 30, tzinfo=rome), now=NOW) == datetime(
        2026, 2, 3, 7, 30, tzinfo=UTC
    )
    naive = to_utc(datetime(2026, 2, 3, 8, 30), now=NOW)
    assert naive == datetime(2026, 2, 3, 8, 30, tzinfo=UTC) and naive.tzinfo is UTC
    assert to_utc(None, now=NOW) is None
    assert to_utc(datetime(1989, 12, 31, tzinfo=UTC), now=NOW) is None
    assert to_utc(datetime(1990, 1, 1, tzinfo=UTC), now=NOW) is not None
    assert to_utc(NOW + timedelta(hours=23), now=NOW) is not None  # clock skew, time zones
    assert to_utc(NOW + timedelta(days=2), now=NOW) is None


# --- language ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (CORRIERE, "it"),
        (CORRIERE_SUB, "it"),
        (MESSAGGERO, "it"),
        (GIORNALE, "it"),
        ("Zelensky accuses Putin of breaking the energy truce as talks resume in Abu Dhabi", "en"),
        ("Ukraine war to take centre stage at UN as west and Russia vie for support", "en"),
        ("Saudi foreign minister defends role in securing Ukraine prisoner swaps", None),
        ("Die Bundesregierung will die Glasfaserförderung mit neuen Regeln für den Ausbau", "de"),
        ("Perturbateurs endocriniens : quels effets sur le cerveau ? Une étude de la revue", "fr"),
        ("Mãe de utente é a nova presidente da Raríssimas, após a demissão do fundador", "pt"),
        ("El presidente de Ucrania pide más ayuda para la defensa de las ciudades", "es"),
        ("Торгівля між Росією та Китаєм у 2023 році перевищила 240 мільярдів доларів", "uk"),
        ("В Бузулуке главные стройплощадки – детсад и Ледовый дворец", "ru"),
        ("", None),
        ("Kyiv", None),
        ("2026 — 72 / 450", None),
        ("Analytici Goldman Sachs zvýšili odhad rastu ekonomiky Slovenska na tento rok", None),
    ],
)
def test_detect_language(text: str, lang: str | None) -> None:
    assert detect_language(text) == lang


def test_detect_language_on_real_corpus_feeds(corpus: Path) -> None:
    for name, lang in [
        ("en_bbc-news-frontpage_2024-05-19.rss.xml", "en"),
        ("en_guardian-world_2022-09-25.rss.xml", "en"),
        ("fr_lemonde-une.rss.xml", "fr"),
        ("de_heise_rss0.9-rdf.xml", "de"),
    ]:
        entries = parse_feed(
            (corpus / "feeds/news" / name).read_bytes(), url="https://e.org/"
        ).entries
        found = [detect_language(f"{e.title}\n{html_to_text(e.summary_html)}") for e in entries]
        right = sum(f == lang for f in found)
        wrong = sum(f not in (lang, None) for f in found)
        assert right >= 0.9 * len(found) and wrong <= 1, name


@pytest.mark.parametrize(
    ("code", "lang"),
    [("it-IT", "it"), ("IT-it", "it"), ("en_US", "en"), ("en-gb", "en"), ("de", "de"),
     ("", None), (None, None), ("x", None), ("italiano", None), ("12", None)],
)  # fmt: skip
def test_normalize_language(code: str | None, lang: str | None) -> None:
    assert normalize_language(code) == lang


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_collides_for_exact_copies_only() -> None:
    a = fingerprint(CORRIERE, CORRIERE_SUB)
    assert a == fingerprint(f"  {CORRIERE.upper()} ", CORRIERE_SUB.replace(" ", "\n  "))
    assert a == fingerprint(CORRIERE.replace("«", '"').replace("»", '"'), CORRIERE_SUB)
    assert a != fingerprint(CORRIERE, CORRIERE_SUB.replace("Rutte", "Stoltenberg"))
    assert a != fingerprint(MESSAGGERO, CORRIERE_SUB)
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert len(a) == 32 and int(a, 16) >= 0


# --- to_article -------------------------------------------------------------------------------


def raw(**kw: object) -> RawEntry:
    base: dict[str, object] = {
        "guid": "https://www.corriere.it/esteri/26_febbraio_03/garanzie.shtml",
        "link": "https://www.corriere.it/esteri/26_febbraio_03/garanzie.shtml?utm_source=rss#x",
        "title": CORRIERE,
        "summary_html": f"<p>{CORRIERE_SUB}</p>",
    }
    base.update(kw)
    return RawEntry(**base)  # type: ignore[arg-type]


def test_to_article_builds_the_article() -> None:
    published = datetime(2026, 2, 3, 7, 12, tzinfo=UTC)
    entry = raw(content_html="<p>Riprendono i <b>bombardamenti</b>.</p>", published=published)
    art = to_article(entry, source=SOURCE, feed_language="it-IT", now=NOW)
    assert art is not None
    assert art.source == "corriere-esteri"
    assert art.url == "https://www.corriere.it/esteri/26_febbraio_03/garanzie.shtml"
    assert art.guid == entry.guid
    assert art.title == CORRIERE
    assert art.summary == CORRIERE_SUB
    assert art.text == "Riprendono i bombardamenti."
    assert art.language == "it"
    assert art.published == published and art.first_seen == NOW
    assert art.fingerprint == fingerprint(art.title, art.text)


def test_to_article_fallbacks() -> None:
    no_link = to_article(raw(link=None), source=SOURCE, feed_language=None, now=NOW)
    assert no_link is not None and no_link.url == canonical_url(raw().guid or "")
    no_guid = to_article(raw(guid=None), source=SOURCE, feed_language=None, now=NOW)
    assert no_guid is not None and no_guid.guid == no_guid.url
    odd_guid = to_article(raw(guid="1559104147038"), source=SOURCE, feed_language=None, now=NOW)
    assert odd_guid is not None and odd_guid.guid == "1559104147038"
    assert odd_guid.text == CORRIERE_SUB  # no content: the summary is the text
    assert odd_guid.published == NOW  # no date: first seen


def test_to_article_keeps_an_item_without_a_web_link_under_a_key_that_is_not_a_link() -> None:
    """A `urn:`/`tag:` GUID, or only a headline: kept, keyed per source, never as a link."""
    urn = to_article(raw(link=None, guid="urn:uuid:1"), source=SOURCE, feed_language=None, now=NOW)
    assert urn is not None and urn.guid == "urn:uuid:1"
    assert urn.url == "guid:corriere-esteri/urn:uuid:1" and not has_link(urn)
    linked = to_article(raw(), source=SOURCE, feed_language=None, now=NOW)
    assert linked is not None and has_link(linked)
    bad_link = raw(link="javascript:alert(1)", guid="tag:corriere.it,2026:7")
    bad = to_article(bad_link, source=SOURCE, feed_language=None, now=NOW)
    assert bad is not None and bad.url == "guid:corriere-esteri/tag:corriere.it,2026:7"
    odd = to_article(raw(link=None, guid="<b>42 %</b>"), source=SOURCE, feed_language=None, now=NOW)
    assert odd is not None and odd.url == "guid:corriere-esteri/%3Cb%3E42%20%25%3C/b%3E"
    other = Source(name="other feed", url="https://example.org/rss")
    elsewhere = to_article(
        raw(link=None, guid="urn:uuid:1"), source=other, feed_language=None, now=NOW
    )
    assert elsewhere is not None and elsewhere.url == "guid:other%20feed/urn:uuid:1"
    headline = to_article(raw(link=None, guid=None), source=SOURCE, feed_language=None, now=NOW)
    assert headline is not None and headline.url.startswith("title:corriere-esteri/")
    assert headline.guid == headline.url and not has_link(headline)
    nothing = raw(link=None, guid=None, title="", summary_html="")
    assert to_article(nothing, source=SOURCE, feed_language=None, now=NOW) is None


def test_to_articles_keeps_items_of_a_broken_guid_apart_and_counts_duplicates() -> None:
    entries = [
        raw(guid="live", link=f"https://example.org/live/{n}", title=f"Update {n}")
        for n in range(3)
    ]
    entries += [
        raw(guid="live", link="https://m.example.org/live/0", title="Update 0"),  # same item
        raw(guid="x", link="https://example.org/live/1?utm_source=rss", title="Other"),  # same link
        raw(guid=None, link=None, title="", summary_html=""),
    ]
    got = to_articles(entries, source=SOURCE, feed_language=None, now=NOW)
    assert [a.url for a in got.articles] == [f"https://example.org/live/{n}" for n in range(3)]
    assert [a.guid for a in got.articles] == [a.url for a in got.articles]  # not "live" any more
    assert got.skipped == (("duplicate", 2), ("no_identifier", 1))
    one = to_articles(entries[:1], source=SOURCE, feed_language=None, now=NOW)
    assert (one.articles[0].guid, one.skipped) == ("live", ())  # an unshared GUID is kept


def test_to_article_dates() -> None:
    updated = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    only_updated = to_article(raw(updated=updated), source=SOURCE, feed_language=None, now=NOW)
    assert only_updated is not None and only_updated.published == updated
    future = raw(published=NOW + timedelta(days=30), updated=updated)
    art = to_article(future, source=SOURCE, feed_language=None, now=NOW)
    assert art is not None and art.published == updated
    ancient = raw(published=datetime(1970, 1, 1, tzinfo=UTC))
    art = to_article(ancient, source=SOURCE, feed_language=None, now=NOW)
    assert art is not None and art.published == NOW


def test_to_article_language_order() -> None:
    en_source = Source(name="bbc", url="https://feeds.bbci.co.uk/news/world/rss.xml", language="en")
    assert to_article(raw(), source=en_source, feed_language="it", now=NOW).language == "en"  # type: ignore[union-attr]
    by_entry = to_article(raw(language="IT-it"), source=SOURCE, feed_language="en", now=NOW)
    assert by_entry is not None and by_entry.language == "it"
    by_feed = to_article(raw(), source=SOURCE, feed_language="en-GB", now=NOW)
    assert by_feed is not None and by_feed.language == "en"
    detected = to_article(raw(), source=SOURCE, feed_language=None, now=NOW)
    assert detected is not None and detected.language == "it"


def test_to_article_text_shapes() -> None:
    html_title = raw(title="Talks in &lt;b&gt;Abu Dhabi&lt;/b&gt; <b>resume</b> &amp; more")
    art = to_article(html_title, source=SOURCE, feed_language=None, now=NOW)
    assert art is not None and art.title == "Talks in <b>Abu Dhabi</b> resume & more"
    long = raw(summary_html="<p>" + "parola " * 1000 + "</p>")
    art = to_article(long, source=SOURCE, feed_language=None, now=NOW)
    assert art is not None and len(art.summary) <= SUMMARY_CHARS + 1 and art.summary.endswith("…")
    assert len(art.text) > len(art.summary)  # the text keeps the whole summary
    untitled = to_article(raw(title=""), source=SOURCE, feed_language=None, now=NOW)
    assert untitled is not None and untitled.title.startswith("Nuovi colloqui Mosca-Kiev")


def test_every_corpus_entry_normalizes(corpus: Path) -> None:
    made = 0
    for path in sorted((corpus / "feeds" / "news").iterdir()):
        parsed = parse_feed(path.read_bytes(), url="https://example.org/feed")
        for entry in parsed.entries:
            art = to_article(entry, source=SOURCE, feed_language=parsed.language, now=NOW)
            if art is None:
                continue
            made += 1
            assert art.url.startswith(("http://", "https://")) and art.title
            assert art.published is not None and art.published <= NOW + timedelta(days=1)
            assert "<p>" not in art.text and "<br" not in art.summary
    assert made > 700
