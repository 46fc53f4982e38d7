"""CPU per article of story grouping as the window grows: the inverted index against a linear scan.

The target: at most 1 ms CPU per article with 5,000 articles in the 72 h window, flat in the
window size (a linear scan of every story cost 1-7 ms at 500). For each window size N a fresh
Store is filled with N grouped articles through the real path (`Store.save_poll` of Candidates
built by `pipeline.candidate`, matched by a rule, polls of 20, `now` advancing so that the N
articles span the window); then the same M probe articles are saved and timed:

- `save_poll` as a whole, and its story part (`count_terms` + `assign_story`: document
  frequencies, candidate lookup, `grouping.place`, writes), its copy part and window pruning,
  timed by wrapping those functions (process CPU, `time.process_time`);
- `candidate` alone (terms, facts, sketch, language: independent of the window);
- the baseline, on a copy of the filled database (N <= `--linear-max`): each probe compared with
  every story of the window (all members' vectors loaded, `grouping.place` on all of them) inside
  the same transaction, so it sees what the index sees; how often both pick the same story.

Articles are real corpus items (../shared/corpus: feeds/news, feeds/nyt-poll-series, the
news-ag stories set) made distinct: a third of the words swapped for words of other items of the
same language, every number changed. Without the corpus, generated English text is used.

Usage: python bench/bench_stories.py [--sizes 500,5000,20000] [--probe 300] [--linear-max 5000]
       [--swap 0.33] [--profile]   (--profile: each SQL statement's CPU and a cProfile at the
       largest N). `main(argv)` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.errors import ParseError  # noqa: E402
from monitor.ingest.normalize import fingerprint, to_article  # noqa: E402
from monitor.ingest.parse import parse_feed  # noqa: E402
from monitor.models import Article, Candidate, GoodPoll, Match, Source, StoryView  # noqa: E402
from monitor.service import pipeline  # noqa: E402
from monitor.store import SqliteStore  # noqa: E402
from monitor.store import copies as store_copies
from monitor.store import stories as store_stories  # noqa: E402
from monitor.stories import grouping  # noqa: E402
from monitor.stories.lexicon import default_lexicon  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
CORPUS_GLOBS = ("feeds/news/*.xml", "feeds/nyt-poll-series/*.xml", "stories/news-ag-*/*.xml")
WINDOW = timedelta(hours=72)
POLL = 20  # articles per save_poll
FEEDS = 40  # sources the polls rotate over
MATCHED = (Match("r", ()),)  # every article matches: every article is grouped
START = datetime(2026, 1, 5, tzinfo=UTC)
_DIGITS = re.compile(r"\d+")
_MARKS = re.compile(r"\?(?:\s*,\s*\?)+")  # IN (?, ?, ...) of any length: one statement


# --- articles ----------------------------------------------------------------------------------


def corpus_articles(corpus: Path = CORPUS) -> list[Article]:
    """Distinct real items (one per URL and per text) with a title of three words or more."""
    now = START
    seen: set[str] = set()
    out: list[Article] = []
    for pattern in CORPUS_GLOBS:
        for path in sorted(corpus.glob(pattern)):
            try:
                parsed = parse_feed(path.read_bytes(), url="https://example.org/", charset=None)
            except (ParseError, OSError):
                continue
            for entry in parsed.entries:
                a = to_article(entry, source=Source("orig", "https://example.org/"), now=now,
                               feed_language=parsed.language)  # fmt: skip
                if a is None or len(a.title.split()) < 3 or {a.url, a.fingerprint} & seen:
                    continue
                seen |= {a.url, a.fingerprint}
                out.append(a)
    return out


def generated_articles(n: int, rng: random.Random) -> list[Article]:
    """English-looking items of a Zipf-ish vocabulary, for a machine without the corpus."""
    vocab = [f"w{i}x" for i in range(5000)]
    weights = [1.0 / (i + 10) for i in range(len(vocab))]
    glue = "the of and to in on for with from after".split()

    def sentence(k: int) -> str:
        return " ".join(
            rng.choice(glue) if rng.random() < 0.3 else rng.choices(vocab, weights)[0]
            for _ in range(k)
        )

    return [
        Article(
            source="orig",
            guid=f"g{i}",
            url=f"https://gen.example/{i}",
            title=sentence(9),
            summary=sentence(40),
            language="en",
        )
        for i in range(n)
    ]


class Distinct:
    """Endless distinct articles of realistic shape: real items with a third of their words
    swapped for words of other items of the same language and their numbers changed."""

    def __init__(self, base: list[Article], seed: int, tag: str, swap: float = 1 / 3) -> None:
        self.rng = random.Random(seed)
        self.swap = swap
        self.base = base
        self.tag = tag
        self.vocab: dict[str | None, list[str]] = defaultdict(list)
        for a in base:
            self.vocab[a.language].extend(f"{a.title} {a.summary}".split())
        self.n = 0

    def _swap(self, text: str, vocab: list[str]) -> str:
        out = []
        for word in text.split():
            if self.rng.random() < self.swap:
                word = self.rng.choice(vocab)
            out.append(_DIGITS.sub(lambda _: str(self.rng.randint(2, 9999)), word))
        return " ".join(out)

    def next(self) -> Article:
        a = self.rng.choice(self.base)
        vocab = self.vocab[a.language]
        title, summary = self._swap(a.title, vocab), self._swap(a.summary, vocab)
        text = summary if a.text == a.summary else self._swap(a.text, vocab)
        self.n += 1
        url = f"https://bench.example/{self.tag}/{self.n}"
        return replace(a, guid=url, url=url, title=title, summary=summary, text=text,
                       fingerprint=fingerprint(title, text))  # fmt: skip


# --- instrumentation ---------------------------------------------------------------------------


def _timed(fn: Callable[..., Any], name: str, cpu: Counter[str]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu[name] += time.process_time() - start

    return timed


# (module, function, bucket): the parts of save_poll timed separately
PARTS = (
    (store_stories, "count_terms", "count_terms"),
    (store_stories, "assign_story", "assign_story"),
    (store_stories, "window_df", "df"),
    (store_stories, "_candidates", "lookup"),
    (grouping, "place", "place"),
    (store_copies, "check_copy", "copies"),
    (store_copies, "file_signatures", "copies"),
    (store_stories, "prune_window", "prune"),
    (store_copies, "prune_window", "prune"),
)


@contextmanager
def instrumented(cpu: Counter[str]) -> Iterator[None]:
    """Wrap the parts of save_poll so that their CPU adds up in `cpu` (~1 us per call)."""
    with ExitStack() as stack:
        for module, name, bucket in PARTS:
            wrapped = _timed(getattr(module, name), bucket, cpu)
            stack.enter_context(mock.patch.object(module, name, wrapped))
        yield


def all_stories(conn: Any) -> list[StoryView]:
    """Every story of the window with its centroid, as `_candidates` builds them."""
    return [
        StoryView(int(sid), json.loads(centroid or "{}"),
                           frozenset(languages.split(",")) if languages else frozenset())
        for sid, centroid, languages in conn.execute(
            "SELECT id, centroid, languages FROM stories WHERE id IN "
            "(SELECT story_id FROM story_articles WHERE vector IS NOT NULL)"
        )
    ]  # fmt: skip


@dataclass
class Linear:
    """The baseline's CPU and how often it agrees with the index (filled by `compared`)."""

    cpu: Counter[str] = field(default_factory=Counter)
    agree: int = 0
    compared: int = 0
    stories: int = 0


