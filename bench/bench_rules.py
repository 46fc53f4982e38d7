r"""Throughput of rule matching: RuleSet (Aho-Corasick) against one big combined regex.

Run: `python bench/bench_rules.py [--rules 1000] [--articles 3000]`

The machine's speed is factored out by a floor measured in the same run over the same articles:
the standard library alone lower-casing each article and splitting it into words with one regex
(`re.findall(r"\w+", ...)`, no project code). "x floor" is RuleSet's articles/s over the floor's:
1.0 would mean matching 1,000 rules costs what splitting the words with a regex costs. Times are
the process's CPU time (best round of several), so other processes on the machine count less.

Articles are the titles and descriptions of the real feeds in ../shared/corpus (or generated text
when the corpus is absent). Rules are generated from the articles' own vocabulary, so they hit:
a mix of words, OR groups, phrases, prefixes, NEAR and NOT. Both contenders share the parser, the
word folding and the boolean evaluation; they differ only in how the hits are found: one
Aho-Corasick pass over the folded text, or one regex alternation of every pattern of the rule set
(`re` tries the alternatives one by one at each word, which is what makes it slow).
"""

from __future__ import annotations

import argparse
import html
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.rules.query import Document, RuleSet  # noqa: E402
from monitor.text import words  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
TAGS = re.compile(r"<[^>]+>")


def local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def corpus_articles(limit: int) -> list[Document]:
    """Unique (title, description) pairs from every feed file in the corpus."""
    news = sorted((CORPUS / "feeds" / "news").glob("*.xml"))
    files = (
        news
        + sorted(set((CORPUS / "feeds").rglob("*.xml")) - set(news))
        + sorted(
            p
            for p in (CORPUS / "parser-corpora").rglob("*")
            if p.suffix in (".xml", ".rss", ".atom")
        )
    )
    seen: set[tuple[str, str]] = set()
    docs: list[Document] = []
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    for path in files:
        try:
            root = etree.fromstring(path.read_bytes(), parser)
        except (etree.XMLSyntaxError, ValueError):
            continue
        if root is None:
            continue
        for item in root.iter():
            if local(item.tag) not in ("item", "entry"):
                continue
            fields = {local(c.tag): "".join(c.itertext()) for c in item if local(c.tag)}
            title = fields.get("title", "").strip()
            body = fields.get("description") or fields.get("summary") or fields.get("content", "")
            body = html.unescape(TAGS.sub(" ", body)).strip()
            if title and (title, body) not in seen:
                seen.add((title, body))
                docs.append(Document(title, body, path.stem.split("_")[0], None))
    return docs[:limit]


def generated_articles(n: int, rng: random.Random) -> list[Document]:
    vocab = [f"w{i}" for i in range(3000)] + ["ucraina", "kiev", "colloqui", "tregua", "negoziati"]
    vocab += ["ukraine", "kyiv", "russia", "talks", "ceasefire", "peace", "attack", "drone"]
    return [
        Document(
            " ".join(rng.choices(vocab, k=10)), " ".join(rng.choices(vocab, k=45)), "gen", None
        )
        for _ in range(n)
    ]


