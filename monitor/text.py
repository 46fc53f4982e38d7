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
from functools import lru_cache

__all__ = ["SIZE_UNITS", "fold", "format_size", "hash_fold", "word_line", "words"]

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
    # Written mark-first, `M(?<=[latin/greek]M)M*` rather than `(?<=[latin/greek])M+`: the same
    # runs (no mark is Latin or Greek), but a pattern that opens with a character class lets `re`
    # skip ahead to the next mark in C, 4x faster (18 -> 4 ns a character on the corpus texts).
    marks = "[" + "".join(parts) + "]"
    return f"{marks}(?<=[\\x00-\\x7f\u0370-\u03ff]{marks}){marks}*"


_MARKS = re.compile(_combining_class())
# Words are what `\d+(?:[.,]\d+)+|[^\W_]+` finds: a number keeps its inner separators ("1.400",
# "3,5"); otherwise runs of letters/digits. Apostrophes, hyphens and all other punctuation split
# words: "l'Ucraina" -> "l", "ucraina". `_WORD_SCAN` finds the same tokens but opens with a
# character class, so `re` skips the gaps between words in C (an opening alternation makes it try
# both branches at every character): the first character, then the rest of a number (when it was
# a digit) or of a word. 1.2x faster than the alternation; on ASCII text, with ASCII classes, 2x.
_WORD_SCAN = re.compile(r"[^\W_](?:(?<=\d)\d*(?:[.,]\d+)+|[^\W_]*)")
_WORD_SCAN_ASCII = re.compile(r"[a-zA-Z0-9](?:(?<=[0-9])[0-9]*(?:[.,][0-9]+)+|[a-zA-Z0-9]*)")
# Faster still on ASCII text without a number like "1.400" (a digit, "." or ",", a digit: what
# `_NUMBER_BYTES` maps to b"0.0"): every other character becomes a space and `split()` yields the
# words (bytes translate, split and join: 9 against 35 ns a character for the regex).
_SPLIT_BYTES = bytes(c if c < 128 and chr(c).isalnum() else 32 for c in range(256))
_NUMBER_BYTES = bytes(48 if c in b"0123456789" else 46 if c in b".," else 32 for c in range(256))
_PUNCT_PAIRS = tuple(_PUNCT.items())


def _ascii_quotes(text: str) -> str:
    """The typographic quotes as ASCII: a str.replace per quote, 3x cheaper than one regex
    substitution (no replacement is itself replaced)."""
    for quote, ascii_quote in _PUNCT_PAIRS:
        if quote in text:
            text = text.replace(quote, ascii_quote)
    return text