@contextmanager
def compared(linear: Linear) -> Iterator[None]:
    """Before each real `assign_story`, place the article by a scan of every story."""
    assign, place, window_df = store_stories.assign_story, grouping.place, store_stories.window_df
    chosen: list[grouping.Placement] = []

    def index_place(*args: Any) -> grouping.Placement:
        chosen.append(place(*args))
        return chosen[-1]

    def assign_both(conn: Any, article_id: int, candidate: Candidate, now: Any, since: Any) -> int:
        t0 = time.process_time()
        df, n = window_df(conn, candidate.terms, since)
        vector = grouping.weighted(candidate.terms, df, n)
        t1 = time.process_time()
        views = all_stories(conn)
        t2 = time.process_time()
        scan = place(vector, candidate.language or candidate.article.language, views)
        t3 = time.process_time()
        linear.cpu.update(df=t1 - t0, load=t2 - t1, place=t3 - t2)
        linear.stories += len(views)
        chosen.clear()
        story = assign(conn, article_id, candidate, now, since)
        linear.compared += 1
        linear.agree += bool(chosen) and chosen[0].story == scan.story
        return story

    with (
        mock.patch.object(store_stories, "assign_story", assign_both),
        mock.patch.object(grouping, "place", index_place),
    ):
        yield


# --- a window of N articles --------------------------------------------------------------------


