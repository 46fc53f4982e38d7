"""`search` speaks the rule language: the index's pre-filter (FTS5 on SQLite, a tsquery on
PostgreSQL) plus the rule matcher find exactly what the matcher alone finds, on real corpus
articles in a real store of each backend, newest first; accents fold alike on both.

Also: the FTS5 pre-filter's one assumption (the index reads text as the matcher does, except where
`fts.reads_differently` says) held against SQLite's real tokenizer (PostgreSQL's:
tests/test_tsquery.py); the CLI's `search`, `test-rule` and `stories` with their options, `--json`
and errors.
"""

from __future__ import annotations

import json
import random
import sqlite3
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.commands import cli
from monitor.errors import ParseError
from monitor.models import Article, Candidate, GoodPoll, Source
from monitor.rules import fts
from monitor.rules.query import Document, Query, RuleSet, parse_query
from monitor.service.pipeline import analyse
from monitor.store import Store, open_store
from monitor.store.times import ts
from monitor.text import word_line, words
from tests.conftest import CORPUS, T0, Clock, toml_database
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

# ---- a store of real corpus articles -------------------------------------------------------------


def _corpus_files(subset: str) -> list[Path]:
    if subset == "news":
        return sorted((CORPUS / "feeds" / "news").glob("*.xml"))
    suffixes = (".xml", ".rss", ".atom", ".rdf")
    found = (p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in suffixes)
    return sorted(p for p in found if "feedparser-tests" not in p.parts)  # tiny synthetic feeds


