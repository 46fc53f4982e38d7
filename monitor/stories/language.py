"""Per-language word tools from maintained libraries: stop words and Snowball stemmers.

One home for both, so `terms` (an article's terms), `lexicon` (concepts stemmed like the
articles' words) and `copies` (shingles without stop words) see a language the same way.
Stop words come from stopwordsiso, stems from PyStemmer; an unknown language gets none of either,
and its words stay whole. stopwordsiso is imported on first use: its import costs ~7 ms (plus
importlib.metadata when nothing loaded it yet), which the read commands (`search`, `sources`)
would pay through the store without ever using it.
"""

from __future__ import annotations

from functools import lru_cache

import Stemmer

from monitor.text import fold


@lru_cache(maxsize=64)
def stop_words(language: str | None) -> frozenset[str]:
    """The folded stop words of `language` (empty when the language is unknown)."""
    import stopwordsiso  # see the module docstring; cached, so once per language

    if not language or not stopwordsiso.has_lang(language):
        return frozenset()
    return frozenset(fold(w) for w in stopwordsiso.stopwords(language))


@lru_cache(maxsize=64)
def _stemmer(language: str | None) -> Stemmer.Stemmer | None:
    if not language:
        return None
    try:
        return Stemmer.Stemmer(language, 20000)
    except KeyError:  # no Snowball stemmer for this language: words stay whole
        return None


def stem(word: str, language: str | None) -> str:
    """`word` (folded) reduced to its stem for `language`; unchanged without a stemmer."""
    stemmer = _stemmer(language)
    return stemmer.stemWord(word) if stemmer is not None else word
