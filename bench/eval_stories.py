"""Score story grouping against hand-labelled story sets; print figures (never asserted on).

Every set in ../shared/corpus/stories/ (`<set>.stories.tsv`, one row per distinct article) is
replayed through the real pipeline: its snapshots (`stories/<set>/` or else `feeds/<set>/`, named
`<feed>_<YYYYmmddTHHMMSSZ>.xml`) are served on 127.0.0.1 and polled in time order by `Monitor`,
each at its own time, with one story-mode rule that matches every article. The stored stories are
then compared with the labels: pairwise and B-cubed precision/recall/F1, stories found, bilingual
stories joined, story-mode alerts, CPU per article. `--show-errors N` lists the worst merges and
splits with titles, for tuning.

Usage: python bench/eval_stories.py [--set NAME ...] [--json] [--show-errors N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import csv
import importlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._replay import serve_and_poll  # noqa: E402
from monitor.config.loader import load  # noqa: E402
from monitor.ingest.normalize import canonical_url  # noqa: E402
from monitor.runtime import logs  # noqa: E402
from monitor.service.monitor import Monitor  # noqa: E402
from tests.conftest import Clock  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
RULE = "everything"
# `source:*` does not parse (a prefix needs a letter); this tautology matches any article.
QUERY = "source:a* OR NOT source:a*"

Cluster = tuple[str, Any]  # ("story", id) | ("article", id) | ("missing", key): a predicted story


@dataclass(frozen=True)
class LabelSet:
    name: str
    tsv: Path
    snapshots: Path


@dataclass(frozen=True)
class Label:
    link: str
    story: str
    text: str
    language: str | None


@dataclass
class Knobs:
    """Experiment settings of one run. A new CLI flag maps onto these in `knobs_from_args`, so
    the replay code never changes for an experiment."""

    story_window: str = "72h"
    monitor: dict[str, Any] = field(default_factory=dict)  # more [monitor] keys (TOML values)
    # "package.module.NAME" -> value, set during the replay and restored after. Only names read
    # through their module at call time are affected, not ones imported with `from m import X`.
    patches: dict[str, Any] = field(default_factory=dict)
    keep: Path | None = None  # copy each set's database here


@dataclass
class Stored:
    """What the replay left in the database, keyed the way the labels are."""

    alerts: list[int]  # article id of every outbox row of the rule
    articles: int
    copies: int
    by_key: dict[str, int] = field(default_factory=dict)  # key (own or a copy's URL) -> article
    story_of: dict[int, int | None] = field(default_factory=dict)  # article id -> story id
    title_of: dict[str, str] = field(default_factory=dict)  # article key -> title as stored
    own_key: dict[int, str] = field(default_factory=dict)  # article id -> key of its own URL
    # article id -> keys of the copies recorded against it
    copy_keys: defaultdict[int, list[str]] = field(default_factory=lambda: defaultdict(list))


# ---- the labelled sets ---------------------------------------------------------------------


def find_sets(corpus: Path, names: list[str] | None) -> tuple[list[LabelSet], dict[str, str]]:
    """Every `<set>.stories.tsv` with its snapshot folder; the reason for each one skipped."""
    stories = corpus / "stories"
    found: list[LabelSet] = []
    skipped: dict[str, str] = {}
    tsvs = {p.name.removesuffix(".stories.tsv"): p for p in sorted(stories.glob("*.stories.tsv"))}
    for name in names or list(tsvs):
        tsv = tsvs.get(name)
        if tsv is None:
            skipped[name] = f"no {stories / (name + '.stories.tsv')}"
            continue
        folder = next((d for d in (stories / name, corpus / "feeds" / name) if d.is_dir()), None)
        if folder is None or not any(folder.glob("*.xml")):
            skipped[name] = f"no snapshots in {stories / name} or {corpus / 'feeds' / name}"
            continue
        found.append(LabelSet(name, tsv, folder))
    return found, skipped


def article_key(url: str) -> str:
    """The labels' article key: the link without query, fragment and trailing slash. The URL is
    canonicalized first, so a feed link and the pipeline's stored spelling of it agree."""
    parts = urlsplit(canonical_url(url.strip()))
    target = _bot_check_target(parts.scheme, parts.netloc, parts.path, parts.query)
    if target is not None:
        return article_key(target)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _bot_check_target(scheme: str, netloc: str, path: str, query: str) -> str | None:
    """The labels key Bloomberg's `tosv2.html?...url=<base64>` redirects by the decoded url=
    (the literal rule would merge different articles); do the same."""
    if not path.endswith("/tosv2.html"):
        return None
    value = (parse_qs(query).get("url") or [""])[0]
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if decoded.startswith("/"):
        return f"{scheme}://{netloc}{decoded}"
    return decoded if decoded.startswith(("http://", "https://")) else None