def fill_from_corpus(database: str | Path, subset: str) -> int:
    """Every distinct article of the corpus feeds, one stored source per feed file, as a poll
    stores them (analyse -> save_poll)."""
    seen: set[str] = set()
    with open_store(database) as store:
        for n, feed in enumerate(_corpus_files(subset)):
            name = feed.relative_to(CORPUS).with_suffix("").as_posix().replace("/", "-")[-60:]
            source = Source(name=name, url=f"http://corpus.example/{n}")
            try:
                articles = analyse(feed.read_bytes(), source, url=source.url, charset=None, now=T0)
            except ParseError:  # not a feed: not this test's business
                continue
            fresh = [a for a in articles if a.url not in seen]
            seen.update(a.url for a in fresh)
            if fresh:
                store.sync_sources([source], T0)
                poll = GoodPoll(name, T0, T0, source.url)
                store.save_poll(poll, [Candidate(a) for a in fresh])
    return len(seen)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str | Path]:
    """Every corpus article, in a store of each backend (filled once for the module)."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    if request.param == "sqlite":
        database: str | Path = tmp_path_factory.mktemp("corpus") / "monitor.db"
    else:
        server = request.getfixturevalue("pg_server")
        database = server.create_database()
    assert fill_from_corpus(database, "all") > 3000
    yield database
    if request.param == "postgresql":
        from monitor.store.pg import close_pools

        close_pools()
        server.drop_database(database)


# ---- queries made from the corpus's own words ---------------------------------------------------

OPERATOR_WORDS = ("and", "or", "not")


def _word(w: str) -> str:
    """A folded word as a query writes it (quoted where it would read as an operator)."""
    return f'"{w}"' if w in OPERATOR_WORDS or w.startswith("near") else w


@dataclass
class Stored:
    id: int
    article: Article
    key: tuple[str, int]  # newest first = the largest key first
    title: list[str]
    text: list[str]
    summary: list[str]
    body: list[str]
    odd: bool  # the index may read it otherwise: fts.reads_differently


def stored_articles(store: Store) -> list[Stored]:
    out = []
    for id_, a in store.articles():
        doc = Document.from_article(a)
        published = ts(a.published) or ""  # as stored: the order `search` sorts by
        out.append(
            Stored(
                id_,
                a,
                (published, id_),
                words(doc.title),
                words(doc.text),
                words(a.summary),
                words(a.text) if a.text and a.text != a.summary else [],
                fts.reads_differently(a.title, a.summary, a.text),
            )
        )
    return out


class QueryMaker:
    """Random queries over the stored words: words, prefixes, phrases (also from the end of a
    summary into its body), title:, NEAR, AND/OR/NOT, source:, lang:."""

    def __init__(self, articles: list[Stored], seed: int) -> None:
        self.rng = random.Random(seed)
        self.articles = [a for a in articles if a.title or a.text]
        self.odd = [a for a in self.articles if a.odd]
        self.sources = sorted({a.article.source for a in articles})
        self.languages = sorted({a.article.language for a in articles if a.article.language})

    def pick(self) -> Stored:
        if self.odd and self.rng.random() < 0.35:  # often one the index reads otherwise
            return self.rng.choice(self.odd)
        return self.rng.choice(self.articles)

    def leaf(self) -> str:
        a, rng = self.pick(), self.rng
        pool = a.text if a.text and rng.random() < 0.7 else a.title or a.text
        i = rng.randrange(len(pool))
        kind = rng.choice(["word", "word", "prefix", "phrase", "title", "near", "span", "meta"])
        if kind == "prefix":
            return pool[i][: rng.randint(1, max(1, len(pool[i]) - 1))] + "*"
        if kind == "phrase" and i + 1 < len(pool):
            return '"' + " ".join(pool[i : i + rng.randint(2, 3)]) + '"'
        if kind == "title" and a.title:
            return "title:" + _word(rng.choice(a.title))
        if kind == "near" and len(pool) > 2:
            j = min(len(pool) - 1, i + rng.randint(1, 12))
            return f"{_word(pool[i])} NEAR/{rng.randint(0, 10)} {_word(pool[j])}"
        if kind == "span" and a.summary and a.body:  # the end of the summary, the body's start
            return f'"{a.summary[-1]} {a.body[0]}{"*" if rng.random() < 0.3 else ""}"'
        if kind == "meta":
            if rng.random() < 0.5 or not self.languages:
                name = rng.choice(self.sources)
                return "source:" + (name if rng.random() < 0.7 else name[:12] + "*")
            return "lang:" + rng.choice(self.languages)
        return _word(pool[i])

    def query(self) -> str:
        rng = self.rng
        shape = rng.random()
        if shape < 0.35:
            return self.leaf()
        if shape < 0.6:
            return f"{self.leaf()} {rng.choice(['AND', 'OR'])} {self.leaf()}"
        if shape < 0.75:
            return f"({self.leaf()} OR {self.leaf()}) AND NOT {self.leaf()}"
        if shape < 0.85:
            return f"NOT {self.leaf()}"  # only NOT: search's scan path
        return f"{self.leaf()} OR ({self.leaf()} {self.leaf()})"


def _expected(queries: list[Query], articles: list[Stored]) -> list[list[Stored]]:
    """What the rule matcher alone says each query matches, newest first: every query as a rule
    of one RuleSet, over every stored article."""
    ruleset = RuleSet([(str(n), q) for n, q in enumerate(queries)])
    found: list[list[Stored]] = [[] for _ in queries]
    for a in articles:
        for match in ruleset.match(Document.from_article(a.article)):
            found[int(match.rule)].append(a)
    return [sorted(hits, key=lambda a: a.key, reverse=True) for hits in found]


def check_search_equals_matcher(database: str | Path, n_queries: int, seed: int) -> dict[str, int]:
    with open_store(database, read_only=True) as store:
        articles = stored_articles(store)
        maker = QueryMaker(articles, seed)
        texts = [maker.query() for _ in range(n_queries)]
        queries = [parse_query(t, only_not=True) for t in texts]
        rng = random.Random(seed)
        stats = {"queries": n_queries, "with hits": 0, "odd hits": 0, "hits": 0}
        for text, query, expected in zip(texts, queries, _expected(queries, articles), strict=True):
            limit = rng.choice([1, 3, 10, 300])
            since, sources = None, ()
            if expected and rng.random() < 0.3:
                since_key = rng.choice(expected).key[0]
                since = datetime.fromisoformat(since_key) if since_key else None
                expected = [a for a in expected if since and a.key[0] >= since_key]
            if expected and rng.random() < 0.2:
                sources = tuple({rng.choice(expected).article.source, rng.choice(maker.sources)})
                expected = [a for a in expected if a.article.source in sources]
            hits = store.search(query, limit=limit, since=since, sources=sources)
            want = [a.id for a in expected[:limit]]
            got = [h.id for h in hits]
            assert got == want, f"{text!r} limit={limit} since={since} sources={sources}"
            by_id = {a.id: a for a in expected}
            for hit in hits:
                assert hit.terms == query.match(Document.from_article(by_id[hit.id].article)).terms
            stats["with hits"] += bool(expected)
            stats["hits"] += len(got)
            stats["odd hits"] += sum(by_id[i].odd for i in got)
    return stats


@pytest.mark.slow
def test_search_finds_exactly_what_the_rule_matcher_finds(corpus_store: str | Path) -> None:
    stats = check_search_equals_matcher(corpus_store, n_queries=400, seed=14)
    print(f"\n{stats}")
    assert stats["with hits"] > 300 and stats["odd hits"] > 50  # the queries found things


def test_search_equals_the_matcher_on_the_news_feeds(corpus: Path, database: str | Path) -> None:
    """The same on the 34 outlet feeds alone, quick enough to run every time."""
    assert fill_from_corpus(database, "news") > 500
    stats = check_search_equals_matcher(database, n_queries=120, seed=7)
    assert stats["with hits"] > 80


# ---- the one assumption: the index reads text as the matcher does, but where flagged ------------


def _tokens(path: Path, texts: list[str]) -> list[list[str]]:
    """How the store's own full-text index (its schema, its tokenizer) splits each text."""
    with open_store(path):  # the schema as a store creates it
        pass
    db = sqlite3.connect(path)
    db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, articles_fts, instance)")
    db.executemany(
        "INSERT INTO articles (id, source, guid, url, title) VALUES (?, 's', ?, ?, ?)",
        [(n + 1, str(n), f"u{n}", text) for n, text in enumerate(texts)],
    )
    found: list[list[str]] = [[] for _ in texts]
    for doc, term in db.execute("SELECT doc, term FROM vocab ORDER BY doc, offset"):
        found[doc - 1].append(term)
    db.close()
    return found


