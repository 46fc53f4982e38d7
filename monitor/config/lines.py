"""Line numbers for config problems: tomllib keeps none, so the raw text is scanned.

`Locator` maps (table, index, key) to the line of a `key =` or its table header, skipping
multi-line strings, so every problem can be reported as `PATH:LINE: where: what`.
"""

from __future__ import annotations

import re
from typing import Any


def _open_delimiter(line: str, delim: str | None) -> str | None:
    """The multi-line string delimiter still open at the end of `line` (None if none)."""
    i, n = 0, len(line)
    while i < n:
        if delim is not None:
            if delim == '"""' and line[i] == "\\":
                i += 2
            elif line.startswith(delim, i):
                i += 3
                while i < n and line[i] == delim[0]:
                    i += 1
                delim = None
            else:
                i += 1
            continue
        c = line[i]
        if c == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            delim, i = line[i : i + 3], i + 3
        elif c in "\"'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if c == '"' and line[j] == "\\" else 1
            i = j + 1
        else:
            i += 1
    return delim


class Locator:
    """Maps (table, index, key) to a line: tables by header, keys by `key =` lines."""

    _PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\")"
    _HEADER = re.compile(rf"\s*(\[\[?)\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')\s*[=.]")

    def __init__(self, text: str) -> None:
        self.headers: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int], dict[str, int]] = {}
        counts: dict[str, int] = {}
        table: tuple[str, int] | None = ("", 0)
        delim: str | None = None
        for lineno, line in enumerate(text.splitlines(), 1):
            if delim is None:
                if line.lstrip().startswith("["):
                    m = self._HEADER.match(line)
                    table = None
                    if m:
                        # `[channels.chat]` is the table "channels.chat"
                        name = ".".join(p.strip().strip('"') for p in m.group(2).split("."))
                        index = counts.get(name, 0) if m.group(1) == "[[" else 0
                        counts[name] = index + 1 if m.group(1) == "[[" else 0
                        table = (name, index)
                        self.headers.setdefault(table, lineno)
                elif table and (k := self._KEY.match(line)):
                    self.keys.setdefault(table, {}).setdefault(k.group(1).strip("\"'"), lineno)
            delim = _open_delimiter(line, delim)

    def line(self, loc: tuple[Any, ...]) -> int:
        section = str(loc[0]) if loc else ""
        rest = loc[1:]
        index = rest[0] if rest and isinstance(rest[0], int) else 0
        rest = rest[1:] if rest and isinstance(rest[0], int) else rest
        key = str(rest[0]) if rest else None
        if key is not None and not isinstance(loc[1], int):  # ("channels", "chat", "url")
            sub = (f"{section}.{key}", 0)  # its `[channels.chat]` table, if written so
            inner = self.keys.get(sub, {}).get(str(rest[1])) if len(rest) > 1 else None
            own = self.keys.get((section, index), {}).get(key)  # `chat = ...` on one line
            if found := inner or own or self.headers.get(sub):
                return found
        table = (section, index)
        found = self.keys.get(table, {}).get(key) if key is not None else None
        return found or self.headers.get(table) or self.keys.get(("", 0), {}).get(section) or 1


def where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