def generate_rules(docs: list[Document], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Rules built from the articles' own words (skipping the most common ones)."""
    counts: Counter[str] = Counter()
    seqs = []
    for d in docs:
        ws = words(d.title + " " + d.text)
        seqs.append(ws)
        counts.update(w for w in ws if len(w) > 3 and not w[0].isdigit())
    vocab = [w for w, _ in counts.most_common(6000)[400:]]  # skip the most common words

    long_words = [w for w in vocab if len(w) > 7] or ["negoziati"]

    def term() -> str:
        return rng.choice(vocab)

    def phrase() -> str:
        ws = rng.choice([s for s in seqs if len(s) > 3] or [["peace", "talks", "."]])
        i = rng.randrange(len(ws) - 2)
        while i and len(ws[i]) < 4:  # start on a content word: "on the" is not a rule
            i -= 1
        return '"' + " ".join(ws[i : i + rng.choice((2, 3))]) + '"'

    def prefix() -> str:
        w = rng.choice(long_words)
        return w[: rng.randint(6, len(w) - 1)] + "*"

    def any_leaf() -> str:
        return rng.choice((term, term, phrase, prefix))()

    def group(k: int) -> str:
        return "(" + " OR ".join(any_leaf() for _ in range(k)) + ")"

    shapes = [
        lambda: f"{group(rng.randint(2, 5))} AND {group(rng.randint(2, 6))}",
        lambda: f"{term()} {any_leaf()}",
        lambda: f"{group(3)} NOT {term()}",
        lambda: f"{term()} NEAR/{rng.randint(2, 8)} {any_leaf()}",
        lambda: f"title:{group(3)} OR {phrase()}",
        lambda: f"({term()} OR {prefix()}) AND NOT ({term()} OR {phrase()})",
    ]
    return [(f"rule-{i}", rng.choice(shapes)()) for i in range(n)]


class RegexScanner:
    """Stands in for the automaton: one combined regex of every pattern, scanned per article.

    The usual way to do it: one alternation (longest first) over the same folded, space-joined
    words, matching on word boundaries; each match is mapped back to its pattern(s), reported with
    the value the automaton holds for it.
    """

    def __init__(self, values: dict[str, object]) -> None:
        patterns = list(values)
        self.values = values
        self.exact = {p for p in patterns if p.endswith(" ")}
        self.prefixes = {p for p in patterns if not p.endswith(" ")}
        self.lengths = sorted({len(p) for p in self.prefixes})
        alts = [re.escape(p.strip()) + ("" if p.endswith(" ") else "[^ ]*") for p in patterns]
        alts.sort(key=len, reverse=True)
        self.regex = re.compile(" (?:" + "|".join(alts) + ")(?= )")

    def iter(self, hay: str):  # noqa: ANN201 - mirrors ahocorasick.Automaton.iter
        for m in self.regex.finditer(hay):
            text = m.group()
            found = [text + " "] if text + " " in self.exact else []
            found += [text[:k] for k in self.lengths if text[:k] in self.prefixes]
            for p in found:
                yield m.start() + len(p) - 1, self.values[p]


def run(rules: RuleSet, docs: list[Document], min_seconds: float = 2.0) -> tuple[float, int]:
    """Best articles/s (CPU time) over rounds of the whole list; other processes share this
    machine."""
    best, spent, matched = 0.0, 0.0, 0
    while spent < min_seconds:
        start = time.process_time()
        matched = sum(len(rules.match(d)) for d in docs)
        elapsed = time.process_time() - start
        best, spent = max(best, len(docs) / elapsed), spent + elapsed
    return best, matched


FLOOR_WORD = re.compile(r"\w+")


def floor(docs: list[Document], min_seconds: float = 2.0) -> float:
    """Best articles/s of the stdlib floor: lower-case and regex-split title and text."""
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        start = time.process_time()
        for d in docs:
            FLOOR_WORD.findall(d.title.lower())
            FLOOR_WORD.findall(d.text.lower())
        elapsed = time.process_time() - start
        best, spent = max(best, len(docs) / elapsed), spent + elapsed
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    docs = corpus_articles(args.articles) if CORPUS.is_dir() else []
    origin = f"{len(docs)} real feed items from {CORPUS}"
    if len(docs) < 500:
        docs = generated_articles(args.articles, rng)
        origin = f"{len(docs)} generated articles (corpus absent or too small)"
    avg_words = sum(len(words(d.title + " " + d.text)) for d in docs) / len(docs)
    rule_list = generate_rules(docs, args.rules, rng)

    t0 = time.perf_counter()
    fast = RuleSet(rule_list)
    compile_s = time.perf_counter() - t0
    slow = RuleSet(rule_list)
    values = dict(sorted(fast._automaton.items()))  # noqa: SLF001
    patterns = list(values)
    slow._automaton = RegexScanner(values)  # noqa: SLF001 - same rules, regex scanning

    print(f"articles: {origin}, {avg_words:.0f} words each on average")
    print(f"rules:    {len(rule_list)} ({len(patterns)} distinct patterns), e.g.")
    for _, q in rule_list[:6]:
        print(f"          {q}")
    print(f"compile:  {compile_s * 1000:.0f} ms")
    floor_rate = floor(docs)
    fast_rate, fast_hits = run(fast, docs, min_seconds=4.0)
    floor_rate = max(floor_rate, floor(docs))  # best of two, around the RuleSet rounds
    sample = docs[: max(200, len(docs) // 10)]
    slow_rate, slow_hits = run(slow, sample, min_seconds=4.0)
    fast_sample = sum(len(fast.match(d)) for d in sample)
    print(
        f"RuleSet (Aho-Corasick): {fast_rate:9,.0f} articles/s  ({fast_hits} rule matches)"
        f"  = {fast_rate / floor_rate:.2f}x floor"
    )
    print(rf"floor (stdlib words):   {floor_rate:9,.0f} articles/s  (lower() + re.findall(r'\w+'))")
    print(
        f"combined regex:         {slow_rate:9,.0f} articles/s  "
        f"(on {len(sample)} articles: {slow_hits} matches vs {fast_sample} for RuleSet)"
    )
    print(f"ratio:                  {fast_rate / slow_rate:9,.1f}x")


if __name__ == "__main__":
    main()
