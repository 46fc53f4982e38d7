"""Copies and stories end to end: real feeds on 127.0.0.1, `Monitor`, a real database
(conftest's `database`: a SQLite file, then PostgreSQL).

Assertions are on the outbox (what `news-monitor alerts` shows and the daemon sends), the
copies recorded, and what `news-monitor stories` prints.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.commands import cli
from monitor.config.loader import Config, load
from monitor.models import Alert, Article, GoodPoll, Match, Message, Source, StoryView
from monitor.service.monitor import Monitor
from monitor.service.pipeline import candidate
from monitor.store import Store, stories
from monitor.store.times import ts
from monitor.stories.lexicon import default_lexicon
from tests.conftest import T0, Clock, toml_database
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

KYIV = "feeds/derived/en_kyivindependent-filtered_2024-07-26.rss.xml"
MISLABELED = "feeds/derived/en_moscowtimes-MISLABELED-contains-kyivindependent_2024-07-26.rss.xml"
UKRAINE = "ucraina OR ukraine OR kiev OR kyiv OR russia OR russian"

REWRITE = Item(
    "rw1",
    "US would strike back within 72 hours if Russia attacks Ukraine again",
    "Kyiv and its allies have agreed a three-step response if Russia breaks a ceasefire: "
    "Ukrainian forces first, then European troops, and after 72 hours the full weight of the "
    "US military. The plan emerged as Moscow fired more than 450 drones and 71 missiles at "
    "Ukraine during a visit by NATO Secretary General Mark Rutte, and as delegations resumed "
    "talks in Abu Dhabi.",
    link="https://wire.example.com/world/us-72-hours-ukraine-guarantees",
)
UNRELATED = Item(
    "un1",
    "Trump annuncia dazi sull'acciaio, l'Ucraina chiede esenzioni per il grano",
    "Il presidente americano Donald Trump ha annunciato dazi del 17 per cento sull'acciaio "
    "importato. Da Kiev il ministro dell'Agricoltura Vitaliy Koval chiede un'esenzione per "
    "il grano ucraino.",
    link="https://economia.example.it/dazi-acciaio-grano",
)


def configure(
    tmp_path: Path,
    sources: dict[str, str],
    alert: str = "story",
    *,
    database: str | Path | None = None,
    **rule,
) -> Config:
    """A config of `sources` and one rule; its database is `database` (conftest: either
    backend), else a SQLite file in `tmp_path`."""
    lines = ["[monitor]", f"database = {toml_database(database or tmp_path / 'm.db')}", ""]
    for name, url in sources.items():
        lines += ["[[sources]]", f"name = {json.dumps(name)}", f"url = {json.dumps(url)}", ""]
    rule = {"name": "ukraine", "query": UKRAINE, "alert": alert} | rule
    lines += ["[[rules]]"] + [f"{k} = {json.dumps(v)}" for k, v in rule.items()]
    path = tmp_path / "monitor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load(path, env={})


@contextlib.asynccontextmanager
async def running(config: Config, clock: Clock) -> AsyncIterator[Monitor]:
    monitor = Monitor(config, clock=clock)
    try:
        yield monitor
    finally:
        await monitor.close()


def serve(server: LoopbackServer, path: str, body: bytes) -> str:
    server.route(path, Reply(200, body, {"Content-Type": "application/rss+xml"}))
    return server.url(path)


def outbox(monitor: Monitor) -> list[tuple]:
    return monitor.store.db.execute(
        "SELECT key, article_id, story_id, title, text FROM outbox ORDER BY id"
    ).fetchall()


def seed_item(corpus: Path) -> Item:
    lines = [ln.strip() for ln in (corpus / "seed-article.md").read_text().splitlines()]
    lines = [ln for ln in lines if ln]  # the title is the first line with text
    paras = lines[1:]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    return Item("seed", lines[0], body, link="https://www.corriere.it/esteri/garanzie-kiev")


# --------------------------------------------------------------------------- real copies


async def test_kyiv_independent_items_under_another_channel_are_copies(
    corpus, server, tmp_path, clock, database
):
    derived = corpus / "feeds" / "derived"
    kyiv = serve(
        server, "/ki.xml", (derived / "en_kyivindependent-filtered_2024-07-26.rss.xml").read_bytes()
    )
    mt_body = (
        derived / "en_moscowtimes-MISLABELED-contains-kyivindependent_2024-07-26.rss.xml"
    ).read_bytes()
    mt = serve(server, "/mt.xml", mt_body)
    # the feeds are of 2024, polled in 2026: backfill, or max_age would hold every item
    config = configure(
        tmp_path,
        {"kyivindependent": kyiv, "moscowtimes": mt},
        alert="article",
        backfill=True,
        database=str(database),
    )
    async with running(config, clock) as monitor:
        first = await monitor.poll("kyivindependent")
        clock.advance(minutes=5)
        second = await monitor.poll("moscowtimes")
        clock.advance(minutes=5)
        again = await monitor.poll("moscowtimes")  # unchanged feed: nothing at all
        assert first is not None and second is not None and again is not None
        alerts = outbox(monitor)
        copies = monitor.store.db.execute("SELECT source, tier FROM copies").fetchall()
        n_articles = monitor.store.count_articles()
    shared = len(re.findall(rb"<item>", mt_body))
    assert first.new == n_articles and len(first.found) == len(alerts) > 0
    assert second.new == 0 and second.found == ()  # every item is a copy: no new alert
    assert len(copies) == shared and {c for c in copies} == {("moscowtimes", "url")}
    assert len({a[1] for a in alerts}) == len(alerts)  # one alert per article


def _syndicate(feed: bytes, *, rewrite_titles: bool) -> bytes:
    """The same items republished elsewhere: new URLs, GUIDs and boilerplate; maybe new titles."""
    text = feed.decode()
    n = 0

    def item(m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        body = m.group(0)
        body = re.sub(r"<link>[^<]*</link>", f"<link>https://wire.example.net/s/{n}</link>", body)
        body = re.sub(r"<guid[^>]*>[^<]*</guid>", "", body)
        body = body.replace(
            "<description>", "<description>&lt;p&gt;Syndicated from Kyiv Independent.&lt;/p&gt;", 1
        )
        body = body.replace(
            "</description>",
            "&lt;p&gt;Republished under licence. Subscribe now.&lt;/p&gt;</description>",
            1,
        )
        if rewrite_titles:
            body = re.sub(r"<title>([^<]*)</title>", r"<title>Kyiv update: \1 (wire)</title>", body)
        return body

    return re.sub(r"<item>.*?</item>", item, text, flags=re.S).encode()


@pytest.mark.parametrize("rewrite_titles", [False, True])
async def test_syndicated_copies_with_new_urls_and_boilerplate_do_not_alert(
    corpus, server, tmp_path, clock, rewrite_titles, database
):
    original = (
        corpus / "feeds/derived/en_kyivindependent-filtered_2024-07-26.rss.xml"
    ).read_bytes()
    kyiv = serve(server, "/ki.xml", original)
    wire = serve(server, "/wire.xml", _syndicate(original, rewrite_titles=rewrite_titles))
    config = configure(
        tmp_path, {"kyivindependent": kyiv, "wire": wire}, backfill=True, database=str(database)
    )  # 2024
    async with running(config, clock) as monitor:
        await monitor.poll("kyivindependent")
        before = len(outbox(monitor))
        clock.advance(minutes=10)
        result = await monitor.poll("wire")
        assert result is not None
        copies = monitor.store.db.execute("SELECT tier, similarity FROM copies").fetchall()
        alerts = outbox(monitor)
    assert before > 0 and len(alerts) == before and result.found == ()
    assert len(copies) == result.new + len(copies) and all(t == "similar" for t, _ in copies)
    assert len(copies) == len(re.findall(rb"<item>", original))


# --------------------------------------------------------------------------- stories


async def test_seed_and_a_rewrite_are_one_story_and_one_alert(
    corpus, server, tmp_path, clock, database
):
    corriere = serve(server, "/corriere.xml", rss([seed_item(corpus)], title="Corriere"))
    wire = serve(server, "/wire.xml", rss([REWRITE], title="Wire", language="en"))
    other = serve(server, "/eco.xml", rss([UNRELATED], title="Economia"))
    config = configure(
        tmp_path, {"corriere": corriere, "wire": wire, "economia": other}, database=str(database)
    )
    async with running(config, clock) as monitor:
        await monitor.poll("corriere")
        clock.advance(hours=2)  # past the cooldown: only "nothing new" can hold it
        await monitor.poll("wire")
        await monitor.poll("economia")
        alerts = outbox(monitor)
        stories = monitor.store.recent_stories()
    by_size = sorted(stories, key=lambda s: -s.size)
    assert [s.size for s in by_size] == [2, 1]
    assert set(by_size[0].outlets) == {"corriere", "wire"}
    assert by_size[1].outlets == ("economia",)
    assert len(alerts) == 2  # the seed's story once, the unrelated article's story once
    assert {a[2] for a in alerts} == {s.id for s in stories}

    runner = CliRunner()
    env = {"NEWS_MONITOR_CONFIG": str(tmp_path / "monitor.toml")}
    listing = runner.invoke(cli, ["stories"], env=env)
    assert listing.exit_code == 0 and "2 article(s)" in listing.output
    assert "corriere, wire" in listing.output
    timeline = runner.invoke(cli, ["stories", str(by_size[0].id)], env=env)
    assert timeline.exit_code == 0
    assert timeline.output.index("corriere") < timeline.output.index("wire")
    assert runner.invoke(cli, ["stories", "999"], env=env).exit_code == 1


async def test_article_mode_alerts_each_distinct_article(corpus, server, tmp_path, clock, database):
    items = [seed_item(corpus), REWRITE]
    url = serve(server, "/mix.xml", rss(items))
    config = configure(tmp_path, {"mix": url}, alert="article", database=str(database))
    async with running(config, clock) as monitor:
        await monitor.poll("mix")
        assert len(outbox(monitor)) == 2


async def test_follow_up_needs_a_new_development_and_the_cooldown(
    corpus, server, tmp_path, clock, database
):
    seed = seed_item(corpus)
    development = Item(
        "dev1",
        "Security guarantees for Kyiv: France and Britain join the 72-hour US response plan",
        "Emmanuel Macron and Keir Starmer said 20,000 French and British troops would back the "
        "three-step plan if Russia attacks Ukraine again, with US forces responding within 72 "
        "hours, as the Abu Dhabi talks resumed.",
        link="https://wire.example.com/guarantees-france-britain",
    )
    url = serve(server, "/f.xml", rss([seed]))
    config = configure(tmp_path, {"f": url}, cooldown="1h", database=str(database))
    async with running(config, clock) as monitor:
        await monitor.poll("f")
        clock.advance(minutes=10)
        serve(server, "/f.xml", rss([seed, REWRITE]))
        await monitor.poll("f")  # same story, nothing new: silent
        assert len(outbox(monitor)) == 1
        clock.advance(minutes=10)
        serve(server, "/f.xml", rss([seed, REWRITE, development]))
        await monitor.poll("f")  # new facts, but within the cooldown
        assert len(outbox(monitor)) == 1
    async with running(config, clock) as restarted:  # a restart keeps the story and its state
        clock.advance(hours=1)
        # not a copy: another outlet's take, joining the story by the facts it shares; the
        # development held back by the cooldown goes out with it
        late = Item(
            "dev2",
            "Zelensky welcomes the security guarantees backed by Macron and Starmer",
            "Kyiv said the 72-hour response plan and the 20,000 European troops were the "
            "guarantees Ukraine needed if Russia attacks again.",
            link="https://other.example.org/zelensky-guarantees",
        )
        serve(server, "/f.xml", rss([seed, REWRITE, development, late]))
        await restarted.poll("f")
        alerts = outbox(restarted)
        assert len(restarted.store.recent_stories()) == 1
    assert len(alerts) == 2 and alerts[1][2] == alerts[0][2]
    assert "New development" in alerts[1][4]


# --------------------------------------------------------------------------- merged stories


def test_two_stories_merged_keep_every_article_and_alert_in_order(store: Store) -> None:
    """Two stories a later report bridges (grouping.place) become one: both articles, the
    earliest start and latest report, both alerts numbered on (a rule's next follow-up counts
    from all of them). Merging runs the store's own SQL, here on each backend."""

    def plan(article_id: int, article: Article, match: Match, story: object) -> list[Alert]:
        message = Message(article.title, "text", "markdown", "html")
        story_id = getattr(story, "story_id", None)
        return [Alert(f"k{article_id}", match.rule, "c", message, T0, article_id, story_id)]

    reports = [
        ("wire", "Kyiv council approves new bridge budget", "The council voted on Monday."),
        ("paper", "Kyiv: Odesa port reopens to grain ships", "Ships left the harbour at dawn."),
    ]
    store.sync_sources([Source(name, f"http://{name}/") for name, _, _ in reports], T0)
    for minutes, (source, title, lead) in enumerate(reports):
        at = T0 + timedelta(minutes=minutes)
        article = Article(source, title, f"https://{source}.example/1", title, lead, first_seen=at)
        found = candidate(article, (Match("watch", ("x",)),), default_lexicon())
        store.save_poll(GoodPoll(source, at, at, f"http://{source}/"), [found], plan=plan)
    second, first = store.recent_stories()
    assert (first.size, second.size) == (1, 1)
    db = store.db  # type: ignore[attr-defined]
    terms = "SELECT term FROM story_index WHERE story_id = ?"
    shared = {t for (t,) in db.execute(f"{terms} AND term IN ({terms})", (first.id, second.id))}
    assert shared  # filed under both: the merged story keeps the later filing
    every = db.execute("SELECT COUNT(DISTINCT term) FROM story_index").fetchone()[0]

    with store.immediate() as conn:  # type: ignore[attr-defined]
        stories.merge_stories(conn, StoryView(first.id, {}), [StoryView(second.id, {})])

    [merged] = store.recent_stories()
    assert (merged.id, merged.size) == (first.id, 2)
    assert (merged.first_seen, merged.last_seen) == (first.first_seen, second.last_seen)
    assert merged.outlets == ("paper", "wire") and merged.alerts == 2
    timeline = store.story_timeline(merged.id)
    assert [(e.source, [a.split(":")[0] for a in e.alerted]) for e in timeline] == [
        ("wire", ["watch"]),
        ("paper", ["watch"]),
    ]
    numbered = db.execute(
        "SELECT a.source, sa.n FROM story_alerts sa JOIN articles a ON a.id = sa.article_id "
        "WHERE sa.story_id = ? ORDER BY sa.n",
        (merged.id,),
    ).fetchall()
    assert numbered == [("wire", 0), ("paper", 1)]
    filed = db.execute("SELECT story_id, term, at FROM story_index").fetchall()
    assert {sid for sid, _, _ in filed} == {merged.id} and len(filed) == every
    later = ts(second.last_seen)
    assert {at for _, term, at in filed if term in shared} == {later}
