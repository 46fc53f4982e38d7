"""The one way to hide secrets, wherever text leaves the process.

Secrets are the values substituted for `${VAR}` in the config (bot tokens, SMTP passwords, feed
API keys). They can come back in many shapes: as written, percent-encoded in a URL (`%40` or
`%40` lower-cased), with `+` for spaces, JSON- or repr-escaped in a log line, or lower-cased by a
resolver inside a host name ("cannot resolve host feedkey-zzz999.invalid"). So every form is
matched without regard to case, in one regular expression, longest first so a secret that holds
another is hidden whole.

Every path out uses `mask`: log lines, CLI output, alert bodies, metric labels and the error
strings stored in the database. The process remembers every secret of every config it loaded
(`remember`), so a message built far from the config is masked all the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "Secrets", "mask", "remember"]

MASK = "***"
MIN_LENGTH = 3  # shorter values (a port, "en") would mask ordinary text


def _forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


class Secrets:
    """A set of secret values and the pattern that finds any of their forms."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH)
        forms = {f for v in self.values for f in _forms(v) if len(f) >= MIN_LENGTH}
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE) if ordered else None
        )

    def mask(self, text: str) -> str:
        """`text` with every form of every secret replaced by MASK."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def __or__(self, other: Iterable[str]) -> Secrets:
        return Secrets(self.values | frozenset(other))


_known = Secrets()


def remember(values: Iterable[str]) -> None:
    """Add secrets to the ones this process masks everywhere (a reload may bring new ones)."""
    global _known
    new = frozenset(values) - _known.values
    if new:
        _known = _known | new


def mask(text: str) -> str:
    """`text` with every secret this process knows masked."""
    return _known.mask(text)
