"""The bilingual news lexicon: words of several languages that name one concept.

Story grouping compares stems, and an Italian stem never equals an English one (`razz` is not
`rocket`). The lexicon is data, not code: `data/lexicon.tsv` ships general news vocabulary
(events, institutions, places whose names differ across languages), and users add their own
files of the same shape from the config (`[monitor] lexicon = ["my-words.tsv"]`).

File format (UTF-8, tab-separated): a header row of ISO 639-1 language codes (`en<TAB>it`, any
number of columns), then one concept per row, each cell a comma-separated list of single words.
`#` starts a comment line. The concept's name is the first word of its first cell. Every word is
folded and stemmed with its column's language, so one row covers the inflections the stemmer
joins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from monitor.errors import ConfigError
from monitor.stories.language import stem
from monitor.text import fold

__all__ = ["Lexicon", "default_lexicon", "load_lexicon", "parse_lexicon"]


@dataclass(frozen=True, slots=True)
class Lexicon:
    """(language, stem) -> concept name."""

    concepts: dict[tuple[str, str], str] = field(default_factory=dict)

    def concept(self, language: str | None, stem: str) -> str | None:
        if not language:
            return None
        return self.concepts.get((language, stem))

    def extended(self, other: Lexicon) -> Lexicon:
        """This lexicon with `other`'s entries added (the other wins where both have one)."""
        return Lexicon({**self.concepts, **other.concepts})


def parse_lexicon(text: str, origin: str = "lexicon") -> Lexicon:
    """Read a lexicon file's text; a malformed row raises ConfigError naming file and line."""

    rows = _rows(text)
    if not rows:
        return Lexicon()
    (header_line, header), *body = rows
    languages = [code.strip().lower() for code in header]
    if not all(code.isalpha() and 2 <= len(code) <= 3 for code in languages):
        raise ConfigError([f"{origin}:{header_line}: the header must list language codes"])
    concepts: dict[tuple[str, str], str] = {}
    for line, cells in body:
        if len(cells) != len(languages):
            raise ConfigError(
                [f"{origin}:{line}: {len(cells)} columns, the header has {len(languages)}"]
            )
        words = [[fold(w.strip()) for w in cell.split(",") if w.strip()] for cell in cells]
        if not words[0] or any(" " in w for ws in words for w in ws):
            raise ConfigError([f"{origin}:{line}: single words only, and the first cell not empty"])
        name = words[0][0]
        for language, forms in zip(languages, words, strict=True):
            for form in forms:
                concepts[(language, stem(form, language))] = name
    return Lexicon(concepts)


def _rows(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            out.append((number, raw.rstrip("\r\n").split("\t")))
    return out


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The shipped lexicon (read once per process)."""
    data = resources.files("monitor.stories").joinpath("data/lexicon.tsv")
    return parse_lexicon(data.read_text(encoding="utf-8"), "monitor/stories/data/lexicon.tsv")


def combined(extra: Iterable[tuple[str, str]]) -> Lexicon:
    """The shipped lexicon extended by (origin, text) of the user's lexicon files."""
    lexicon = default_lexicon()
    for origin, text in extra:
        lexicon = lexicon.extended(parse_lexicon(text, origin))
    return lexicon


def load_lexicon(paths: Sequence[Path]) -> Lexicon:
    """The shipped lexicon plus the user's files; ConfigError (file:line) on a bad one."""
    if not paths:
        return default_lexicon()
    texts = []
    for path in paths:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot read the lexicon: {exc}"]) from None
    return combined(texts)
