"""The rule language as a PostgreSQL tsquery (rules/tsquery.py): what it compiles to, and its one
assumption held against the real server: the index (`articles.search`, the store's own schema)
reads text as the rule matcher does, except where `READS_DIFFERENTLY` says — a pattern that
Python and PostgreSQL read alike. That makes the pre-filter a superset of what a query matches
(tests/test_search.py checks `search` against the matcher on both backends).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator

import pytest

from monitor.models import Candidate, GoodPoll, Source
from monitor.rules import tsquery
from monitor.rules.query import parse_query
from monitor.store import open_store
from monitor.text import word_line
from tests.conftest import T0
from tests.pg import PgServer
from tests.test_search import ALPHABET, article

SOURCES = ("ansa-mondo", "bbc-world")


def compiled(query: str) -> tuple[str | None, str, tuple[str, ...]]:
    pre = tsquery.prefilter(parse_query(query, only_not=True).root, sources=SOURCES)
    return pre.fts, pre.where, pre.params


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Kyiv", "'kyiv'"),
        ("negoziàt*", "'negoziat':*"),  # folded: the server folds the text alike
        ('"cessate il fuoco"', "'cessate' <-> 'il' <-> 'fuoco'"),
        ("1.400", "'1' <-> '400'"),  # a number is its parts, as the index reads it
        ('"cessate il f*"', "'cessate' <-> 'il'"),  # a prefix too short to narrow: dropped
        ("ne*", None),  # nothing left: the matcher alone decides
        ("title:putin", "'putin'"),  # one vector per article: anywhere
        ("putin NEAR/5 (trump OR biden)", "(('putin')) & (('trump') | ('biden'))"),
        ("putin AND NOT trump", "('putin')"),  # NOT of a word: no narrowing
        ("Straße OR città", "('strasse') | ('citta')"),
        ("ʻOumuamua", None),  # a letter the index may read otherwise: not trusted to it
    ],
)
def test_terms_become_a_tsquery(query: str, expected: str | None) -> None:
    assert compiled(query) == (expected, "TRUE", ())


def test_metadata_are_sql_on_the_row() -> None:
    assert compiled("putin NOT source:bbc-*") == (
        "('putin')",
        "(NOT (a.source IN (?)))",
        ("bbc-world",),
    )
    assert compiled("source:nope") == (None, "FALSE", ())
    assert compiled("NOT source:nope") == (None, "TRUE", ())
    tsq, where, params = compiled("kiev OR source:ansa*")  # an OR of both: the index in SQL
    assert tsq is None
    assert where == f"({tsquery.IN_INDEX}) OR ((a.source IN (?)))"
    assert params == ("'kiev'", "ansa-mondo")
    tsq, where, params = compiled("kiev AND lang:it")
    assert (tsq, params) == ("('kiev')", ("it", "it-"))
    assert "a.language ~ '[^ -~]'" in where  # a code beyond ASCII: the matcher decides


def test_user_text_is_never_tsquery_syntax() -> None:
    """Operators, quotes and backslashes in a query are words or nothing, never syntax."""
    for query in ('"kiev & !x"', '"a: | b"', "o'brien", '"back\\slash"', "l’ucraina"):
        tsq = compiled(query)[0]
        assert tsq is not None
        assert all(op not in tsq.replace("<->", "") for op in "&|!:\\"), tsq


def test_reads_differently() -> None:
    plain = ["Kyiv", "L'Ucraina, 1.400 km — «città» ‘ok’ €5", "Київ", "中文 한국", "covid-19"]
    odd = ["Straße", "2.4GHz", "1,5kg", "Αθήνα", "ﬁnance", "obʼyekt", "iPhone™", "🔴", "3.5à"]
    assert [t for t in plain if tsquery.reads_differently(t)] == []
    assert [t for t in odd if not tsquery.reads_differently(t)] == []
    assert tsquery.reads_differently(None, "", "ok", "Αθήνα")


# ---- the one assumption, against the real server --------------------------------------------


@pytest.fixture
def probe(pg_url: str) -> Iterator[object]:
    """A connection to a database with the store's schema, and `probe`, a temporary table with
    the columns of `articles`, its generated `search` included."""
    import psycopg

    open_store(pg_url).close()  # the schema as a store creates it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE probe (LIKE articles INCLUDING GENERATED)")
        yield conn


def misread(conn, texts: list[str]) -> list[tuple[str, bool, bool]]:  # type: ignore[no-untyped-def]
    """For each text the index reads otherwise than the matcher's words of it (their `search`
    vectors differ): (text, Python's flag, the server's flag, with the same pattern)."""
    conn.execute("TRUNCATE probe")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO probe (id, source, guid, url, title) "
            "SELECT n, '', '', '', t FROM unnest(%s::text[]) WITH ORDINALITY x (t, n) "
            "UNION ALL SELECT -n, '', '', '', t FROM unnest(%s::text[]) WITH ORDINALITY y (t, n)",
            (texts, [word_line(t) for t in texts]),
        )
    rows = conn.execute(
        "SELECT a.id, a.title ~ %s FROM probe a JOIN probe b ON b.id = -a.id "
        "WHERE a.id > 0 AND a.search IS DISTINCT FROM b.search ORDER BY a.id",
        (tsquery.READS_DIFFERENTLY,),
    ).fetchall()
    return [
        (texts[n - 1], tsquery.reads_differently(texts[n - 1]), on_server) for n, on_server in rows
    ]


def test_text_the_index_reads_otherwise_is_flagged(probe) -> None:  # type: ignore[no-untyped-def]
    """Random text of many scripts: either flagged, or read by the index as the matcher's
    words; and the server's regex flags what Python's does."""
    rng = random.Random(3)
    texts = ["".join(rng.choices(ALPHABET, k=rng.randint(1, 12))) for _ in range(4000)]
    texts += ["Straße", "2.4GHz", "1,5kg", "ﬁnance", "obʼyekt", "iPhone™", "ǆ", "1.5e3"]
    texts += ["covid-19", "example.com", "x@y.it", "a-b c", "<b>x</b> &amp;", "-5", "l’Ucraina"]
    differ = misread(probe, texts)
    assert [text for text, flagged, _ in differ if not flagged] == []
    assert len(differ) > 300  # the test can tell them apart
    on_server = {
        t for (t,) in probe.execute(
            "SELECT t FROM unnest(%s::text[]) t WHERE t ~ %s", (texts, tsquery.READS_DIFFERENTLY)
        )
    }  # fmt: skip
    assert on_server == {t for t in texts if tsquery.reads_differently(t)}
    assert len(on_server) < len(texts) * 0.9


@pytest.mark.slow
def test_every_character_the_index_reads_otherwise_is_flagged(probe) -> None:  # type: ignore[no-untyped-def]
    """Every character of the Basic Multilingual Plane, alone, between Latin, Cyrillic and Greek
    letters and after a number: flagged, or read alike by the server's index and the matcher."""
    chars = [chr(c) for c in range(0x80, 0x10000) if not 0xD800 <= c < 0xE000]
    for context in ("{}", "ab{}cd", "аб{}вг", "αβ{}γδ", "1.2{}x"):
        differ = misread(probe, [context.format(c) for c in chars])
        missed = [
            f"U+{ord(t.strip('abcdабвгαβγδ1.2x')):04X} {unicodedata.name(t[-1], '?')}"
            for t, flagged, _ in differ
            if not flagged
        ]
        assert not missed, (context, missed[:20])
        assert all(flagged == on_server for _, flagged, on_server in differ)


