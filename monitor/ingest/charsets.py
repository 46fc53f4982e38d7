"""Charset labels: what a server or a document declares, against what the bytes are.

Shared by the feed parsers (parse, parse_fast) and the page reader (extract), which meet the same
lies: servers label UTF-8 feeds and pages ISO-8859-1, and an XML declaration can disagree with
the HTTP header.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["SINGLE_BYTE", "codec_name", "encoding_agrees"]

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
    declared = _XML_ENCODING.match(body.removeprefix(codecs.BOM_UTF8)[:200])
    name = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    try:
        return codecs.lookup(name).name == codecs.lookup(charset.strip()).name
    except LookupError:
        return False
