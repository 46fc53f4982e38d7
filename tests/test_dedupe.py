"""Pure dedupe functions on small real-looking cases, and the evaluation script kept alive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor import dedupe

T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
LEAD = (
    "Russian personnel and materiel losses in Ukraine are so high the Kremlin is having serious "
    "problems recruiting new contract soldiers, Ukraine's military intelligence spokesperson said."
)


def test_same_lead_under_new_headline_or_boilerplate_is_a_copy() -> None:
    original = dedupe.sketch(dedupe.lead("Russian losses causing problems, HUR says", LEAD, ""))
    rewritten = dedupe.sketch(dedupe.lead("Kremlin struggles to recruit soldiers", LEAD, ""))
    boiler = dedupe.sketch(dedupe.lead("Russian losses causing problems, HUR says",
                                       "(Wire) " + LEAD + " Subscribe now.", ""))  # fmt: skip
    romania = "Videos on social media purport to show Romanian air defence over Izmail."
    other = dedupe.sketch(dedupe.lead("Romania denies downing drones", romania, ""))
    assert dedupe.best_copy(rewritten, [(1, original)]) is not None
    assert dedupe.best_copy(boiler, [(1, original)]) is not None
    assert dedupe.best_copy(other, [(1, original)]) is None


def test_facts_fold_accents_aliases_and_number_formats() -> None:
    it = dedupe.facts(
        "Kiev, 1.400 chilometri di confine", "Lo ha detto Volodymyr Zelenskyy a Mosca."
    )
    en = dedupe.facts("Kyiv: 1,400 kilometres of border", "Volodymyr Zelensky said in Moscow.")
    assert {"e:kyiv", "n:1400", "e:volodymyr zelensky", "e:moscow"} <= it & en


def test_shared_common_names_do_not_make_a_story() -> None:
    story = dedupe.StoryView(1, dedupe.facts("Trump e l'Ucraina", "Donald Trump parla di Kiev."))
    other = dedupe.facts("Ukraine and Trump", "Donald Trump spoke about Kyiv and Ukraine.")
    assert dedupe.choose_story(other, [story], {}) is None


def test_follow_up_only_with_new_facts_and_after_cooldown() -> None:
    sent = ((0, 1, T0),)
    nothing = dedupe.StoryContext(7, sent, frozenset({"e:europe"}))
    news = dedupe.StoryContext(7, sent, frozenset({"e:witkoff", "n:314"}))
    later = T0 + timedelta(hours=2)
    assert dedupe.story_alert(nothing, 2, cooldown=3600, now=later) is None
    assert dedupe.story_alert(news, 2, cooldown=3600, now=T0 + timedelta(minutes=5)) is None
    assert dedupe.story_alert(news, 2, cooldown=3600, now=later) == 1
    assert dedupe.story_alert(news, 1, cooldown=3600, now=later) == 0  # replay: same key
    assert dedupe.story_alert(dedupe.StoryContext(8), 3, cooldown=3600, now=T0) == 0


def test_eval_script_runs_on_a_short_replay(corpus, capsys) -> None:
    from bench import eval_dedupe

    out = eval_dedupe.main(["--snapshots", "6", "--docs", "300"])
    assert out["article"]["duplicates"] == 0 and out["story"]["duplicates"] == 0
    assert out["article"]["articles"] > 0 and out["copy_detection"]["recall"] > 0.9
    assert "duplicates: article mode 0, story mode 0" in capsys.readouterr().out