def read_labels(tsv: Path) -> dict[str, Label]:
    """Article key -> label. `language` is None when the set has no such column (NYT)."""
    out: dict[str, Label] = {}
    with tsv.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            link = (row.get("link") or "").strip()
            if not link:
                continue
            key = article_key(link)
            if key in out:
                print(f"  warning: {link} has the same key as {out[key].link}; keeping the first")
                continue
            language = (row.get("language") or "").strip() or None
            out[key] = Label(link, row["story_id"].strip(), row.get("story_label") or "", language)
    return out


def snapshots(folder: Path) -> list[tuple[datetime, str, bytes]]:
    """(time, feed, body) of every `<feed>_<stamp>.xml`, oldest first."""
    out = []
    for path in sorted(folder.glob("*.xml")):
        feed, _, stamp = path.stem.rpartition("_")
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        out.append((when, feed, path.read_bytes()))
    out.sort(key=lambda s: (s[0], s[1]))
    return out


# ---- the replay ----------------------------------------------------------------------------


@contextlib.contextmanager
def patched(patches: Mapping[str, Any]) -> Iterator[None]:
    """Set module attributes for an experiment; always put the originals back."""
    saved = []
    try:
        for dotted, value in patches.items():
            module_name, _, attr = dotted.rpartition(".")
            module = importlib.import_module(module_name)
            saved.append((module, attr, getattr(module, attr)))
            setattr(module, attr, value)
        yield
    finally:
        for module, attr, value in reversed(saved):
            setattr(module, attr, value)


def write_config(workdir: Path, feeds: list[str], server: LoopbackServer, knobs: Knobs) -> Path:
    """One source per feed (no `language`: the pipeline reads or detects it, as in production)
    and one story-mode rule matching everything, so every article gets a story. The rule has
    `backfill = true`: the figures measure grouping and the story alert policy over every
    labelled article, while `max_age` (default 2 days) would hold the evergreen pieces an
    outlet's homepage keeps listing (12 NYT items dated 2019-2022: 115 alerts, not 127, and
    11 labelled stories never alerted)."""
    monitor = {"database": str(workdir / "stories.db"), "story_window": knobs.story_window}
    monitor.update(knobs.monitor)
    lines = ["[monitor]", *(f"{k} = {json.dumps(v)}" for k, v in monitor.items()), ""]
    for feed in feeds:
        url = server.url(f"/{feed}.xml")
        lines += ["[[sources]]", f"name = {json.dumps(feed)}", f"url = {json.dumps(url)}", ""]
    lines += ["[[rules]]", f'name = "{RULE}"', f"query = {json.dumps(QUERY)}", 'alert = "story"',
              "backfill = true"]  # fmt: skip
    path = workdir / "stories.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def replay(shots: list[tuple[datetime, str, bytes]], workdir: Path, knobs: Knobs) -> Path:
    """Serve each snapshot in time order and poll its feed at that time; the database path."""
    clock = Clock(shots[0][0])  # the monitor's own time, set to each snapshot's
    with patched(knobs.patches), LoopbackServer() as server:
        config = write_config(workdir, sorted({f for _, f, _ in shots}), server, knobs)
        monitor = Monitor(load(config, env={}), clock=clock)
        try:
            await serve_and_poll(monitor, server, shots, clock)
        finally:
            await monitor.close()
    return workdir / "stories.db"


