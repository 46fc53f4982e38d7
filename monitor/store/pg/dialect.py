"""SQLite's SQL as PostgreSQL reads it: the store's statements are written once.

The store's parts (sources, articles, polls, stories, outbox, mutes) run the same statements on
both backends. They are written in the SQL the two share (upserts with `ON CONFLICT`,
`RETURNING`, `COALESCE`, `CAST(? AS TEXT)` where a bare parameter's type would be unknown);
what remains SQLite's own is rewritten here, once per statement text (cached): `?`
placeholders, `IS [NOT] ?`, the two-argument (scalar) MIN/MAX, IFNULL, JSON arrays read with
`json_each` and `json_array_length`. String literals and quoted names are left as they are
(but `%`, which psycopg reads everywhere). A pure function of the text, tested on its own
(tests/test_pg_dialect.py).
"""

from __future__ import annotations

import re
from functools import lru_cache

_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_HIDDEN = re.compile(r"\x00(\d+)\x00")
# a word that may follow `json_each(...)` and is no alias of it
_NOT_ALIAS = (
    "WHERE|ON|USING|JOIN|LEFT|RIGHT|INNER|OUTER|CROSS|FULL|NATURAL|ORDER|GROUP|HAVING|LIMIT|"
    "OFFSET|UNION|EXCEPT|INTERSECT|WINDOW"
)
_JSON_EACH = re.compile(
    rf"\bjson_each\(\s*([\w.]+|\?)\s*\)(?:\s+(?:AS\s+)?(?!(?:{_NOT_ALIAS})\b)(\w+))?",
    re.IGNORECASE,
)
_JSON_LENGTH = re.compile(r"\bjson_array_length\(\s*([\w.]+|\?)\s*\)", re.IGNORECASE)
_MIN_MAX = re.compile(r"\b(MAX|MIN)\s*\(", re.IGNORECASE)
_IFNULL = re.compile(r"\bIFNULL\s*\(", re.IGNORECASE)
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?", re.IGNORECASE)


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """The statement `sql` (SQLite's dialect, `?` placeholders) for psycopg and PostgreSQL."""
    sql = sql.replace("%", "%%")  # psycopg reads `%` in literals too
    quoted: list[str] = []
    out = _QUOTED.sub(lambda m: _hide(m, quoted), sql)
    out = _IS_PARAM.sub(_is_param, out)
    out = _JSON_EACH.sub(_json_each, out)
    out = _JSON_LENGTH.sub(r"json_array_length(\1::json)", out)
    out = _IFNULL.sub("COALESCE(", out)
    out = _scalar_min_max(out)
    out = out.replace("?", "%s")
    return _HIDDEN.sub(lambda m: quoted[int(m.group(1))], out)


def _hide(match: re.Match[str], quoted: list[str]) -> str:
    """A literal or quoted name, out of the rewrites' way until the end."""
    quoted.append(match.group(0))
    return f"\x00{len(quoted) - 1}\x00"


def _is_param(match: re.Match[str]) -> str:
    return "IS DISTINCT FROM ?" if match.group(1) else "IS NOT DISTINCT FROM ?"


def _json_each(match: re.Match[str]) -> str:
    alias = match.group(2) or "json_each"
    # WITH ORDINALITY: `key`, the element's position, as json_each's (1-based, not 0: only
    # its order is read)
    return (
        f"json_array_elements_text({match.group(1)}::json) WITH ORDINALITY AS {alias}(value, key)"
    )


def _scalar_min_max(sql: str) -> str:
    """MIN/MAX of two or more arguments, SQLite's scalar functions, as LEAST/GREATEST (the
    one-argument aggregates stay). The last call first, so a nested one is renamed in place."""
    for match in reversed(list(_MIN_MAX.finditer(sql))):
        if _has_second_argument(sql, match.end()):
            name = "GREATEST(" if match.group(1).upper() == "MAX" else "LEAST("
            sql = sql[: match.start()] + name + sql[match.end() :]
    return sql


def _has_second_argument(sql: str, start: int) -> bool:
    """Is there a comma at the top level of the argument list that opens before `start`?"""
    depth = 1
    for char in sql[start:]:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return False
        elif char == "," and depth == 1:
            return True
    return False
