"""Watch rules: the query language users write in `[[rules]]`, `test-rule` and `search`.

- `query`: the parser (text -> syntax tree, with errors that point at the column) and `RuleSet`,
  which matches every enabled rule against an article in one pass;
- `tree`: the syntax tree's node types;
- `match`: the matcher (one Aho-Corasick automaton for all terms of all rules);
- `fts`: a query as an FTS5 pre-filter, for `search` (the matcher still decides).

Pure: imports only `models`, `text` and `errors` (and the pyahocorasick library).
"""

from monitor.rules.match import Document
from monitor.rules.query import Query, RuleSet, parse_query

__all__ = ["Document", "Query", "RuleSet", "parse_query"]
