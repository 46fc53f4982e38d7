"""Ready-to-paste `[[sources]]` blocks: a name a source can have, and the TOML that declares it.

Shared by `sources import` and `discover`, which both hand the user sources to add. Text, not a
TOML library: the blocks are appended to the user's file as they are printed, and a library
would rewrite the file (its comments, its order) to add them.

Names follow the config's own rule (`config.values.valid_name`): a title is slugged in its own
script when the rule takes that (`città`), else folded to ASCII (`citta`); a title with nothing
left (`Новости` under an ASCII-only rule) gives way to the feed's host name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from monitor.text import fold

__all__ = ["NameMaker", "block", "comment"]

MAX_NAME = 40
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # TOML allows none of these in a comment


def _valid(name: str) -> bool:
    from monitor.config.values import valid_name

    try:
        valid_name(name)
    except ValueError:
        return False
    return True


def _slug(text: str, pattern: str) -> str:
    slug = re.sub(pattern, "-", text).strip("-_.")
    if len(slug) > MAX_NAME:
        cut = slug[:MAX_NAME]
        slug = (cut[: cut.rfind("-")] if cut.rfind("-") > MAX_NAME // 2 else cut).strip("-_.")
    return slug


def _host_words(url: str) -> str:
    """`https://www.what-if.xkcd.com/feed` -> "what-if xkcd": the host without www and TLD."""
    try:
        host = (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""
    labels = host.split(".")
    return " ".join(labels[:-1] if len(labels) > 1 else labels)


class NameMaker:
    """Source names for new feeds: valid, unique among themselves and the `taken` ones (the
    config's, compared case-blind), the same title giving `x`, `x-2`, `x-3`."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = {name.casefold() for name in taken}

    def make(self, title: str, url: str) -> str:
        base = self._base(title) or self._base(_host_words(url)) or "feed"
        name, n = base, 1
        while name.casefold() in self.taken:
            n += 1
            name = f"{base}-{n}"
        self.taken.add(name.casefold())
        return name

    @staticmethod
    def _base(text: str) -> str:
        native = _slug(text.casefold(), r"[\W_]+")
        if native and _valid(native):
            return native
        ascii_only = _slug(fold(text), r"[^a-z0-9]+")
        return ascii_only if ascii_only and _valid(ascii_only) else ""


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, once DEL (which JSON leaves) is gone."""
    return json.dumps(value.replace("\x7f", ""), ensure_ascii=False)


def comment(text: str) -> str:
    """A one-line TOML comment of any text (line breaks and control characters dropped)."""
    return "# " + " ".join(_CONTROL.sub(" ", text).split())


def block(name: str, url: str, *, note: str = "", language: str | None = None) -> str:
    """One `[[sources]]` block, with `note` as a comment above it."""
    lines = [comment(note)] if note else []
    lines += ["[[sources]]", f"name = {toml_string(name)}", f"url = {toml_string(url)}"]
    if language:
        lines.append(f"language = {toml_string(language)}")
    return "\n".join(lines) + "\n"
