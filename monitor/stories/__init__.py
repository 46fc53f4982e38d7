"""Same article and same event: pure functions on plain data, with their word data files.

- `copies`: is this item the same article as one already stored (a wire copy, a reprint)?
- `language`: stop words and stemmers per language (stopwordsiso, PyStemmer).
- `terms`: an article's weighted terms (stems, names, numbers, lexicon concepts) for any
  language, with stop words and stemmers from maintained libraries.
- `lexicon`: the bilingual news vocabulary (`data/lexicon.tsv`, extendable from the config)
  that lets an Italian and an English report of one event share terms.
- `grouping`: which story of the window an article joins, by TF-IDF cosine similarity.
- `developments`: whether a later article of a story is news worth another alert.

Nothing here touches the network, the disk (except reading the shipped data files once) or the
clock: the store feeds in the window's statistics and `now`. Pure core: it may import only
`models`, `text` and `errors`; the store calls it inside its transactions, never the reverse.
"""
