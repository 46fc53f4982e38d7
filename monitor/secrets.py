"""The one way to hide secrets, wherever text leaves the process.

Secrets are the values substituted for `${VAR}` in the config (bot tokens, SMTP passwords, feed
API keys). They can come back in many shapes: as written, percent-encoded in a URL (`%40` or
`%40` lower-cased), with `+` for spaces, JSON- or repr-escaped in a log line, or lower-cased by a
resolver inside a host name ("cannot resolve host feedkey-zzz999.invalid"). So every form is
matched without regard to case, in one regular expression, longest first so a secret that holds
another is hidden whole.

Every path out uses `mask`: log lines, CLI output (`MaskedStream`), alert bodies, metric labels
and the error strings stored in the database. The process remembers every secret of every config
it loaded (`remember`), so a message built far from the config is masked all the same. Log lines
also pass `mask_credentials`, which hides what only looks like a credential (a URL's password, a
bot token), since libraries log URLs the config never named.

Why one home: masking used to be copied into the logs, the CLI, the config loader and the
channels, and the copies drifted ("***" here, "****" there; one knew percent-encoding, another
did not). A secret leaks through the weakest copy, so there is one pattern, one `MASK` and one
list of known secrets; everything else calls these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MaskedStream", "Secrets", "mask", "mask_credentials", "remember"]

MASK = "***"
MIN_LENGTH = 3  # shorter values (a port, "en") would mask ordinary text
# credentials no config named: the password in `scheme://user:pass@host`, Telegram-style tokens
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s/'\"]+(@)")
_BOT_TOKEN = re.compile(r"\b(\d{6,}):[A-Za-z0-9_-]{30,}")


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


def known() -> Secrets:
    """The secrets this process masks now (for `restore`: a test suite runs many configs in
    one process, and one test's secret must not mask another test's ordinary words)."""
    return _known


def restore(secrets: Secrets) -> None:
    """Mask exactly `secrets` from now on, as `known()` returned them earlier."""
    global _known
    _known = secrets


def mask(text: str, also: Iterable[str] = ()) -> str:
    """`text` with every secret this process knows masked, and the values in `also` (a
    channel's own tokens, say, that no config substitution named)."""
    if also:
        text = Secrets(also).mask(text)
    return _known.mask(text)


def mask_credentials(text: str) -> str:
    """`mask`, then what looks like a credential though no config named it: the password in a
    URL's `user:pass@` and bot tokens (`123456:ABC...`)."""
    text = _known.mask(text)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<2>", text)
    return _BOT_TOKEN.sub(rf"\g<1>:{MASK}", text)


class MaskedStream:
    """A text stream that masks every known secret in what is written to it, so no command's
    output (tables, summaries, errors) can show one, whatever built the text."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: Any) -> Any:
        return self._stream.write(mask(text) if isinstance(text, str) else text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
