"""Text folding and word splitting shared by rules, stories and search.

Everything that compares words (rule matching, stories, search) must fold the same way, or a
rule written `perche` would miss `perché` in one place and hit it in another. So the one definition
lives here: case-fold, compatibility-decompose (NFKD, so ligatures and full-width forms become plain
letters), drop the combining marks on Latin and Greek letters (accents), and map typographic
apostrophes and quotes to ASCII.

Combining marks are collected once from the Basic Multilingual Plane (a few milliseconds at import);
marks beyond it are historic scripts that news feeds do not use.

`hash_fold` is the one exception, kept apart on purpose: the older fold behind stored hashes
(`Article.fingerprint`, the `title:` keys of items without a link). It differs from `fold` on
Cyrillic and Hangul, and changing it would change every hash already in a database.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "hash_fold", "words"]

_PUNCT = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (the usual typographic apostrophe)
    "\u201a": "'",
    "\u201b": "'",
    "\u02bc": "'",  # modifier letter apostrophe (Ukrainian transliterations)
    "\u2032": "'",  # prime
    "\u00b4": "'",  # acute accent used as apostrophe
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u00ab": '"',  # « (Italian quotations)
    "\u00bb": '"',  # »
    "\u2033": '"',
}
_PUNCT_RE = re.compile("[" + "".join(_PUNCT) + "]")


def _combining_class() -> str:
    """A regex character class of every BMP code point with a non-zero combining class."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x10000):
        if unicodedata.combining(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = (
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    # Only marks on Latin (ASCII after NFKD) or Greek letters are accents to drop; on Cyrillic
    # and other scripts they are part of a distinct letter (Ukrainian й, ї) and are recomposed.
    return "(?<=[\\x00-\\x7f\u0370-\u03ff])[" + "".join(parts) + "]+"


_MARKS = re.compile(_combining_class())
# A number keeps its inner separators ("1.400", "3,5"); otherwise runs of letters/digits.
# Apostrophes, hyphens and all other punctuation split words: "l'Ucraina" -> "l", "ucraina".
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")


def _punct(m: re.Match[str]) -> str:
    return _PUNCT[m.group()]


def fold(text: str) -> str:
    """Lower-case, accent-free form of `text`: `"Perché KYIV"` -> `"perche kyiv"`."""
    if text.isascii():
        return text.lower().replace("`", "'")
    text = unicodedata.normalize("NFKD", _PUNCT_RE.sub(_punct, text).casefold())
    return unicodedata.normalize("NFC", _MARKS.sub("", text))


def words(text: str) -> list[str]:
    """Folded word tokens of `text`, in order: `"L'Ucraina, 1.400 km"` -> `l ucraina 1.400 km`."""
    return _WORD.findall(fold(text))


_HASH_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NON_WORD = re.compile(r"[\W_]+")


def hash_fold(text: str) -> str:
    """Case- and accent-free `text` with punctuation removed and spaces collapsed, for hashes
    that are stored: unlike `fold` it drops marks on every script (Cyrillic "й" -> "и") and
    leaves Hangul decomposed. Frozen: a change would break every stored fingerprint."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = _HASH_MARKS.sub("", decomposed)
    return _NON_WORD.sub(" ", stripped).strip()
