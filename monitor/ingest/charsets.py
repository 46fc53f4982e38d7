"""Charset labels: what a server or a document declares, against what the bytes are.

Shared by the feed parsers (parse, parse_fast) and the page reader (extract), which meet the same
lies: servers label UTF-8 feeds and pages ISO-8859-1, and an XML declaration can disagree with
the HTTP header.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["SINGLE_BYTE", "blank", "codec_name", "encoding_agrees", "is_utf8"]

# Single-byte charsets that servers often declare for bodies that are really UTF-8.
SINGLE_BYTE = frozenset(
    {"iso-8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "windows-1252"}
)

_XML_ENCODING = re.compile(rb"^<\?xml[^>]*encoding=['\"]([^'\"]+)['\"]")


def codec_name(label: str | None) -> str | None:
    """Python's name for a charset label ("ISO-8859-1 " -> "iso8859-1"); None when unknown."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip()).name
    except LookupError:
        return None


def encoding_agrees(body: bytes, charset: str | None) -> bool:
    """lxml follows the XML declaration; feedparser prefers the HTTP charset: they must agree
    before lxml's reading of a body can stand for feedparser's."""
    if not charset:
        return True
    declared = _XML_ENCODING.match(body[:203].removeprefix(codecs.BOM_UTF8)[:200])
    name = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    try:
        return codecs.lookup(name).name == codecs.lookup(charset.strip()).name
    except LookupError:
        return False


# Helpers that look at a whole body without copying it: `body.strip()` copies any body that ends
# in a newline (most do), `body.removeprefix(BOM)` any that starts with a BOM, and a decode for
# validation makes a str of up to 4 bytes a character; each was a transient copy per poll.
_BLANK = re.compile(rb"\s*")  # bytes.strip()'s whitespace: ASCII space, \t \n \r \v \f
_BLANK_AFTER_BOM = re.compile(rb"(?:\xef\xbb\xbf)?\s*")
_STEP = 1 << 20


def blank(body: bytes, *, bom: bool = False) -> bool:
    """`not body.strip()`; with `bom`, `not body.removeprefix(UTF-8 BOM).strip()`."""
    return (_BLANK_AFTER_BOM if bom else _BLANK).fullmatch(body) is not None


def is_utf8(body: bytes) -> bool:
    """Does `body.decode("utf-8")` succeed? Decoded 1 MB at a time, the text thrown away."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for at in range(0, len(view), _STEP):
            decoder.decode(view[at : at + _STEP])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