def read_store(db_path: Path) -> Stored:
    """Articles, copies, stories and alerts of the replay, keyed by `article_key`."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT a.id, a.url, a.title, s.story_id FROM articles a "
            "LEFT JOIN story_articles s ON s.article_id = a.id ORDER BY a.id"
        ).fetchall()
        copies = conn.execute("SELECT article_id, url, title FROM copies ORDER BY id").fetchall()
        alerts = conn.execute("SELECT article_id FROM outbox WHERE rule = ?", (RULE,)).fetchall()
    finally:
        conn.close()
    stored = Stored([a for (a,) in alerts], articles=len(rows), copies=len(copies))
    for article_id, url, title, story_id in rows:
        key = article_key(url)
        stored.by_key.setdefault(key, article_id)
        stored.title_of.setdefault(key, title)
        stored.story_of[article_id] = story_id
        stored.own_key[article_id] = key
    for article_id, url, title in copies:
        key = article_key(url)
        stored.copy_keys[article_id].append(key)
        if key not in stored.by_key:  # an article's own URL wins over a copy of the same key
            stored.by_key[key] = article_id
            stored.title_of[key] = title or ""
    return stored


def predicted(labels: Mapping[str, Label], stored: Stored) -> dict[str, Cluster]:
    """Each labelled article's predicted story: its stored article's story (for a copy, the
    original's); no story makes it a singleton, and so does not being found at all."""
    out: dict[str, Cluster] = {}
    for key in labels:
        article_id = stored.by_key.get(key)
        if article_id is None:
            out[key] = ("missing", key)
        elif stored.story_of.get(article_id) is None:
            out[key] = ("article", article_id)
        else:
            out[key] = ("story", stored.story_of[article_id])
    return out


# ---- metrics -------------------------------------------------------------------------------


def _prf(precision: float, recall: float) -> dict[str, float]:
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def pairwise(gold: Mapping[str, str], pred: Mapping[str, Cluster]) -> dict[str, float]:
    """Over pairs of labelled articles: same predicted story vs same labelled story. With no
    predicted (or labelled) pair at all, precision (recall) is 1."""

    def pairs(counts: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    both = pairs(Counter((gold[k], pred[k]) for k in gold))
    in_pred, in_gold = pairs(Counter(pred[k] for k in gold)), pairs(Counter(gold.values()))
    return _prf(both / in_pred if in_pred else 1.0, both / in_gold if in_gold else 1.0)


def bcubed(gold: Mapping[str, str], pred: Mapping[str, Cluster]) -> dict[str, float]:
    """Per article: share of its predicted story that is truly its story, and of its true story
    that was predicted with it; averaged over labelled articles."""
    cell = Counter((gold[k], pred[k]) for k in gold)
    gold_n, pred_n = Counter(gold.values()), Counter(pred[k] for k in gold)
    n = len(gold) or 1
    precision = sum(cell[gold[k], pred[k]] / pred_n[pred[k]] for k in gold) / n
    recall = sum(cell[gold[k], pred[k]] / gold_n[gold[k]] for k in gold) / n
    return _prf(precision, recall)


def bilingual(labels: Mapping[str, Label], pred: Mapping[str, Cluster]) -> dict[str, int] | None:
    """Labelled stories spanning 2+ languages that have a predicted story holding articles of
    two of their languages; None when the labels carry no language."""
    if not any(lab.language for lab in labels.values()):
        return None
    langs: dict[str, dict[Cluster, set[str]]] = defaultdict(lambda: defaultdict(set))
    for key, lab in labels.items():
        if lab.language:
            langs[lab.story][pred[key]].add(lab.language)
    spanning = [s for s, by in langs.items() if len(set().union(*by.values())) >= 2]
    joined = [s for s in spanning if any(len(v) >= 2 for v in langs[s].values())]
    return {"joined": len(joined), "of": len(spanning)}


def alert_stats(labels: Mapping[str, Label], stored: Stored) -> dict[str, Any]:
    """Story-mode alerts per labelled story: an alert counts for the labelled story of its
    article and of the copies recorded against that article."""
    per_story: Counter = Counter()
    for article_id in stored.alerts:
        keys = [stored.own_key.get(article_id, ""), *stored.copy_keys.get(article_id, ())]
        per_story.update({labels[k].story for k in keys if k in labels})
    sizes = Counter(lab.story for lab in labels.values())
    never = [s for s in sizes if per_story[s] == 0]
    multi = [s for s, n in sizes.items() if n >= 2]
    top = per_story.most_common(1)
    return {
        "total": len(stored.alerts),
        "stories_never_alerted": len(never),
        "never_alerted_pct": round(100 * len(never) / len(sizes), 1) if sizes else 0.0,
        "max_for_one_story": top[0][1] if top else 0,
        "max_story": top[0][0] if top else None,
        "mean_per_multi_article_story": (
            round(sum(per_story[s] for s in multi) / len(multi), 2) if multi else None
        ),
    }


# ---- one set -------------------------------------------------------------------------------


def evaluate_set(
    label_set: LabelSet, knobs: Knobs, show_errors: int = 0, quiet: bool = False
) -> dict[str, Any]:
    """Replay one set, then score the stored stories against its labels."""
    labels = read_labels(label_set.tsv)
    shots = snapshots(label_set.snapshots)
    with tempfile.TemporaryDirectory() as tmp:
        cpu, wall = time.process_time(), time.perf_counter()
        db_path = asyncio.run(replay(shots, Path(tmp), knobs))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stored = read_store(db_path)
        if knobs.keep is not None:  # for a look with `news-monitor stories` afterwards
            knobs.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(db_path, knobs.keep / f"{label_set.name}.db")
    pred = predicted(labels, stored)
    gold = {k: lab.story for k, lab in labels.items()}
    unlabelled = [
        a for a, key in stored.own_key.items()
        if key not in labels and not any(k in labels for k in stored.copy_keys.get(a, ()))
    ]  # fmt: skip
    result = {
        "set": label_set.name,
        "snapshots": len(shots),
        "feeds": len({f for _, f, _ in shots}),
        "labelled_articles": len(labels),
        "labelled_stories": len(set(gold.values())),
        "stored_articles": stored.articles,
        "stored_copies": stored.copies,
        "articles_without_story": sum(1 for s in stored.story_of.values() if s is None),
        "labels_not_found": sum(1 for c in pred.values() if c[0] == "missing"),
        "stored_articles_unlabelled": len(unlabelled),
        "pairwise": pairwise(gold, pred),
        "bcubed": bcubed(gold, pred),
        "stories_found": len(set(pred.values())),
        "bilingual": bilingual(labels, pred),
        "alerts": alert_stats(labels, stored),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_ms_per_article": round(1000 * cpu / stored.articles, 3) if stored.articles else None,
    }
    if not quiet:
        print_result(result)
    if show_errors:
        print_errors(labels, pred, stored, show_errors)
    return result


def print_result(r: Mapping[str, Any]) -> None:
    """One readable block per set."""
    pw, b3, al, bi = r["pairwise"], r["bcubed"], r["alerts"], r["bilingual"]
    print(f"{r['set']}: {r['snapshots']} snapshots of {r['feeds']} feeds")
    print(f"  labelled: {r['labelled_articles']} articles in {r['labelled_stories']} stories; "
          f"stored: {r['stored_articles']} articles + {r['stored_copies']} copies "
          f"({r['articles_without_story']} without a story)")  # fmt: skip
    print(f"  labels not found in the DB: {r['labels_not_found']}   "
          f"stored articles without a label: {r['stored_articles_unlabelled']}")  # fmt: skip
    print(f"  pairwise  P {pw['precision']:.3f}  R {pw['recall']:.3f}  F1 {pw['f1']:.3f}")
    print(f"  B-cubed   P {b3['precision']:.3f}  R {b3['recall']:.3f}  F1 {b3['f1']:.3f}")
    print(f"  stories found {r['stories_found']} vs labelled {r['labelled_stories']}")
    joined = "–" if bi is None else f"{bi['joined']} of {bi['of']}"
    print(f"  bilingual stories joined: {joined}")
    mean = al["mean_per_multi_article_story"]
    print(f"  story-mode alerts: {al['total']}; labelled stories never alerted: "
          f"{al['stories_never_alerted']} ({al['never_alerted_pct']}%); most for one story: "
          f"{al['max_for_one_story']} ({al['max_story']}); mean per multi-article story: "
          f"{'–' if mean is None else mean}")  # fmt: skip
    print(f"  CPU {r['cpu_ms_per_article']} ms per stored article ({r['cpu_s']} s CPU, "
          f"{r['wall_s']} s wall; includes the loopback HTTP server and client, parsing, "
          f"storage, stories: everything in the replay)")  # fmt: skip


# ---- debugging: the worst merges and splits ------------------------------------------------


def print_errors(
    labels: Mapping[str, Label], pred: Mapping[str, Cluster], stored: Stored, n: int
) -> None:
    """The n largest predicted stories that mix labelled stories, and the n labelled stories
    split over most predicted stories, with titles: what to look at when tuning."""
    members: dict[Cluster, list[str]] = defaultdict(list)
    for key in labels:
        members[pred[key]].append(key)
    mixed = [c for c, keys in members.items() if len({labels[k].story for k in keys}) > 1]
    mixed.sort(key=lambda c: (-len(members[c]), -len({labels[k].story for k in members[c]})))
    print(f"  worst merges (of {len(mixed)} predicted stories mixing labelled stories):")
    for cluster in mixed[:n]:
        keys = sorted(members[cluster], key=lambda k: labels[k].story)
        stories = len({labels[k].story for k in keys})
        print(f"    {_name(cluster)}: {len(keys)} labelled articles from {stories} stories")
        for key in keys:
            print(f"      {labels[key].story:6} {_title(key, labels, stored)}")
    by_story: dict[str, dict[Cluster, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, lab in labels.items():
        by_story[lab.story][pred[key]].append(key)
    split = [s for s, parts in by_story.items() if len(parts) > 1]
    split.sort(key=lambda s: (-len(by_story[s]), -sum(map(len, by_story[s].values()))))
    print(f"  worst splits (of {len(split)} labelled stories split):")
    for story in split[:n]:
        parts = by_story[story]
        size = sum(map(len, parts.values()))
        label = next(labels[k].text for k in next(iter(parts.values())))
        print(f"    {story}: {size} articles in {len(parts)} predicted stories: {label[:80]}")
        for cluster, keys in sorted(parts.items(), key=lambda p: -len(p[1])):
            for key in keys:
                print(f"      {_name(cluster):13} {_title(key, labels, stored)}")


def _name(cluster: Cluster) -> str:
    return "not stored" if cluster[0] == "missing" else f"{cluster[0]} {cluster[1]}"


def _title(key: str, labels: Mapping[str, Label], stored: Stored) -> str:
    return (stored.title_of.get(key) or f"(not stored) {labels[key].link}")[:100]


# ---- command line --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", dest="sets", metavar="NAME",
                        help="a labelled set (repeatable; default: every set found)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--show-errors", type=int, default=0, metavar="N",
                        help="list the N worst merges and splits of each set")  # fmt: skip
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"default: {CORPUS}")
    parser.add_argument("--patch", action="append", default=[], metavar="MODULE.NAME=VALUE",
                        help="another setting: monitor.stories.grouping.JOIN=0.25")  # fmt: skip
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each set's database as DIR/SET.db")  # fmt: skip
    parser.add_argument("--nearby", action="store_true",
                        help="also replay at JOIN and JOIN_CROSS +-0.05")  # fmt: skip
    return parser


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    """Where experiment flags (added to `build_parser`) become replay settings."""
    patches = {}
    for item in args.patch:
        name, _, value = item.partition("=")
        number = float(value)
        patches[name.strip()] = int(number) if number.is_integer() and "." not in value else number
    return Knobs(patches=patches, keep=args.keep)


def main(argv: list[str] | None = None, knobs: Knobs | None = None) -> dict[str, Any]:
    """Evaluate the chosen sets: {"sets": {name: figures}, "skipped": {name: reason}}."""
    args = build_parser().parse_args(argv)
    knobs = knobs or knobs_from_args(args)
    logs.configure(level="warning")  # per-poll info lines would drown the figures
    found, skipped = find_sets(args.corpus, args.sets)
    for name, reason in skipped.items():
        print(f"{name}: skipped ({reason})")
    if not found and not skipped:
        print(f"no labelled story sets (*.stories.tsv) in {args.corpus / 'stories'}")
    out: dict[str, Any] = {"sets": {}, "skipped": skipped}
    for label_set in found:
        out["sets"][label_set.name] = evaluate_set(label_set, knobs, args.show_errors)
    if args.nearby:
        out["nearby"] = nearby(found, knobs)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    return out


NEARBY = (("JOIN", -0.05), ("JOIN", 0.05), ("JOIN_CROSS", -0.05), ("JOIN_CROSS", 0.05))


def nearby(found: Sequence[LabelSet], knobs: Knobs) -> list[dict[str, Any]]:
    """The figures at settings next to the chosen ones: a result on a knife-edge shows here."""
    from monitor.stories import grouping

    print("\nnearby settings (pairwise F1 / bilingual joined / never alerted / most alerts):")
    rows = []
    for name, delta in NEARBY:
        value = round(getattr(grouping, name) + delta, 3)
        patches = {**knobs.patches, f"monitor.stories.grouping.{name}": value}
        trial = Knobs(knobs.story_window, knobs.monitor, patches)
        figures = {s.name: evaluate_set(s, trial, quiet=True) for s in found}
        cells = [
            f"{n[:12]} F1 {r['pairwise']['f1']:.3f} bi {(r['bilingual'] or {}).get('joined', '-')} "
            f"never {r['alerts']['stories_never_alerted']} most {r['alerts']['max_for_one_story']}"
            for n, r in figures.items()
        ]
        print(f"  {name}={value}: " + " | ".join(cells))
        rows.append({"setting": f"{name}={value}", "sets": figures})
    return rows


if __name__ == "__main__":
    main()