def test_a_database_of_the_c_locale_is_searched_right(pg_server: PgServer) -> None:
    """Where the server neither lowers nor splits text beyond ASCII (LC_CTYPE C), every such
    article goes to the matcher: `київ` still finds `КИЇВ`, `citta` still finds `CITTÀ`."""
    import psycopg

    from monitor.store.pg import close_pools

    url = pg_server.url("nm_c_locale")
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS nm_c_locale")
        conn.execute("CREATE DATABASE nm_c_locale TEMPLATE template0 LC_CTYPE 'C' LC_COLLATE 'C'")
    try:
        with open_store(url) as store:
            store.sync_sources([Source("wire", "https://wire.example/feed")], T0)
            titles = ["КИЇВ ОГОЛОСИВ", "LA CITTÀ", "Kyiv"]
            written = [article("wire", n, t) for n, t in enumerate(titles, start=1)]
            store.save_poll(GoodPoll("wire", T0, T0, "https://wire.example/feed"), [
                Candidate(a) for a in written
            ])  # fmt: skip
            for query, title in (("київ", titles[0]), ("citta", titles[1]), ("kyiv", titles[2])):
                assert [h.article.title for h in store.search(parse_query(query))] == [title]
    finally:
        close_pools()
        pg_server.drop_database(url)