@dataclass
class Window:
    """A store being filled: the clock advances so that `size` articles span WINDOW."""

    store: SqliteStore
    size: int
    now: datetime = START
    polls: int = 0
    stored: int = 0

    @property
    def step(self) -> timedelta:
        return WINDOW * POLL / self.size

    def save(self, batch: list[Candidate]) -> tuple[float, int]:
        """One poll of `batch` at the next tick: (CPU seconds of save_poll, articles stored)."""
        self.now += self.step
        self.polls += 1
        source = f"feed{self.polls % FEEDS}"
        batch = [
            replace(
                c,
                article=replace(c.article, source=source, published=self.now, first_seen=self.now),
            )
            for c in batch
        ]
        t = time.process_time()
        poll = GoodPoll(source, self.now, self.now, f"https://bench.example/{source}")
        saved = self.store.save_poll(poll, batch, window=WINDOW.total_seconds())
        cpu = time.process_time() - t
        self.stored += len(saved.new_ids)
        return cpu, len(saved.new_ids)


def fill(window: Window, articles: Distinct, lexicon: Any) -> float:
    """Save polls until the window holds `size` stored articles; CPU ms per stored article."""
    cpu = 0.0
    while window.stored < window.size:
        want = min(POLL, window.size - window.stored)
        batch = [pipeline.candidate(articles.next(), MATCHED, lexicon) for _ in range(want)]
        cpu += window.save(batch)[0]
    return 1000 * cpu / window.stored


def probe(window: Window, probes: list[Candidate]) -> dict[str, float]:
    """Save the probes in polls of POLL; CPU ms per probe article of save_poll and its parts."""
    cpu: Counter[str] = Counter()
    stored = 0
    with instrumented(cpu):
        for start in range(0, len(probes), POLL):
            spent, new = window.save(probes[start : start + POLL])
            cpu["save_poll"] += spent
            stored += new
    per = {k: 1000 * v / len(probes) for k, v in cpu.items()}
    per["stories"] = per.get("count_terms", 0.0) + per.get("assign_story", 0.0)
    per["index"] = per.get("df", 0.0) + per.get("lookup", 0.0) + per.get("place", 0.0)
    per["write"] = per.get("assign_story", 0.0) - per["index"]
    per["stored"] = stored
    return per


def window_facts(store: SqliteStore) -> dict[str, int]:
    """Stories and grouped articles in the window, the largest story's size."""
    conn = store.db.conn
    n_articles, n_stories = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT story_id) FROM story_articles WHERE vector IS NOT NULL"
    ).fetchone()
    biggest = conn.execute("SELECT MAX(size) FROM stories").fetchone()[0] or 0
    return {"window_articles": n_articles, "window_stories": n_stories, "largest_story": biggest}