ALPHABET = (
    "abcxyzABCXYZ0123456789 .,'-_:/"  # ASCII, numbers and what splits words
    "àéèìòùÀÉÈçñüöäÖÜÄßẞøæœÆŁłĳŀŉſ"  # Latin, with its odd letters
    "αβγάέήίόύώΆϊΐςΑΒΓ"  # Greek, with and without accents
    "абвгйёїєґЙЁІ"  # Cyrillic
    "\u0301\u0306\u0308\u20dd"  # combining marks
    "ʼ’‘“”«»–—…·°€£¥™№½²³ºªµ"  # punctuation, symbols, odd forms
    "ﬁﬂＡＢ１２"  # ligatures, full-width
    "٠١٢٣अकि中文한국\ue000🔴\ufe0f"  # other digits, scripts, private use, emoji
)


def test_text_the_index_reads_otherwise_is_flagged(tmp_path: Path) -> None:
    """For random text of many scripts: either `reads_differently` flags it, or the index splits
    it into the same tokens as the matcher's words (which makes the pre-filter a superset)."""
    rng = random.Random(3)
    texts = ["".join(rng.choices(ALPHABET, k=rng.randint(1, 12))) for _ in range(4000)]
    texts += ["Straße", "2.4GHz", "1,5kg", "Αθήνα", "ﬁnance", "obʼyekt", "iPhone™", "ǆ"]
    raw = _tokens(tmp_path / "raw.db", texts)
    matcher = _tokens(tmp_path / "words.db", [word_line(t) for t in texts])
    flagged = [fts.reads_differently(t) for t in texts]
    differ = [text for text, a, b, f in zip(texts, raw, matcher, flagged, strict=True) if a != b]
    missed = [
        t for t, a, b, f in zip(texts, raw, matcher, flagged, strict=True) if a != b and not f
    ]
    assert not missed, missed[:10]
    assert len(differ) > 300 and sum(flagged) < len(texts) * 0.9  # it tells them apart
    assert all(flagged[-8:])


@pytest.mark.slow
def test_every_character_the_index_reads_otherwise_is_flagged(tmp_path: Path) -> None:
    """Every character of the Basic Multilingual Plane, between Latin, Cyrillic and Greek letters
    and after a number: flagged, or read alike by the real tokenizer and the matcher."""
    chars = [chr(c) for c in range(0x80, 0x10000) if not 0xD800 <= c < 0xE000]
    for n, context in enumerate(("ab{}cd", "аб{}вг", "αβ{}γδ", "1.2{}x")):
        texts = [context.format(c) for c in chars]
        raw = _tokens(tmp_path / f"raw{n}.db", texts)
        matcher = _tokens(tmp_path / f"words{n}.db", [word_line(t) for t in texts])
        missed = [
            f"U+{ord(c):04X} {unicodedata.name(c, '?')}"
            for c, t, a, b in zip(chars, texts, raw, matcher, strict=True)
            if a != b and not fts.reads_differently(t)
        ]
        assert not missed, (context, missed[:20])


