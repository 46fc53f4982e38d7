"""The rule language as a user meets it: real headlines, the seed story, and malformed queries."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import RuleSyntaxError
from monitor.models import Article, Match
from monitor.rules.query import Document, RuleSet, parse_query
from monitor.text import fold, words

TALKS = (
    '(ucraina OR ukraine OR kiev OR kyiv) AND (negoziat* OR colloqui OR "garanzie di sicurezza"'
    ' OR "cessate il fuoco" OR tregua OR "peace talks" OR ceasefire OR "security guarantees")'
)

# Real headlines (Corriere, ANSA, Repubblica, Il Post, BBC, Guardian, Reuters, Kyiv Independent).
IT_TALKS = Document(
    "Ucraina, Zelensky: «Pronti a negoziati se Mosca accetta il cessate il fuoco»",
    "Il presidente ucraino apre ai colloqui con la Russia. Perché Kiev chiede garanzie.",
    "corriere-esteri",
    "it",
)
EN_TALKS = Document(
    "Ukraine agrees to 30-day ceasefire proposal after talks with US in Saudi Arabia",
    "Kyiv says it is ready for peace talks; the Kremlin says it will study the plan.",
    "guardian-world",
    "en-GB",
)
KYIV_ATTACK = Document(
    "Russia launches massive drone and missile attack on Kyiv, killing at least 12",
    "KYIV - Explosions shook the capital overnight as air defences worked to repel the attack.",
    "kyiv-independent",
    "en",
)
SANREMO = Document(
    "Sanremo 2025, vince Olly con «Balorda nostalgia». Secondo Lucio Corsi",
    "La finale del Festival: Giorgia quinta, Achille Lauro fuori dal podio.",
    "ilpost",
    "it",
)


def matches(query: str, doc: Document) -> Match | None:
    return parse_query(query).match(doc)


def hit(query: str, doc: Document) -> bool:
    return matches(query, doc) is not None


def doc(title: str, text: str = "", source: str = "test", lang: str | None = None) -> Document:
    return Document(title, text, source, lang)


# ---- text folding --------------------------------------------------------------------------


def test_fold_strips_accents_and_case_but_keeps_letters() -> None:
    assert fold("perché") == "perche"
    assert fold("KYIV") == "kyiv"
    assert fold("Zaporizhzhia") == "zaporizhzhia"
    assert fold("Straße ﬁnale CAFÉ") == "strasse finale cafe"
    assert fold("Київ") == "київ"


def test_words_split_apostrophes_and_keep_numbers() -> None:
    assert words("L'Ucraina e l’Europa") == ["l", "ucraina", "e", "l", "europa"]
    assert words("i 1.400 chilometri, in 72 ore (-25°).") == [
        "i",
        "1.400",
        "chilometri",
        "in",
        "72",
        "ore",
        "25",
    ]
    assert words("Mosca-Kiev: «tregua»") == ["mosca", "kiev", "tregua"]


# ---- the seed story ------------------------------------------------------------------------


def seed_document(corpus: Path) -> Document:
    lines = [line for line in (corpus / "seed-article.md").read_text().splitlines() if line.strip()]
    return Document(lines[0], "\n".join(lines[1:]), "corriere-esteri", "it")


def test_talks_rule_matches_the_seed_story_and_says_why(corpus: Path) -> None:
    seed = seed_document(corpus)
    rules = RuleSet([("ukraine-talks", TALKS), ("sanremo", "sanremo OR festival")])
    assert rules.match(seed) == [
        Match(
            "ukraine-talks",
            (
                "ucraina",
                "kiev",
                "negoziat*",
                "colloqui",
                '"garanzie di sicurezza"',
                '"cessate il fuoco"',
                "tregua",
            ),
        )
    ]


def test_seed_story_scopes_and_proximity(corpus: Path) -> None:
    seed = seed_document(corpus)
    assert hit('title:"garanzie di sicurezza" title:kiev', seed)
    assert not hit("title:colloqui", seed)  # colloqui is only in the body
    assert hit('"abu dhabi" NEAR/3 colloqui', seed)  # "colloqui ... ad Abu Dhabi"
    assert hit("rutte NEAR/2 nato", seed)  # "segretario della Nato, Mark Rutte"
    assert hit("1.400 NEAR/1 chilometri", seed)
    assert not hit("sanremo OR (calcio AND serie)", seed)


# ---- words, case, accents ------------------------------------------------------------------


def test_case_and_accent_insensitive() -> None:
    assert hit("perche", IT_TALKS)  # text says "Perché"
    assert hit("PERCHÉ", doc("perche no"))
    assert hit("Kyiv", KYIV_ATTACK) and hit("KYIV", KYIV_ATTACK) and hit("kyiv", KYIV_ATTACK)
    assert hit("Citta", doc("La città è al buio"))


def test_terms_match_whole_words_only() -> None:
    assert hit("negoziati", IT_TALKS)
    assert not hit("negoziati", doc("Un accordo negoziatissimo"))
    assert not hit("negoziat", doc("Nuovi negoziati a Ginevra"))
    assert not hit("kyiv", doc("Kyivstar network restored"))
    assert not hit("ucraina", doc("Le truppe ucraine avanzano"))


def test_prefix_matches_word_starts_only() -> None:
    assert hit("negoziat*", doc("Un accordo negoziatissimo"))
    assert hit("negoziat*", doc("il negoziatore americano"))
    assert not hit("negoziat*", doc("un accordo rinegoziato"))
    assert matches("ucrain*", doc("Le truppe ucraine")) == Match("query", ("ucrain*",))


def test_phrase_across_punctuation_and_case() -> None:
    gs = '"garanzie di sicurezza"'
    assert hit(gs, doc("Kiev chiede «Garanzie di Sicurezza»"))
    assert hit(gs, doc("Le GARANZIE, di sicurezza? Sì"))
    assert not hit(gs, doc("garanzie per la sicurezza"))
    assert not hit(gs, doc("sicurezza di garanzie"))
    assert hit('"l\'Ucraina"', doc("Tutti con l’Ucraina"))
    assert hit("Mosca-Kiev", doc("Colloqui Mosca - Kiev ad Abu Dhabi"))


def test_phrase_with_prefix_last_word() -> None:
    assert hit('"garanzie di sic*"', doc("le garanzie di sicurezza"))
    assert not hit('"garanzie di sic*"', doc("le garanzie di pace"))
    assert hit('"peace talk*"', EN_TALKS)


# ---- operators and precedence --------------------------------------------------------------


def test_and_or_not_and_implicit_and() -> None:
    assert hit("ukraine AND ceasefire", EN_TALKS)
    assert hit("ukraine ceasefire", EN_TALKS)  # bare sequence = AND
    assert not hit("ukraine sanremo", EN_TALKS)
    assert hit("sanremo OR ceasefire", EN_TALKS)
    assert not hit("sanremo OR festival", EN_TALKS)
    assert hit("kyiv NOT ceasefire", KYIV_ATTACK)
    assert not hit("kyiv NOT ceasefire", EN_TALKS)
    assert hit("kyiv AND NOT ceasefire", KYIV_ATTACK)


def test_precedence_not_over_and_over_or() -> None:
    # a OR b AND c  ==  a OR (b AND c)
    assert str(parse_query("a OR b AND c")) == "(a OR (b AND c))"
    assert hit("sanremo OR kyiv AND drone", KYIV_ATTACK)
    assert hit("kyiv OR sanremo AND calcio", KYIV_ATTACK)
    assert not hit("(kyiv OR sanremo) AND calcio", KYIV_ATTACK)
    # NOT a AND b  ==  (NOT a) AND b
    assert str(parse_query("NOT a AND b")) == "(NOT a AND b)"
    assert hit("NOT ceasefire AND drone", KYIV_ATTACK)
    assert not hit("NOT (drone AND ceasefire) AND sanremo", KYIV_ATTACK)
    assert str(parse_query("x NOT a NEAR/2 b")) == "(x AND NOT (a NEAR/2 b))"


def test_lower_case_words_and_quoted_operators() -> None:
    assert hit('"and"', doc("Bosnia and Herzegovina"))
    assert hit('"Bosnia and Herzegovina"', doc("BOSNIA AND HERZEGOVINA votes"))
    assert hit("near", doc("Explosions near Kharkiv"))


# ---- NEAR ----------------------------------------------------------------------------------


def test_near_either_order_and_distance_limit() -> None:
    d = doc("Zelensky to meet Putin only after ceasefire, Kyiv says")
    assert hit("zelensky NEAR/2 putin", d)  # "to meet" = 2 words between
    assert hit("putin NEAR/2 zelensky", d)  # either order
    assert not hit("zelensky NEAR/1 putin", d)
    assert hit("meet NEAR/0 putin", d) and hit("putin NEAR/0 meet", d)
    assert hit('"meet putin" NEAR/3 kyiv', d)  # only, after, ceasefire between
    assert not hit('"meet putin" NEAR/2 kyiv', d)
    assert hit("(kiev OR kyiv) NEAR/5 (ceasefire OR tregua)", d)
    assert hit("zelen* NEAR/3 putin", d)


def test_near_never_spans_title_and_text() -> None:
    d = doc("Talks in Riyadh end", "Ukraine welcomes the result")
    assert hit("talks AND ukraine", d)
    assert not hit("end NEAR/5 ukraine", d)


def test_near_reports_only_terms_within_distance() -> None:
    d = doc(
        "Kyiv ready for ceasefire",
        "Kiev was mentioned much later in a long text about other things",
    )
    got = matches("(kiev OR kyiv) NEAR/3 ceasefire", d)
    assert got == Match("query", ("kyiv", "ceasefire"))


# ---- field scopes --------------------------------------------------------------------------


def test_title_scope() -> None:
    assert hit("title:ceasefire", EN_TALKS)
    assert not hit("title:kremlin", EN_TALKS)  # only in the text
    assert hit('title:"saudi arabia"', EN_TALKS)
    assert hit("title:(kremlin OR riyadh OR ukraine)", EN_TALKS)
    assert not hit("title:(kremlin OR riyadh)", EN_TALKS)
    assert hit("title:ceasefir*", EN_TALKS)
    assert hit("kremlin NOT title:kremlin", EN_TALKS)


def test_source_and_language_scopes() -> None:
    assert hit("source:corriere-esteri negoziati", IT_TALKS)
    assert hit("source:Corriere-Esteri", IT_TALKS)
    assert hit("source:corriere* AND lang:it", IT_TALKS)
    assert not hit("source:guardian-world negoziati", IT_TALKS)
    assert hit("source:(guardian-world OR bbc-world) AND ceasefire", EN_TALKS)
    assert hit("lang:en ceasefire", EN_TALKS)  # "en-GB" is English
    assert not hit("lang:it ceasefire", EN_TALKS)
    assert not hit("lang:it", doc("senza lingua"))
    assert hit("ceasefire NOT lang:it", EN_TALKS)


# ---- what a match reports ------------------------------------------------------------------


def test_terms_reported_in_query_order_as_written() -> None:
    got = matches(TALKS, EN_TALKS)
    assert got == Match("query", ("ukraine", "kyiv", '"peace talks"', "ceasefire"))


def test_negated_and_unfound_terms_never_reported() -> None:
    got = matches(
        "(kyiv OR odesa) AND NOT (ceasefire OR sanremo) AND (drone OR missile)", KYIV_ATTACK
    )
    assert got == Match("query", ("kyiv", "drone", "missile"))
    assert matches("(sanremo AND kyiv) OR drone", KYIV_ATTACK) == Match("query", ("drone",))
    assert parse_query("a OR NOT b OR title:c").terms() == ("a", "c")


def test_ruleset_reports_each_matching_rule_in_order() -> None:
    rules = RuleSet(
        [
            ("talks", TALKS),
            ("attacks", "(drone* OR missil*) AND (kyiv OR kiev)"),
            ("italian", "lang:it"),
            ("music", "sanremo OR festival"),
            ("not-music", "kyiv NOT sanremo"),
        ]
    )
    assert [m.rule for m in rules.match(IT_TALKS)] == ["talks", "italian"]
    assert rules.match(KYIV_ATTACK) == [
        Match("attacks", ("drone*", "missil*", "kyiv")),
        Match("not-music", ("kyiv",)),
    ]
    assert rules.match(SANREMO) == [Match("italian", ()), Match("music", ("sanremo", "festival"))]
    assert rules.match(doc("", "")) == []


def test_document_from_article_uses_summary_and_text() -> None:
    art = Article(
        source="ansa-mondo",
        guid="g1",
        url="https://www.ansa.it/x",
        title="Attacco su Kiev",
        summary="Nuovi colloqui",
        text="ad Abu Dhabi",
        language="it",
    )
    d = Document.from_article(art)
    assert hit('title:kiev colloqui "abu dhabi" source:ansa-mondo lang:it', d)


def test_query_str_and_terms() -> None:
    q = parse_query('title:Kyiv ("peace talks" OR negoziat*) NEAR/4 putin')
    assert str(q) == '(title:Kyiv AND (("peace talks" OR negoziat*) NEAR/4 putin))'
    assert q.terms() == ("Kyiv", '"peace talks"', "negoziat*", "putin")
    assert str(parse_query("source:corriere* lang:IT")) == "(source:corriere* AND lang:it)"


# ---- malformed queries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ("(ukraine OR kyiv", 0, "unclosed parenthesis"),
        ("ukraine OR (kyiv AND (talks)", 11, "unclosed parenthesis"),
        ("ukraine) OR kyiv", 7, "unmatched closing parenthesis"),
        ("ukraine AND", 8, "AND needs a term after it"),
        ("AND ukraine", 0, "AND needs a term before it"),
        ("ukraine OR OR kyiv", 8, "OR needs a term after it"),
        ("ukraine NOT", 8, "NOT needs a term after it"),
        ('kyiv ""', 5, "empty phrase"),
        ('kyiv "peace talks', 5, "unclosed quote"),
        ("kyiv NEAR/x talks", 5, "NEAR needs a distance"),
        ("kyiv NEAR talks", 5, "NEAR needs a distance"),
        ("kyiv NEAR/5", 5, "NEAR/5 needs a term after it"),
        ("NEAR/5 kyiv", 0, "NEAR/5 needs a term before it"),
        ("kyiv NEAR/2 talks NEAR/2 putin", 18, "NEAR joins two terms"),
        ("kyiv NEAR/3 (talks AND putin)", 12, "NEAR joins words or phrases"),
        ("author:rossi", 0, "unknown field 'author'"),
        ("kyiv title:", 5, "title: needs a term"),
        ("kyiv ()", 5, "empty parentheses"),
        ("neg*ziati", 3, "'*' is only allowed at the end"),
        ('"garanzi* di sicurezza"', 8, "'*' is only allowed at the end"),
        ("kyiv *", 5, "has no letters or digits"),
        ("ukraine or kyiv", 8, "operators are upper-case"),
        ("kyiv near/5 talks", 5, "operators are upper-case"),
        ("kyiv -sport", 5, "write NOT sport"),
        ("NOT sport", 0, "at least one term that is not under NOT"),
        ("title:source:ansa", 6, "source: cannot be used inside title:"),
        ("lang:italiano", 5, "language code"),
        ("source:(ansa NEAR/2 bbc)", 13, "NEAR cannot be used inside source:"),
    ],
)
def test_malformed_queries_say_where(query: str, position: int, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as err:
        parse_query(query)
    assert err.value.position == position
    assert message in err.value.message


def test_ruleset_rejects_a_bad_rule() -> None:
    with pytest.raises(RuleSyntaxError):
        RuleSet([("good", "kyiv"), ("bad", "kyiv AND")])


# ---- properties ----------------------------------------------------------------------------

VOCAB = ["kyiv", "kiev", "ucraina", "tregua", "negoziati", "perché", "pace", "mosca", "talks"]
PIECES = [*VOCAB, "negoziat*", '"peace talks"', '"cessate il fuoco"', "AND", "OR", "NOT"]
PIECES += ["(", ")", "NEAR/2", "title:", "source:", "lang:", '"', "*", "and", "x:", "-"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12), st.text(max_size=20))
def test_any_query_parses_or_raises_rule_syntax_error(pieces: list[str], noise: str) -> None:
    for query in (" ".join(pieces), "".join(pieces), noise):
        try:
            q = parse_query(query)
        except RuleSyntaxError as err:
            assert 0 <= err.position <= len(query)
        else:
            str(q)
            q.match(Document(query, noise))


simple = st.one_of(
    st.sampled_from(VOCAB),
    st.sampled_from(['"peace talks"', '"cessate il fuoco"', "negoziat*", "title:kyiv"]),
)
queries = st.recursive(
    simple,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} NOT {p[1]})"),
        st.tuples(simple, simple, st.integers(0, 3)).map(lambda p: f"{p[0]} NEAR/{p[2]} {p[1]}"),
    ),
    max_leaves=5,
)
texts = st.lists(
    st.sampled_from([*VOCAB, "Kyiv,", "PERCHE", "peace", "cessate", "il", "fuoco", "negoziatore"]),
    max_size=14,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(queries, queries, texts, texts)
def test_or_matches_iff_either_side_matches(a: str, b: str, title: str, text: str) -> None:
    d = Document(title, text)
    got = RuleSet([("a", a), ("b", b), ("or", f"({a}) OR ({b})"), ("and", f"({a}) ({b})")])
    names = {m.rule for m in got.match(d)}
    assert ("or" in names) == ("a" in names or "b" in names)
    assert ("and" in names) == ("a" in names and "b" in names)
