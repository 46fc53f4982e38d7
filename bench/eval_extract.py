"""Measure monitor.extract on real pages from ../shared/corpus/articles; prints figures.

fundus-test-data: each `<Publisher>.json` holds one expectation per parser version (V1, V1_1, ...)
and the publisher's `<Publisher>_<date>.html.gz` files, sorted, line up with the sorted versions.
A page's title matches when equal after folding case, quotes and whitespace; its body "contains
the expected paragraphs" when at least 90 % of them appear in the extracted text (compared with
all whitespace removed, since the expected text sometimes glues words across line breaks).
italian-news-html has no expected body: there the title must match INDEX.tsv's <title> (site suffix
allowed) and the body must be over 500 characters with no mojibake.

Usage: python bench/eval_extract.py [CORPUS_DIR]
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.ingest.extract import extract_article

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"', "\xa0": " "})


def fold(text: str) -> str:
    return " ".join(text.translate(_QUOTES).casefold().split())


def squash(text: str) -> str:
    return "".join(fold(text).split())


@dataclass
class Case:
    name: str
    country: str
    html: bytes
    url: str
    title: str
    paragraphs: list[str]


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
                    html=gzip.decompress(page.read_bytes()),
                    url=meta.get(page.name, {}).get("url", "https://example.invalid/"),
                    title=exp.get("title") or "",
                    paragraphs=[p for p in paras if p.strip()],
                )
            )
    return cases


def fundus_score(case: Case) -> tuple[bool, float]:
    """(title matches, share of expected paragraphs found in the body)."""
    got = extract_article(case.html, url=case.url, charset=None)
    title_ok = fold(got.title) == fold(case.title)
    body = squash(got.text)
    found = sum(1 for p in case.paragraphs if squash(p) in body)
    return title_ok, (found / len(case.paragraphs)) if case.paragraphs else 1.0


def italian_cases(corpus: Path) -> list[tuple[str, Path, str, str]]:
    base = corpus / "articles" / "italian-news-html"
    with (base / "INDEX.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        (r["file"].split("/")[0], base / r["file"], r["canonical_url"], r["title"])
        for r in rows
        if "homepage" not in r["file"]
    ]


def italian_score(path: Path, url: str, title: str) -> tuple[bool, bool]:
    got = extract_article(path.read_bytes(), url=url, charset=None)
    want, have = fold(title), fold(got.title)
    title_ok = bool(have) and (want == have or want.startswith(have) or have.startswith(want))
    body_ok = len(got.text) > 500 and not MOJIBAKE.search(got.text + got.title)
    return title_ok, body_ok


def main(corpus: Path = CORPUS) -> None:
    started = time.perf_counter()
    cases = fundus_cases(corpus)
    results = [(c, *fundus_score(c)) for c in cases]

    def report(label: str, rows: list) -> None:
        n = len(rows)
        titles = sum(1 for _, t, _ in rows if t)
        bodies = sum(1 for _, _, share in rows if share >= 0.9)
        mean = sum(share for _, _, share in rows) / n if n else 0.0
        print(
            f"{label:<22} pages {n:4d}  title match {titles / n:6.1%}  "
            f"body >=90% paragraphs {bodies / n:6.1%}  mean paragraph recall {mean:6.1%}"
        )

    print("fundus-test-data")
    report("  all countries", results)
    report("  it/", [r for r in results if r[0].country == "it"])
    for c, t, share in results:
        if c.country == "it":
            print(f"    {c.name:<40} title {'ok' if t else 'MISS'}  paragraphs {share:.0%}")
    by_site: dict[str, list[tuple[bool, bool]]] = {}
    for site, path, url, title in italian_cases(corpus):
        by_site.setdefault(site, []).append(italian_score(path, url, title))
    print("italian-news-html (title vs INDEX.tsv; body > 500 chars, no mojibake)")
    for site, rows in sorted(by_site.items()):
        n = len(rows)
        print(
            f"  {site:<20} pages {n:4d}  title match {sum(t for t, _ in rows) / n:6.1%}  "
            f"body ok {sum(b for _, b in rows) / n:6.1%}"
        )
    print(f"elapsed {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