def test_the_common_characters_need_no_closer_look() -> None:
    """`reads_differently` skips the characters of `fts.COMMON`: none may differ."""
    common = [
        c
        for c in map(chr, range(0x80, 0x10000))
        if not 0xD800 <= ord(c) < 0xE000 and not fts._UNCOMMON.match(c)  # noqa: SLF001
    ]
    assert len(common) > 30_000
    assert [c for c in common if fts._differs(c)] == []  # noqa: SLF001


# ---- the commands ------------------------------------------------------------------------------

HOUR = timedelta(hours=1)


def article(source: str, n: int, title: str, summary: str = "", text: str = "", **kw) -> Article:
    return Article(
        source=source,
        guid=f"{source}-{n}",
        url=f"https://{source}.example/{n}",
        title=title,
        summary=summary,
        text=text,
        language=kw.get("language", "it"),
        published=kw.get("published", T0 - n * HOUR),
        first_seen=T0,
        fingerprint=f"{source}-{n}",
    )


NEWS = [
    article("ansa-mondo", 1, "Putin e Trump al telefono", "Il colloquio tra Putin e Donald Trump."),
    article("ansa-mondo", 2, "L'Ucraina chiede garanzie", "Kiev vuole garanzie di sicurezza."),
    article("ansa-mondo", 3, "Perché la tregua è fragile", "Analisi del cessate il", "fuoco ora."),
    article("bbc-world", 4, "Putin speaks", "Putin said many things; later, at another event, "
            "far from there and much later in the day, Trump answered.", language="en"),
    article("bbc-world", 5, "Ceasefire talks resume in Geneva", "Delegates met.", language="en"),
    article("bbc-world", 6, "Perche without an accent", "A headline typed in a hurry.",
            language="en"),
    article("dw-news", 7, "Die Straße nach Kiew", "Berlin, 2.4GHz Funk und Αθήνα.",
            language="de"),
    article("dw-news", 8, "Wirtschaft", "Die ﬁnanzen des Landes.", language="de"),
]  # fmt: skip


@pytest.fixture
def news(tmp_path: Path, database: str | Path) -> Path:
    """A config and a store (of each backend) holding NEWS (newest: #1, an hour before T0)."""
    with open_store(database) as store:
        for name in dict.fromkeys(a.source for a in NEWS):
            source = Source(name, f"https://{name}.example/feed")
            store.sync_sources([source], T0)
            items = [Candidate(a) for a in NEWS if a.source == name]
            store.save_poll(GoodPoll(name, T0, T0, source.url), items)
    config = tmp_path / "monitor.toml"
    sources = "".join(
        f'\n[[sources]]\nname = "{n}"\nurl = "https://{n}.example/feed"\n'
        for n in ("ansa-mondo", "bbc-world", "dw-news")
    )
    config.write_text(
        f'[monitor]\ndatabase = {toml_database(database)}\ntimezone = "Europe/Rome"\n{sources}\n'
        '[[rules]]\nname = "tregua"\nquery = "tregua OR ceasefire"\n'
    )
    return config