def _fold_unicode(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", _MARKS.sub("", text))


def fold(text: str) -> str:
    """Lower-case, accent-free form of `text`: `"Perché KYIV"` -> `"perche kyiv"`."""
    if text.isascii():
        return text.lower().replace("`", "'")
    return _fold_unicode(_ascii_quotes(text))  # quotes first: "ŉ" folds to "ʼn", "ʼ" stays


def _latin_table() -> bytes:
    """A Latin-1 character's fold as one ASCII byte; a space for the other characters that are
    no part of a word; 0xFF for the rest (µ ß ½ æ ð ø þ, which fold to letters beyond ASCII)."""
    table = bytearray()
    for char in map(chr, range(256)):
        folded = fold(char)
        if len(folded) == 1 and folded.isascii():
            table.append(ord(folded))
        else:
            word = any(c.isalnum() or c in ".," for c in folded)
            table.append(0xFF if word else 32)
    return bytes(table)


# A text of Latin-1 characters (English, Italian, French, German, ... once the quotes are ASCII)
# folds character by character: no character there is a combining mark, every mark from a
# decomposition follows its own base, and no two results compose (nor with a `_symbol`). So one
# bytes translate folds it, 12x cheaper than `fold` (0.8 against 9.6 ns a character on the
# corpus's Latin-1 texts).
_LATIN_FOLD = _latin_table()


_SYMBOL_CATEGORIES = frozenset(
    ("Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "Sc", "Sk", "Sm", "So", "Zs")
)


@lru_cache(maxsize=4096)
def _symbol(char: str) -> bool:
    """Whether `char` (beyond Latin-1) can be a space in a Latin-1 text without changing its
    words: punctuation, a symbol or a space that decomposes into such characters only (so it
    composes with nothing) and folds to no letter or digit, nor to one "." or "," that could
    sit inside a number. Dashes, arrows, "…": 373 of the corpus's texts are Latin-1 but for them.
    """
    folded = fold(char)
    return (
        all(
            unicodedata.category(c) in _SYMBOL_CATEGORIES
            for c in unicodedata.normalize("NFKD", char)
        )
        and not any(c.isalnum() for c in folded)
        and folded not in ("", ".", ",")
    )


def _latin_bytes(text: str) -> bytes | None:
    """`text` (its quotes ASCII) as Latin-1, up to four distinct `_symbol`s as spaces, or None."""
    for _ in range(5):
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as error:
            char = text[error.start]
            if not _symbol(char):
                return None
            text = text.replace(char, " ")
    return None


def _word_source(text: str) -> str | bytes:
    """What to find the words of `text` in: ASCII bytes with the same words and no number like
    "1.400" when it can (other non-word characters than in `fold(text)`), else `fold(text)`."""
    if text.isascii():
        raw = text.encode("ascii").translate(_LATIN_FOLD)
    else:
        text = _ascii_quotes(text)
        latin = _latin_bytes(text)
        raw = b"\xff" if latin is None else latin.translate(_LATIN_FOLD)
        if 0xFF in raw:
            folded = _fold_unicode(text)
            if not folded.isascii():
                return folded
            raw = folded.encode("ascii")
    return raw.decode("ascii") if b"0.0" in raw.translate(_NUMBER_BYTES) else raw


def words(text: str) -> list[str]:
    """Folded word tokens of `text`, in order: `"L'Ucraina, 1.400 km"` -> `l ucraina 1.400 km`."""
    source = _word_source(text)
    if isinstance(source, bytes):
        return source.translate(_SPLIT_BYTES).decode("ascii").split()
    return (_WORD_SCAN_ASCII if source.isascii() else _WORD_SCAN).findall(source)


def word_line(text: str) -> str:
    """`" ".join(words(text))`, what the rule matcher scans; mostly without a list of words."""
    source = _word_source(text)
    if isinstance(source, bytes):
        return b" ".join(source.translate(_SPLIT_BYTES).split()).decode("ascii")
    return " ".join((_WORD_SCAN_ASCII if source.isascii() else _WORD_SCAN).findall(source))


_HASH_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NON_WORD = re.compile(r"[\W_]+")


def hash_fold(text: str) -> str:
    """Case- and accent-free `text` with punctuation removed and spaces collapsed, for hashes
    that are stored: unlike `fold` it drops marks on every script (Cyrillic "й" -> "и") and
    leaves Hangul decomposed. Frozen: a change would break every stored fingerprint."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = _HASH_MARKS.sub("", decomposed)
    return _NON_WORD.sub(" ", stripped).strip()


# Sizes as the config writes them: "10MB", "512KB", "1GB", units of 1024 (config.values parses).
SIZE_UNITS = {"GB": 1024**3, "MB": 1024**2, "KB": 1024}


def format_size(n: int) -> str:
    """A byte count the way the config spells it, so a limit reads as written: 10485760 ->
    "10MB", 1572864 -> "1.5MB"; a count no unit divides to two decimals stays in bytes
    ("10,000,000 bytes"), never "9.53674MB"."""
    for unit, size in SIZE_UNITS.items():
        if n >= size and (n * 100) % size == 0:
            return f"{n / size:g}{unit}"
    return f"{n:,} byte" + ("" if n == 1 else "s")
