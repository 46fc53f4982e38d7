"""Evaluate dedupe and stories on real data; print figures (never asserted on timing).

1. Replays the NYT poll series (../shared/corpus/feeds/nyt-poll-series: 48 snapshots of the
   World and Homepage feeds, GUIDs recurring with edited titles) through the real pipeline:
   each snapshot served on 127.0.0.1 and polled at its own time by `Monitor`, in "article" and in
   "story" mode. Prints distinct articles, Russia/Ukraine matches, alerts, duplicates (must be 0).
2. Precision and recall of copy detection on cases built from real feeds: every item
   republished under a new URL with boilerplate added, and again with its headline rewritten;
   negatives are all the other real items.
3. Cost: sketch and story-terms docs/s, copy lookups/s against a window in SQLite, bytes per doc.

Usage: python bench/eval_dedupe.py [--snapshots N] [--docs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._replay import serve_and_poll  # noqa: E402
from monitor.config.loader import load  # noqa: E402
from monitor.ingest.normalize import to_article  # noqa: E402
from monitor.ingest.parse import parse_feed  # noqa: E402
from monitor.models import Article, Source  # noqa: E402
from monitor.service.monitor import Monitor  # noqa: E402
from monitor.store import SqliteStore  # noqa: E402
from monitor.store.copies import file_signature, find_copy  # noqa: E402
from monitor.stories import copies as dedupe  # noqa: E402
from monitor.stories import terms  # noqa: E402
from monitor.stories.lexicon import default_lexicon  # noqa: E402
from tests.conftest import Clock  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
SERIES = CORPUS / "feeds" / "nyt-poll-series"
RULE = "ukraine OR ukrainian OR russia OR russian OR kyiv OR kiev OR putin OR zelensky OR moscow"
REAL_FEEDS = [
    "derived/en_kyivindependent-filtered_2024-07-26.rss.xml",
    "news/en_guardian-world_2022-09-25.rss.xml",
    "news/en_bbc-news-frontpage_2024-05-19.rss.xml",
    "news/en_abcnews-international_2024-05-18.rss.xml",
    "news/it_ilmessaggero-mondo_2022-11-16.rss.xml",
    "news/it_ilgiornale-cronache_2022-09.rss.xml",
    "news/en_washingtontimes-world_2024-05.rss.xml",
]


def snapshots(limit: int | None) -> list[tuple[datetime, str, bytes]]:
    out = []
    for path in sorted(SERIES.glob("*.xml")):
        feed, stamp = path.stem.rsplit("_", 1)
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        out.append((when, feed, path.read_bytes()))
    out.sort()
    return out[:limit] if limit else out


async def replay(mode: str, shots: list[tuple[datetime, str, bytes]], workdir: Path) -> dict:
    """Serve each snapshot in time order and poll its feed at that time."""
    return await _replay(mode, shots, workdir, Clock(shots[0][0]))  # the monitor's own time


async def _replay(
    mode: str, shots: list[tuple[datetime, str, bytes]], workdir: Path, clock: Clock
) -> dict:
    with LoopbackServer() as server:
        feeds = sorted({f for _, f, _ in shots})
        lines = ["[monitor]", f"database = {json.dumps(str(workdir / f'{mode}.db'))}", ""]
        for feed in feeds:
            url = server.url(f"/{feed}.xml")
            lines += ["[[sources]]", f'name = "{feed}"', f"url = {json.dumps(url)}", ""]
        lines += ["[[rules]]", 'name = "russia-ukraine"', f"query = {json.dumps(RULE)}"]
        lines += [f'alert = "{mode}"']
        config_path = workdir / f"{mode}.toml"
        config_path.write_text("\n".join(lines) + "\n")
        monitor = Monitor(load(config_path, env={}), clock=clock)
        try:
            await serve_and_poll(monitor, server, shots, clock)
            db = monitor.store.db
            alerts = db.execute(
                "SELECT o.key, o.article_id, o.story_id, a.guid FROM outbox o "
                "JOIN articles a ON a.id = o.article_id"
            ).fetchall()
            guids = db.execute("SELECT guid, COUNT(*) FROM articles GROUP BY guid").fetchall()
            story_alerts = [a for a in alerts if a[2] is not None]
            return {
                "articles": monitor.store.count_articles(),
                "matching": db.execute("SELECT COUNT(DISTINCT article_id) FROM matches").fetchone()[
                    0
                ],
                "alerts": len(alerts),
                "stories": db.execute("SELECT COUNT(*) FROM stories").fetchone()[0],
                "copies": db.execute("SELECT COUNT(*) FROM copies").fetchone()[0],
                # the same article (GUID) stored twice, or alerted twice
                "duplicates": sum(n - 1 for _g, n in guids)
                + len(alerts)
                - len({a[3] for a in alerts}),
                "follow_ups": len(story_alerts) - len({a[2] for a in story_alerts}),
            }
        finally:
            await monitor.close()


def articles_of(path: Path, source: str = "orig") -> list[Article]:
    now = datetime(2026, 2, 3, tzinfo=UTC)
    parsed = parse_feed(path.read_bytes(), url="https://example.org/", charset=None)
    out = []
    for entry in parsed.entries:
        a = to_article(entry, source=Source(source, "https://example.org/"), now=now,
                       feed_language=parsed.language)  # fmt: skip
        if a is not None and len(a.title.split()) >= 3:
            out.append(a)
    return out


def variants(a: Article, n: int) -> list[tuple[str, str]]:
    """(kind, title + lead text) of a syndicated copy and of a copy with a rewritten headline."""
    lead_text = f"Syndicated from partner outlet. {a.summary or a.text} Read more on our site."
    words = a.title.split()
    rewritten = " ".join(words[len(words) // 2 :] + ["-"] + words[: len(words) // 2]) + " (update)"
    return [
        ("boilerplate", dedupe.lead(a.title, lead_text, "")),
        ("headline", dedupe.lead(rewritten, a.summary or a.text, "")),
    ]


def precision_recall() -> dict:
    originals: list[Article] = []
    for rel in REAL_FEEDS:
        path = CORPUS / "feeds" / rel
        if path.exists():
            originals.extend(articles_of(path))
    seen, unique = set(), []
    for a in originals:  # a feed may list one item twice: that is a true copy, not a negative
        if a.fingerprint not in seen and a.summary:
            seen.add(a.fingerprint)
            unique.append(a)
    sigs = [
        (i, dedupe.sketch(dedupe.lead(a.title, a.summary, a.text))) for i, a in enumerate(unique)
    ]
    stats = {"boilerplate": [0, 0, 0], "headline": [0, 0, 0]}  # tp, fp, fn
    for i, a in enumerate(unique):
        for kind, text in variants(a, i):
            best = dedupe.best_copy(dedupe.sketch(text), sigs)
            if best is not None and best[0] == i:
                stats[kind][0] += 1
            elif best is not None:
                stats[kind][1] += 1
            else:
                stats[kind][2] += 1
    # negatives: each real item against all the other real items
    false_pos = 0
    for i, sig in sigs:
        hit = dedupe.best_copy(sig, [s for s in sigs if s[0] != i])
        if hit is not None:
            false_pos += 1
            print(f"  taken for a copy ({hit[1]:.2f}): {unique[i].title[:60]!r} ~ "
                  f"{unique[hit[0]].title[:60]!r}")  # fmt: skip
    tp = sum(v[0] for v in stats.values())
    fp = sum(v[1] for v in stats.values()) + false_pos
    fn = sum(v[2] for v in stats.values())
    return {
        "items": len(unique),
        "positives": tp + fn + sum(v[1] for v in stats.values()),
        "negative_items": len(unique),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn + sum(v[1] for v in stats.values())),
        "by_kind": {k: dict(zip(("tp", "fp", "fn"), v, strict=True)) for k, v in stats.items()},
        "false_positive_items": false_pos,
    }


def cost(n_docs: int, workdir: Path) -> dict:
    base: list[Article] = []
    for rel in REAL_FEEDS:
        path = CORPUS / "feeds" / rel
        if path.exists():
            base.extend(articles_of(path))
    vocab = sorted({w for a in base for w in (a.summary or a.title).split()})
    rng = random.Random(7)

    def distinct(a: Article) -> tuple[str, str, str]:
        # a real item with a third of its words swapped: distinct docs of realistic shape
        swap = [rng.choice(vocab) if rng.random() < 0.33 else w for w in a.summary.split()]
        return a.title, " ".join(swap), ""

    docs = [distinct(base[j % len(base)]) for j in range(n_docs)]
    tracemalloc.start()
    t = time.perf_counter()
    sigs = [dedupe.sketch(dedupe.lead(*d)) for d in docs]
    sketch_rate = n_docs / (time.perf_counter() - t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lexicon = default_lexicon()
    t = time.perf_counter()
    for title, summary, text in docs[: min(n_docs, 5000)]:
        terms.article_terms(title, terms.lead_text(summary, text), "en", lexicon)
    facts_rate = min(n_docs, 5000) / (time.perf_counter() - t)
    now = datetime(2026, 2, 3, tzinfo=UTC)
    with SqliteStore(workdir / "cost.db") as store:
        conn = store.db.conn
        with store.immediate():
            for i, sig in enumerate(sigs):
                file_signature(conn, i + 1, sig, now)
        size = (workdir / "cost.db").stat().st_size + (workdir / "cost.db-wal").stat().st_size
        probes = min(2000, n_docs)
        t = time.perf_counter()
        for i in range(probes):
            a = Article(source="x", guid=str(i), url=f"https://x/{i}", title=docs[i][0])
            find_copy(conn, a, sigs[i], now - timedelta(hours=72))
        lookup_rate = probes / (time.perf_counter() - t)
    return {
        "docs": n_docs,
        "sketch_docs_per_s": round(sketch_rate),
        "terms_docs_per_s": round(facts_rate),
        "lookup_per_s_window": round(lookup_rate),
        "sketch_peak_mb_in_memory_for_all": round(peak / 1e6, 1),
        "sqlite_bytes_per_doc": round(size / n_docs),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=None)
    parser.add_argument("--docs", type=int, default=20000)
    args = parser.parse_args(argv)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        shots = snapshots(args.snapshots)
        for mode in ("article", "story"):
            out[mode] = asyncio.run(replay(mode, shots, Path(tmp)))
        out["copy_detection"] = precision_recall()
        out["cost"] = cost(args.docs, Path(tmp))
    a, s = out["article"], out["story"]
    print(f"NYT poll series: {len(shots)} snapshots")
    print(f"  distinct articles: {a['articles']}   matching Russia/Ukraine rule: {a['matching']}")
    print(f"  alerts, article mode: {a['alerts']}   story mode: {s['alerts']} "
          f"({s['stories']} stories, {s['follow_ups']} follow-ups)")  # fmt: skip
    print(f"  duplicates: article mode {a['duplicates']}, story mode {s['duplicates']}")
    p = out["copy_detection"]
    print(f"Copy detection on {p['items']} real items ({p['positives']} copies built):")
    print(f"  precision {p['precision']:.3f}  recall {p['recall']:.3f}  {p['by_kind']}")
    print(f"  real items wrongly taken for a copy of another: {p['false_positive_items']}")
    print(f"Cost: {out['cost']}")
    return out


if __name__ == "__main__":
    main()