def run(config: Path, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(cli, ["--config", str(config), *args], obj=Clock())
    return done.exit_code, done.stdout, done.stderr


def found(config: Path, query: str, *options: str) -> list[str]:
    """The titles `search --json` returns, in its order."""
    code, out, err = run(config, "search", query, "--json", *options)
    assert code == 0, err
    return [hit["title"] for hit in json.loads(out)]


def test_search_speaks_the_rule_language(news: Path) -> None:
    """The queries FTS5 syntax refused or misread (issue 14) mean what they mean in a rule."""
    assert found(news, "putin NEAR/8 trump") == ["Putin e Trump al telefono"]
    assert found(news, "l'ucraina") == ["L'Ucraina chiede garanzie"]
    assert found(news, "source:ansa-mondo") == [a.title for a in NEWS[:3]]
    assert found(news, "source:ansa-mondo", "--limit", "2") == [a.title for a in NEWS[:2]]
    assert found(news, "putin NOT source:bbc-*") == ["Putin e Trump al telefono"]
    assert found(news, "title:putin AND lang:en") == ["Putin speaks"]
    assert found(news, '"cessate il fuoco"') == ["Perché la tregua è fragile"]  # summary -> body
    # only NOT: every article, newest first, but those with the word
    assert found(news, "NOT kiev", "--limit", "3") == [NEWS[0].title, NEWS[2].title, NEWS[3].title]


def test_accents_and_odd_letters_are_found_both_ways(news: Path) -> None:
    assert found(news, "perche") == ["Perché la tregua è fragile", "Perche without an accent"]
    assert found(news, "perché") == found(news, "perche")
    assert found(news, "strasse") == ["Die Straße nach Kiew"]  # ß = ss, as in a rule
    assert found(news, "ghz") == found(news, "αθηνα") == ["Die Straße nach Kiew"]
    assert found(news, "finanzen") == ["Wirtschaft"]  # the "ﬁ" ligature


def test_an_accented_query_finds_plain_text_and_the_other_way(store: Store) -> None:
    """On either backend, `città` finds `citta` and `sécurité` finds `securite`, both ways, as a
    rule matches them; the snippet marks the word as written."""
    pairs = [("La città eterna", "Una citta senza accenti"), ("La sécurité d'abord", "Securite!")]
    source = Source("wire", "https://wire.example/feed")
    store.sync_sources([source], T0)
    written = [
        article("wire", n, title, language="fr")
        for n, title in enumerate([t for pair in pairs for t in pair], start=1)
    ]
    store.save_poll(GoodPoll("wire", T0, T0, source.url), [Candidate(a) for a in written])

    def titles(query: str) -> list[str]:
        return [hit.article.title for hit in store.search(parse_query(query))]

    for accented, plain, both in (("città", "citta", pairs[0]), ("sécurité", "securite", pairs[1])):
        assert titles(accented) == titles(plain) == list(both)
        assert titles(f"{plain[:5]}*") == list(both)  # a prefix, too
    assert titles('"citta eterna"') == ["La città eterna"]
    snippets = [hit.snippet for hit in store.search(parse_query("securite"))]
    assert snippets == ["La [sécurité] d'abord", "[Securite]!"]


def test_human_output_keeps_the_snippet(news: Path) -> None:
    code, out, err = run(news, "search", "ceasefire OR tregua")
    assert code == 0, err
    assert "#5 Ceasefire talks resume in Geneva" in out
    assert "[Ceasefire] talks resume in Geneva" in out  # the index's snippet, matches marked
    assert "bbc-world · 2026-02-03 06:00 · https://bbc-world.example/5" in out  # Rome time
    assert err.strip() == "2 results"


def test_search_json_says_what_matched(news: Path) -> None:
    code, out, err = run(news, "search", "kiev OR kiew", "--json")
    assert code == 0, err
    hits = json.loads(out)
    assert [h["id"] for h in hits] == [2, 7]
    assert hits[0] == {
        "id": 2,
        "title": "L'Ucraina chiede garanzie",
        "source": "ansa-mondo",
        "url": "https://ansa-mondo.example/2",
        "published": "2026-02-03T08:00:00+00:00",
        "language": "it",
        "terms": ["kiev"],
        "snippet": "[Kiev] vuole garanzie di sicurezza.",
    }
    assert hits[1]["terms"] == ["kiew"]
    assert json.loads(run(news, "search", "nothing-like-this", "--json")[1]) == []


def test_since_and_source_narrow_the_search(news: Path) -> None:
    assert found(news, "putin", "--since", "2h") == ["Putin e Trump al telefono"]
    assert found(news, "putin", "--since", "5h") == ["Putin e Trump al telefono", "Putin speaks"]
    assert found(news, "putin", "--since", "2026-02-03T06:30") == found(
        news, "putin", "--since", "5h"
    )
    assert found(news, "putin", "--since", "2026-02-04") == []  # a date, in the configured zone
    assert found(news, "putin", "--source", "bbc-world") == ["Putin speaks"]
    both = ("--source", "bbc-world", "--source", "dw-news")
    assert found(news, "NOT putin", *both) == [a.title for a in NEWS[4:]]
    code, _, err = run(news, "search", "putin", "--source", "bbc")
    assert code == 2 and "no source named 'bbc' (sources: ansa-mondo, bbc-world, dw-news)" in err
    code, _, err = run(news, "search", "putin", "--since", "yesterday")
    assert code == 2 and "--since" in err and '"yesterday" is not a duration' in err


def test_a_bad_query_is_refused_as_everywhere(news: Path) -> None:
    """The message, position and caret of `test-rule`; the same words as a bad rule in the
    config gets from `check`."""
    code, out, err = run(news, "search", "kiev AND")
    assert (code, out) == (2, "")
    said = "query does not parse: AND needs a term after it (at character 6)"
    assert err == f"{said}\n  kiev AND\n       ^\n"
    assert run(news, "test-rule", "-q", "kiev AND", "--text", "x")[2] == err
    code, _, err = run(news, "search", "ukraine or kiev")
    assert code == 2 and "operators are upper-case: write OR" in err
    bad = news.read_text().replace('"tregua OR ceasefire"', '"kiev AND"')
    news.write_text(bad)
    code, _, err = run(news, "check")
    assert code == 2 and "AND needs a term after it at character 6" in err


def test_test_rule_detects_the_language_of_pasted_text(news: Path) -> None:
    italian = "L'Ucraina chiede garanzie\nIl governo di Kiev e la Russia non sono per la tregua."
    code, out, _ = run(news, "test-rule", "-q", "ucraina AND lang:it", "--text", italian)
    assert (code, out) == (0, "match: ucraina\nlanguage: it (detected from the text)\n")
    english = "Ukraine asks for guarantees\nThe government of Kyiv and the allies are in talks."
    code, out, _ = run(news, "test-rule", "-q", "ukraine AND lang:it", "--text", english)
    assert (code, out) == (1, "no match\nlanguage: en (detected from the text)\n")
    code, out, _ = run(news, "test-rule", "-q", "ukraine", "--text", "Ukraine", "--json")
    assert code == 0
    assert json.loads(out) == {
        "rule": "query",
        "query": "ukraine",
        "language": None,
        "matched": True,
        "terms": ["ukraine"],
    }


def test_test_rule_json_on_a_feed_and_on_the_store(news: Path, server: LoopbackServer) -> None:
    feed = rss([Item("a", "Tregua a Gaza"), Item("b", "Borsa in rialzo")])
    server.route("/feed.xml", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
    code, out, err = run(news, "test-rule", "tregua", "--url", server.url("/feed.xml"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rule"], report["query"], report["matched"], report["total"]) == (
        "tregua",
        "tregua OR ceasefire",
        1,
        2,
    )
    assert [(i["title"], i["matched"], i["terms"]) for i in report["items"]] == [
        ("Tregua a Gaza", True, ["tregua"]),
        ("Borsa in rialzo", False, []),
    ]
    code, out, err = run(news, "test-rule", "tregua", "--json")
    assert code == 0, err
    stored = json.loads(out)
    assert (stored["matched"], stored["total"]) == (2, len(NEWS))
    assert {(i["id"], tuple(i["terms"])) for i in stored["items"]} == {
        (3, ("tregua",)),
        (5, ("ceasefire",)),
    }


def test_stories_json(tmp_path: Path, database: str | Path, server: LoopbackServer) -> None:
    """`stories --json` and `stories ID --json` after a real `once`."""
    items = [
        Item(
            "a", "Tregua a Gaza, firmato l'accordo", "Israele e Hamas firmano la tregua al Cairo."
        ),
        Item("b", "Gaza, la tregua regge", "La tregua firmata al Cairo regge: 100 ostaggi liberi."),
    ]
    server.route("/feed.xml", Reply(body=rss(items)))
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\ndatabase = {toml_database(database)}\n\n[[sources]]\nname = "wire"\n'
        f'url = "{server.url("/feed.xml")}"\n\n[[rules]]\nname = "tregua"\nquery = "tregua"\n'
    )
    assert run(config, "once")[0] == 0
    code, out, err = run(config, "stories", "--json")
    assert code == 0, err
    stories = json.loads(out)
    assert stories and {"id", "first_seen", "headline", "size", "outlets", "alerts"} <= set(
        stories[0]
    )
    assert sum(s["size"] for s in stories) == 2
    code, out, err = run(config, "stories", str(stories[0]["id"]), "--json")
    assert code == 0, err
    entries = json.loads(out)
    assert {e["source"] for e in entries} == {"wire"}
    assert {"article_id", "title", "url", "alerted", "added", "fresh"} <= set(entries[0])
