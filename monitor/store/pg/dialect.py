"""SQLite's SQL as PostgreSQL reads it: the store's statements are written once.

The store's parts (sources, articles, polls, stories, outbox, mutes) run the same statements on
both backends. They are written in the SQL the two share (upserts with `ON CONFLICT`,
`RETURNING`, `COALESCE`); what remains SQLite's own is rewritten here, once per statement text
(cached): `?` placeholders, `IS [NOT] ?`, the two-argument MIN/MAX, JSON arrays read with
`json_each`. A pure function of the text, tested on its own.
"""

from __future__ import annotations

import re
from functools import lru_cache

_JSON_EACH = re.compile(r"\bjson_each\(([\w.]+)\)(?:\s+(?!WHERE\b|ON\b)(\w+))?", re.IGNORECASE)
_JSON_LENGTH = re.compile(r"\bjson_array_length\(([\w.]+)\)", re.IGNORECASE)
_SCALAR = re.compile(r"\b(MAX|MIN)\(\s*([\w.]+)\s*,", re.IGNORECASE)
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?", re.IGNORECASE)


@lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """The statement `sql` (SQLite's dialect, `?` placeholders) for psycopg and PostgreSQL."""
    out = sql.replace("%", "%%")
    out = _IS_PARAM.sub(_is_param, out)
    out = _JSON_EACH.sub(_json_each, out)
    out = _JSON_LENGTH.sub(r"json_array_length(\1::json)", out)
    out = _SCALAR.sub(_scalar, out)
    return out.replace("?", "%s")


def _is_param(match: re.Match[str]) -> str:
    return "IS DISTINCT FROM ?" if match.group(1) else "IS NOT DISTINCT FROM ?"


def _json_each(match: re.Match[str]) -> str:
    alias = match.group(2) or "json_each"
    # WITH ORDINALITY: `key`, the element's position, as json_each's (1-based, not 0: only
    # its order is read)
    return (
        f"json_array_elements_text({match.group(1)}::json) WITH ORDINALITY AS {alias}(value, key)"
    )


def _scalar(match: re.Match[str]) -> str:
    name = "GREATEST" if match.group(1).upper() == "MAX" else "LEAST"
    return f"{name}({match.group(2)},"