def db_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def run_size(size: int, probes: list[Candidate], base: list[Article], args: Any) -> dict:
    """Fill a fresh store with `size` articles, then time the probes (and the linear scan)."""
    lexicon = default_lexicon()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stories.db"
        with SqliteStore(path) as store, SqliteStore(Path(tmp) / "twin.db") as twin:
            window = Window(store, size)
            fill_ms = fill(window, Distinct(base, size, f"fill{size}", args.swap), lexicon)
            out: dict[str, Any] = {"size": size, "fill_ms": fill_ms, **window_facts(store)}
            twin_window = Window(twin, size, window.now, window.polls)
            if size <= args.linear_max:
                store.db.conn.backup(twin.db.conn)
            out["probe"] = probe(window, probes)
            out["db_bytes_per_article"] = db_bytes(path) / window.stored
            out["db_file_bytes_per_article"] = path.stat().st_size / window.stored
            if size <= args.linear_max:
                out["linear"] = linear_run(twin_window, probes)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def linear_run(window: Window, probes: list[Candidate]) -> dict[str, float]:
    """The same probes on a copy of the filled store, each also placed by a full scan."""
    linear = Linear()
    with compared(linear):
        for start in range(0, len(probes), POLL):
            window.save(probes[start : start + POLL])
    per = {k: 1000 * v / max(linear.compared, 1) for k, v in linear.cpu.items()}
    per["total"] = sum(per.values())
    per["agree"] = linear.agree / max(linear.compared, 1)
    per["stories_scanned"] = linear.stories / max(linear.compared, 1)
    return per


# --- the run -----------------------------------------------------------------------------------


def candidate_cost(articles: list[Article]) -> tuple[list[Candidate], float]:
    """The probes as the pipeline builds them, and the CPU ms per article of `candidate`."""
    lexicon = default_lexicon()
    pipeline.candidate(
        articles[0], MATCHED, lexicon
    )  # stemmers, stop words and lexicon loaded once
    t = time.process_time()
    built = [pipeline.candidate(a, MATCHED, lexicon) for a in articles]
    return built, 1000 * (time.process_time() - t) / len(articles)


def _row(cells: list[object]) -> str:
    return " ".join(f"{c:>9}" for c in cells)


def report(out: dict) -> None:
    """Two compact tables (save_poll's parts; index against linear scan), then flatness."""
    print(f"{out['base_articles']} base articles ({out['base']}, {out['swap']:.0%} of words "
          f"swapped), {out['probes']} probes; candidate (terms, facts, sketch, language): "
          f"{out['terms_ms']:.3f} ms/article")  # fmt: skip
    print(
        "ms CPU per probe article; story = count_terms + assign_story = df + lookup + place + write"
    )
    print(_row(["N", "stories", "largest", "fill", "save_poll", "story", "df", "lookup", "place",
                "write", "copies", "prune", "B/art", "RSS MB"]))  # fmt: skip
    for r in out["sizes"].values():
        p = r["probe"]
        print(_row([r["size"], r["window_stories"], r["largest_story"], f"{r['fill_ms']:.3f}",
                    *(f"{p.get(k, 0.0):.3f}" for k in ("save_poll", "stories", "df", "lookup",
                                                       "place", "write", "copies", "prune")),
                    f"{r['db_bytes_per_article']:.0f}", f"{r['rss_mb']:.0f}"]))  # fmt: skip
    linear = {n: r for n, r in out["sizes"].items() if "linear" in r}
    if linear:
        print(
            "placing an article: index (df + lookup + place) against a scan of every story "
            "(df + load + place), ms CPU"
        )
        print(_row(["N", "index", "linear", "load", "place", "lin/idx", "agree", "scanned"]))
    for n, r in linear.items():
        lin, index = r["linear"], r["probe"]["index"]
        print(_row([n, f"{index:.3f}", f"{lin['total']:.2f}", f"{lin['load']:.2f}",
                    f"{lin['place']:.2f}", f"{lin['total'] / index:.1f}", f"{lin['agree']:.1%}",
                    f"{lin['stories_scanned']:.0f}"]))  # fmt: skip
    for key, ratio in out["flatness"].items():
        print(f"flatness {key}: " + ", ".join(f"{k} x{v:.2f}" for k, v in ratio.items()))


