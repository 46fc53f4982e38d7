"""Measure article extraction on real pages from ../shared/corpus/articles, side by side.

Three extractors, each in a child process of its own (so that each has its own peak RSS, its own
import cost and its own time), on the same pages in the same run:
- builtin: monitor.ingest.extract with its hand-written main-text heuristic (`builtin=True`),
  which is also what the monitor uses when trafilatura is not installed;
- trafilatura: trafilatura 2.x alone, title and body (`bare_extraction` of the page's bytes);
- shipped: what the monitor does with trafilatura installed, extract.py's titles (JSON-LD
  first) and mojibake repair, trafilatura's body.

fundus-test-data: each `<Publisher>.json` holds one expectation per parser version (V1, V1_1, ...)
and the publisher's `<Publisher>_<date>.html.gz` files, sorted, line up with the sorted versions.
A page's title matches when equal after folding case, quotes and whitespace; its body "contains
the expected paragraphs" when at least 90 % of them appear in the extracted text (compared with
all whitespace removed, since the expected text sometimes glues words across line breaks).
italian-news-html has no expected body: there the title must match INDEX.tsv's <title> (site suffix
allowed) and the body must be over 500 characters with no mojibake.

Usage: python bench/eval_extract.py [CORPUS_DIR] [--engine builtin|trafilatura|shipped]
(one engine: its figures as JSON, what the parent reads).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import json
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from monitor.ingest.extract import extract_article  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
ENGINES = ("builtin", "trafilatura", "shipped")
MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"', "\xa0": " "})

Extractor = Callable[[bytes, str], tuple[str, str]]  # (page, url) -> (title, body)


def fold(text: str) -> str:
    return " ".join(text.translate(_QUOTES).casefold().split())


def squash(text: str) -> str:
    return "".join(fold(text).split())


@dataclass
class Case:
    name: str
    country: str
    path: Path
    url: str
    title: str
    paragraphs: list[str]

    @property
    def html(self) -> bytes:
        """Read when needed: the 258 pages hold 85 MB, which would swamp the RSS figures."""
        return gzip.decompress(self.path.read_bytes())


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def fundus_cases(corpus: Path) -> list[Case]:
    """Every fundus page with its expectation; see the module docstring for the pairing."""
    base = corpus / "articles" / "fundus-test-data"
    cases = []
    for spec in sorted(base.glob("*/*.json")):
        expected = json.loads(spec.read_text(encoding="utf-8"))
        pages = sorted(
            p
            for p in spec.parent.glob(f"{spec.stem}_*.html.gz")
            if p.name[len(spec.stem) + 1 :][:4].isdigit()
        )
        meta_path = spec.parent / "meta.info"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        versions = sorted(expected, key=_version_key)
        for version, page in zip(versions, pages, strict=False):
            exp = expected[version]
            body = exp.get("body") or {}
            paras = [p for s in body.get("sections", []) for p in s.get("paragraphs", [])]
            cases.append(
                Case(
                    name=page.name,
                    country=spec.parent.name,
                    path=page,
                    url=meta.get(page.name, {}).get("url", "https://example.invalid/"),
                    title=exp.get("title") or "",
                    paragraphs=[p for p in paras if p.strip()],
                )
            )
    return cases


def builtin(html: bytes, url: str) -> tuple[str, str]:
    got = extract_article(html, url=url, charset=None, builtin=True)
    return got.title, got.text


def shipped(html: bytes, url: str) -> tuple[str, str]:
    got = extract_article(html, url=url, charset=None)
    return got.title, got.text


def trafilatura_alone(html: bytes, url: str) -> tuple[str, str]:
    import trafilatura

    found = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    return (found.title or "", found.text or "") if found is not None else ("", "")


EXTRACTORS: dict[str, Extractor] = {
    "builtin": builtin,
    "trafilatura": trafilatura_alone,
    "shipped": shipped,
}


def fundus_score(case: Case, extract: Extractor = shipped) -> tuple[bool, float]:
    """(title matches, share of expected paragraphs found in the body)."""
    title, text = extract(case.html, case.url)
    body = squash(text)
    found = sum(1 for p in case.paragraphs if squash(p) in body)
    share = found / len(case.paragraphs) if case.paragraphs else 1.0
    return fold(title) == fold(case.title), share


def italian_cases(corpus: Path) -> list[tuple[str, Path, str, str]]:
    base = corpus / "articles" / "italian-news-html"
    with (base / "INDEX.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        (r["file"].split("/")[0], base / r["file"], r["canonical_url"], r["title"])
        for r in rows
        if "homepage" not in r["file"]
    ]


def italian_score(
    path: Path, url: str, title: str, extract: Extractor = shipped
) -> tuple[bool, bool]:
    got_title, text = extract(path.read_bytes(), url)
    want, have = fold(title), fold(got_title)
    title_ok = bool(have) and (want == have or want.startswith(have) or have.startswith(want))
    body_ok = len(text) > 500 and not MOJIBAKE.search(text + got_title)
    return title_ok, body_ok


# ---------------------------------------------------------------------- one engine (child)


def measure(engine: str, corpus: Path) -> dict:
    """One extractor on every page: the figures the parent prints, as plain data."""
    started = time.perf_counter()
    extract = EXTRACTORS[engine]
    extract(b"<html><body><p>warm-up: imports</p></body></html>", "https://example.invalid/")
    imported = time.perf_counter() - started
    fundus = [(c.name, c.country, *fundus_score(c, extract)) for c in fundus_cases(corpus)]
    italian: dict[str, list[tuple[bool, bool]]] = {}
    for site, path, url, title in italian_cases(corpus):
        italian.setdefault(site, []).append(italian_score(path, url, title, extract))
    return {
        "engine": engine,
        "fundus": fundus,
        "italian": italian,
        "seconds": time.perf_counter() - started,
        "import_seconds": imported,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trafilatura": importlib.util.find_spec("trafilatura") is not None,
    }


def run_child(engine: str, corpus: Path) -> dict | str:
    """`measure` in a fresh interpreter; the error text when it cannot run (not installed)."""
    done = subprocess.run(
        [sys.executable, __file__, str(corpus), "--engine", engine],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])  # a log line may come before


# ---------------------------------------------------------------------- report (parent)


def _fundus_row(rows: list) -> str:
    n = len(rows)
    titles = sum(1 for *_, t, _ in rows if t) / n
    bodies = sum(1 for *_, share in rows if share >= 0.9) / n
    poor = sum(1 for *_, share in rows if share < 0.5)
    mean = sum(share for *_, share in rows) / n
    return f"{titles:6.1%} {bodies:9.1%} {poor:7d} {mean:8.1%}"


def report(results: dict[str, dict | str]) -> None:
    ok = {e: r for e, r in results.items() if isinstance(r, dict)}
    for engine, problem in results.items():
        if isinstance(problem, str):
            print(f"{engine}: not measured ({problem})")
    if not ok:
        return
    first = next(iter(ok.values()))
    if "shipped" in ok and not ok["shipped"]["trafilatura"]:
        print("note: trafilatura is not installed, so `shipped` is the builtin extractor")
    print(f"fundus-test-data: {len(first['fundus'])} pages")
    print(f"  {'extractor':<12} {'title':>6} {'body>=90%':>9} {'<50%':>7} {'mean rec':>8}  "
          f"{'seconds':>7} {'import':>6} {'max RSS':>8}")  # fmt: skip
    for engine, r in ok.items():
        print(
            f"  {engine:<12} {_fundus_row(r['fundus'])}  {r['seconds']:7.1f} "
            f"{r['import_seconds']:6.2f} {r['max_rss_mb']:6.0f}MB"
        )
    print("  it/ pages (title, paragraphs), per extractor:")
    it = [i for i, row in enumerate(first["fundus"]) if row[1] == "it"]
    for i in it:
        cells = "  ".join(
            f"{'ok' if r['fundus'][i][2] else 'MISS':>4} {r['fundus'][i][3]:4.0%}"
            for r in ok.values()
        )
        print(f"    {first['fundus'][i][0]:<40} {cells}")
    print("  pages under 50 % for any extractor:", " ".join(ok))
    for i, row in enumerate(first["fundus"]):
        shares = [r["fundus"][i][3] for r in ok.values()]
        if min(shares) < 0.5:
            print(f"    {row[0]:<40} " + "  ".join(f"{s:4.0%}" for s in shares))
    print("italian-news-html (title vs INDEX.tsv; body > 500 chars, no mojibake): title / body ok")
    for site in sorted(first["italian"]):
        cells = []
        for r in ok.values():
            rows = r["italian"][site]
            n = len(rows)
            cells.append(f"{sum(t for t, _ in rows) / n:6.1%} {sum(b for _, b in rows) / n:6.1%}")
        print(f"  {site:<12} pages {len(first['italian'][site]):3d}  " + "   ".join(cells))
    print("  (columns: " + ", ".join(ok) + ")")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--engine", choices=ENGINES, help="measure one, print JSON (the child)")
    args = parser.parse_args(argv)
    if args.engine:
        print(json.dumps(measure(args.engine, args.corpus)))
        return
    started = time.perf_counter()
    report({engine: run_child(engine, args.corpus) for engine in ENGINES})
    print(f"elapsed {time.perf_counter() - started:.1f} s (one extractor at a time)")


if __name__ == "__main__":
    main()
