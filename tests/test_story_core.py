"""The pure story core on small real-looking cases: copies, terms, lexicon, grouping and the
story-mode alert decision. End-to-end behaviour is in test_stories.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.errors import ConfigError
from monitor.models import Fact, SentAlert, StoryContext, StoryView
from monitor.stories import copies, developments, grouping
from monitor.stories.lexicon import default_lexicon, parse_lexicon
from monitor.stories.terms import article_terms

T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
LEAD = (
    "Russian personnel and materiel losses in Ukraine are so high the Kremlin is having serious "
    "problems recruiting new contract soldiers, Ukraine's military intelligence spokesperson said."
)
LEX = default_lexicon()


def test_same_lead_under_new_headline_or_boilerplate_is_a_copy() -> None:
    def sk(title: str, lead: str) -> tuple[int, ...]:
        return copies.sketch(copies.lead(title, lead, ""), "en")

    original = sk("Russian losses causing problems, HUR says", LEAD)
    rewritten = sk("Kremlin struggles to recruit soldiers", LEAD)
    boiler = sk("Russian losses causing problems, HUR says", "(Wire) " + LEAD + " Subscribe now.")
    other = sk("Romania denies downing drones", "Videos purport to show air defence at Izmail.")
    assert copies.best_copy(rewritten, [(1, original)]) is not None
    assert copies.best_copy(boiler, [(1, original)]) is not None
    assert copies.best_copy(other, [(1, original)]) is None


def test_terms_meet_across_languages_through_names_numbers_and_the_lexicon() -> None:
    it = article_terms(
        "Razzi su Gerusalemme, 1.400 feriti",
        "Lo ha detto il portavoce Daniel Hagari: la polizia ha sgomberato la Spianata.",
        "it",
        LEX,
    )
    en = article_terms(
        "Rockets fired at Jerusalem, 1,400 wounded",
        "Police cleared the compound, army spokesman Daniel Hagari said.",
        "en",
        LEX,
    )
    assert {"=rocket", "=jerusalem", "#1400", "@hagari", "=police"} <= it.keys() & en.keys()
    assert "il" not in it and "the" not in en  # stop words of each language are dropped


def test_title_case_headlines_give_no_names_and_glued_numbers_are_words() -> None:
    terms = article_terms("Hospital Says COVID-19 Cases Rise Again", "", "en", LEX)
    assert not [t for t in terms if t.startswith("@") and t != "@covid19"]
    assert "#19" not in terms and "covid19" in terms


def test_a_user_lexicon_adds_words_and_a_bad_line_names_file_and_line() -> None:
    extra = LEX.extended(parse_lexicon("en\tfr\n# a comment\nceasefire\tcessez\n", "mine.tsv"))
    french = article_terms("Appel au cessez-le-feu", "", "fr", extra)
    assert "=ceasefire" in french and "=ceasefire" in article_terms("Ceasefire", "", "en", extra)
    with pytest.raises(ConfigError, match=r"mine\.tsv:3: 1 columns"):
        parse_lexicon("en\tit\n\nonly-one-cell\n", "mine.tsv")


def _vector(title: str, lead: str, language: str, df: dict[str, int], n: int) -> dict:
    return grouping.weighted(article_terms(title, lead, language, LEX), df, n)


def test_words_every_story_has_weigh_little() -> None:
    """Two different events that share only the beat's name ("Ukraine") stay apart once the
    window shows that every article has it; the same pair sharing a rare name joins."""
    a = ("Ukraine grain exports resume", "Ukraine shipped grain from Odesa on Monday.")
    b = ("Ukraine power grid hit", "Ukraine lost power in Kharkiv after strikes.")
    df = {"=ukraine": 40, "ukrain": 40}
    va, vb = _vector(*a, "en", df, 40), _vector(*b, "en", df, 40)
    story = StoryView(1, va, frozenset({"en"}))
    assert grouping.place(vb, "en", [story]).story is None
    vc = _vector("Odesa grain ships sail again", "Grain left Odesa for Istanbul.", "en", df, 40)
    assert grouping.place(vc, "en", [story]).story == 1


def test_the_closest_story_wins_and_a_bridged_young_story_is_merged() -> None:
    near = StoryView(1, {"ian": 5.0, "florida": 4.0})
    also = StoryView(2, {"ian": 5.0, "florida": 4.0})
    far = StoryView(3, {"cuba": 5.0})
    placed = grouping.place({"ian": 5.0, "florida": 4.0, "rain": 1.0}, "en", [far, also, near])
    assert placed.story == 1 and placed.bridged == (2,)


def test_follow_up_only_with_a_development_and_after_cooldown() -> None:
    sent = (SentAlert(0, 1, T0),)
    nothing = StoryContext(7, sent, {Fact("name", "europe"): 0.2}, score=1.8)
    news = StoryContext(
        7, sent, {Fact("name", "witkoff"): 1.0, Fact("number", "314"): 1.0}, score=1.8
    )
    later = T0 + timedelta(hours=2)
    assert developments.story_alert(nothing, 2, cooldown=3600, now=later) is None
    assert developments.story_alert(news, 2, cooldown=3600, now=T0 + timedelta(minutes=5)) is None
    assert developments.story_alert(news, 2, cooldown=3600, now=later) == 1
    assert developments.story_alert(news, 1, cooldown=3600, now=later) == 0  # replay: same key
    assert developments.story_alert(StoryContext(8), 3, cooldown=3600, now=T0) == 0
    assert developments.development(news) == "new: 314, Witkoff"


def test_a_doubtful_join_alerts_even_within_the_cooldown() -> None:
    sent = (SentAlert(0, 1, T0),)
    doubtful = StoryContext(7, sent, {}, score=1.05)
    soon = T0 + timedelta(minutes=5)
    assert developments.story_alert(doubtful, 2, cooldown=3600, now=soon) == 1
    far = StoryContext(7, sent, {}, novelty=0.95, score=1.8)
    assert "new angle" in (developments.development(far) or "")


def test_eval_dedupe_script_runs_on_a_short_replay(corpus, capsys) -> None:
    from bench import eval_dedupe

    out = eval_dedupe.main(["--snapshots", "6", "--docs", "300"])
    assert out["article"]["duplicates"] == 0 and out["story"]["duplicates"] == 0
    assert out["article"]["articles"] > 0 and out["copy_detection"]["recall"] > 0.9
    assert "duplicates: article mode 0, story mode 0" in capsys.readouterr().out
