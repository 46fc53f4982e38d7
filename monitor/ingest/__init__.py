"""From the network to `Article`s: bytes a source serves, read into normalized articles.

- `fetch`: the `Fetcher`, one aiohttp session with a deadline, a size cap, checked redirects,
  conditional GET, Retry-After windows and per-host limits;
- `parse`: feed bytes -> `RawEntry`s with feedparser, behind guards against hostile XML, plus
  the lxml pre-scan that lets a poll skip the items unchanged since the last one;
- `parse_fast`: the lxml fast path of `parse`, which gives feedparser's entries or declines;
- `feedparser_rules`: how feedparser reads an element (text, dates, links, markup): `parse_fast`;
- `jsonfeed`: JSON Feed 1.0/1.1 -> `RawEntry`s, which `parse` hands a body that is JSON;
- `opml`: OPML subscription lists read (behind `parse`'s guards) and written;
- `discover`: a web page -> the feeds it advertises and the common feed paths of its site;
- `pages`: HTML listing pages without a feed -> `RawEntry`s, through the source's CSS selectors;
- `extract`: an article page -> its title, author, date and main text;
- `bodies`: the main text by trafilatura, when the `fulltext` extra is installed (`extract`
  falls back to its own heuristic, and says so once);
- `normalize`: `RawEntry` -> `Article` (canonical URL, plain text, UTC dates, language,
  fingerprint); pure, no clock: `now` comes in as an argument;
- `identity`: the GUID rule, how an item's GUID and link become its key and its link;
- `charsets`: charset labels against what the bytes are, shared by the parsers and `extract`;
- `fulltext`: `FullText`, which fetches new articles' pages for `fetch_article` sources,
  politely (it owns the robots.txt cache, so one is made per `Monitor` and kept).

Why one package: these steps read the same hostile input and must agree on it. The fast path must
give feedparser's entries, the pre-scan's item keys must be the ones `normalize` skips by, and a
charset or GUID quirk found in one reader is fixed for all. Nothing here stores, matches or
alerts: the service's pipeline calls these steps in order and passes their results on.

May import only the bottom modules (`models`, `errors`, `text`, `secrets`) and the package root's
`__version__` (the User-Agent). It logs through structlog directly, never through `runtime`,
which configures where those lines go.
"""
