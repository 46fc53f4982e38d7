"""An article's terms for story grouping: any language, no word list of ours.

What two reports of one event share is their rare words. An article becomes a bag of weighted
terms taken from its title (counted `TITLE_WEIGHT` times) and its lead (the first `LEAD_WORDS`
words of the summary, else of the text, so a long article stays comparable with a one-sentence
feed summary):

- a word, folded (case, accents) and stemmed for the article's language (Snowball, through
  PyStemmer), unless it is a stop word of that language (stopwordsiso);
- `=concept` instead, when the bilingual lexicon knows the word (`razzi` and `rockets` are
  both `=rocket`), so reports in two languages share it;
- `@name` as well, for a capitalised word inside a sentence (a name as written: `@draghi`,
  whatever the stemmer of either language makes of it); title-case headlines, where every word
  is capitalised, give no names;
- `#number`, with thousands separators dropped (`1.400` = `1,400` = `#1400`);
- `"quotation`: the first words of a quoted phrase (outlets quote the same words).

Names, numbers and concepts are the same in every language; plain stems only meet within one.
How much a shared term counts is not decided here: `grouping` weighs it by how rare it is in
the window (document frequency), so "Ukraine" in a Ukraine-watching window weighs little.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from monitor.stories.language import stem, stop_words
from monitor.stories.lexicon import Lexicon
from monitor.text import fold, words

TITLE_WEIGHT = 2.0  # a title word counts this many times a lead word
LEAD_WORDS = 50  # words of the summary (else the text) compared with other articles
FACT_WORDS = 400  # words of the body whose names and numbers count as told
NAME_WEIGHT = 1.0  # a name counts this much on top of its stem
NAME, NUMBER, CONCEPT, QUOTE = "@", "#", "=", '"'
QUOTE_WORDS = 6  # a quotation is known by its first words (outlets cut quotes differently)

# a word with a number glued on (COVID-19, G7, PS5) is one word, not a number fact
_TOKEN = re.compile(r"[^\W\d_]+-?\d+\b|\d+(?:[.,]\d+)*|[^\W\d_]+")
_QUOTED = re.compile(r'[«“"]([^«»“”"]{12,300})[»”"]')
_URL = re.compile(r"<?(?:https?://|www\.)\S+>?")  # a link names no event
_SENTENCE_END = re.compile(r"[.!?:;\"«»“”(\[\n|–—-]\s*$")


def _number(token: str) -> str:
    # 1.400 / 1,400 -> 1400; 3,5 -> 3.5 (a separator before exactly three digits is thousands)
    plain = re.sub(r"[.,](?=\d{3}(?!\d))", "", token)
    return NUMBER + plain.replace(",", ".")


def _title_case(tokens: list[str]) -> bool:
    """Every word capitalised (an English headline): capitals then say nothing about names."""
    longer = [t for t in tokens if len(t) > 3 and t[0].isalpha()]
    return len(longer) >= 3 and sum(t[0].isupper() for t in longer) / len(longer) > 0.7


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, is a name) pairs: a name is capitalised and does not open a sentence."""
    matches = list(_TOKEN.finditer(text))
    tokens = [m.group() for m in matches]
    title_case = _title_case(tokens)
    out = []
    previous_end = -1
    for m, token in zip(matches, tokens, strict=True):
        if previous_end < 0:
            opens = True
        else:  # most gaps are one space, which ends no sentence: skip the regex for those
            gap = text[previous_end : m.start()]
            opens = gap != " " and _SENTENCE_END.search(gap) is not None
        out.append((token, not opens and not title_case and token[0].isupper()))
        previous_end = m.end()
    return out


@lru_cache(maxsize=1 << 15)
def _word_root(token: str, language: str | None) -> tuple[str, str]:
    """A token's folded word and its stem. Cached: news text repeats its words, and folding
    plus stemming each occurrence was half the cost of an article's terms (32k entries, a few
    MB, keep the common words of a few languages)."""
    word = fold(token).replace("-", "")
    return word, stem(word, language)


def _terms(text: str, language: str | None, lexicon: Lexicon, stop: frozenset[str]) -> Counter:
    counts: Counter[str] = Counter()
    text = _URL.sub(" ", text)
    for quoted in _QUOTED.findall(text):
        said = [w for w in words(quoted) if w not in stop][:QUOTE_WORDS]
        if len(said) >= 3:
            counts[QUOTE + " ".join(said)] += 1
    for token, is_name in _tokens(text):
        if token[0].isdigit():
            counts[_number(token)] += 1
            continue
        word, root = _word_root(token, language)
        acronym = token.isupper() and len(token) >= 2
        if len(word) < 2 or (word in stop and not acronym):
            continue
        concept = lexicon.concept(language, root)
        term = CONCEPT + concept if concept is not None else root
        counts[term] += 1
        if concept is None and (is_name or acronym):
            counts[NAME + word] += NAME_WEIGHT
    return counts


def lead_text(summary: str, text: str, words: int = LEAD_WORDS) -> str:
    """The first `words` words of the summary, else of the text."""
    return " ".join((summary or text).split()[:words])


def article_terms(
    title: str, lead: str, language: str | None, lexicon: Lexicon
) -> dict[str, float]:
    """The weighted terms of an article's title and lead (see the module docstring)."""
    stop = stop_words(language)
    counts: Counter[str] = Counter()
    for term, n in _terms(title, language, lexicon, stop).items():
        counts[term] += n * TITLE_WEIGHT
    counts.update(_terms(lead, language, lexicon, stop))
    return dict(counts)


def article_facts(title: str, body: str, language: str | None, lexicon: Lexicon) -> frozenset[str]:
    """The names and numbers of the title and the first FACT_WORDS words of the body: what an
    article has told, so a later report repeating them is not news."""
    text = " ".join(body.split()[:FACT_WORDS])
    return frozenset(t for t in article_terms(title, text, language, lexicon) if is_fact(t))


def is_fact(term: str) -> bool:
    """Names, numbers and quotations: what a later report must add to be a development."""
    return term[:1] in (NAME, NUMBER, QUOTE)