class _Fetched:
    """A statement's rows read at once (so their CPU counts), with what the store asks of it."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rows = cursor.fetchall()
        self.rowcount, self.lastrowid = cursor.rowcount, cursor.lastrowid

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


class TimedConnection:
    """The store's connection with the CPU of each statement (execute + fetch) summed by SQL."""

    def __init__(self, conn: sqlite3.Connection, cpu: Counter[str], calls: Counter[str]) -> None:
        self.conn, self.cpu, self.calls = conn, cpu, calls

    def _time(self, sql: str, run: Callable[[], Any]) -> Any:
        start = time.process_time()
        result = run()
        shape = _MARKS.sub("?,…", " ".join(sql.split()))
        self.cpu[shape] += time.process_time() - start
        self.calls[shape] += 1
        return result

    def execute(self, sql: str, params: Any = ()) -> _Fetched:
        return self._time(sql, lambda: _Fetched(self.conn.execute(sql, params)))

    def executemany(self, sql: str, rows: Any) -> _Fetched:
        return self._time(sql, lambda: _Fetched(self.conn.executemany(sql, rows)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def profile_probe(size: int, probes: list[Candidate], base: list[Article], args: Any) -> None:
    """Where the probes' save_poll time goes at window size `size`: each SQL statement's CPU
    (execute + fetch) and a cProfile, each on its own copy of the filled store."""
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "sql.db") as store:
        window = Window(store, size)
        fill(window, Distinct(base, size, "profile", args.swap), default_lexicon())
        with SqliteStore(Path(tmp) / "cprofile.db") as twin:
            store.db.conn.backup(twin.db.conn)
            profiler = cProfile.Profile()
            profiler.enable()
            _save_all(Window(twin, size, window.now, window.polls), probes)
            profiler.disable()
        cpu: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        conn, store.db.conn = store.db.conn, TimedConnection(store.db.conn, cpu, calls)
        try:
            _save_all(window, probes)
        finally:
            store.db.conn = conn
    print(f"SQL of save_poll, N={size}: ms CPU per article (execute + fetch), calls per article")
    for sql, spent in cpu.most_common(args.profile_top):
        n = len(probes)
        print(f"{1000 * spent / n:9.3f} {calls[sql] / n:6.2f}  {sql[:160]}")
    print(f"cProfile of save_poll, N={size}, {len(probes)} probes:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_top)


def _save_all(window: Window, probes: list[Candidate]) -> None:
    for start in range(0, len(probes), POLL):
        window.save(probes[start : start + POLL])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000", help="window sizes, comma-separated")
    parser.add_argument("--probe", type=int, default=300, help="articles timed per size")
    parser.add_argument("--linear-max", type=int, default=5000, help="largest N to scan")
    parser.add_argument("--swap", type=float, default=1 / 3, help="share of words swapped")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest N too")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run every size; return the figures (ms CPU per article) as a dict."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.probe < 1 or not sizes or sizes[0] < 1:
        parser.error("--probe and every --sizes value must be at least 1")
    base = corpus_articles(args.corpus) if args.corpus.is_dir() else []
    out: dict[str, Any] = {"base": "corpus" if base else "generated", "swap": args.swap}
    base = base or generated_articles(1500, random.Random(3))
    probe_source = Distinct(base, seed=1, tag="probe", swap=args.swap)
    probes, out["terms_ms"] = candidate_cost([probe_source.next() for _ in range(args.probe)])
    out.update(base_articles=len(base), probes=len(probes), sizes={})
    for size in sizes:
        out["sizes"][size] = run_size(size, probes, base, args)
    first = out["sizes"][sizes[0]]["probe"]
    out["flatness"] = {
        f"{size}/{sizes[0]}": {
            k: out["sizes"][size]["probe"][k] / (first[k] or float("nan"))
            for k in ("save_poll", "stories", "index")
        }
        for size in sizes[1:]
    }
    report(out)
    if args.profile:
        profile_probe(sizes[-1], probes, base, args)
    return out


if __name__ == "__main__":
    main()
