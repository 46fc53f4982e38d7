"""Untrusted text made safe to show: cleaning, escaping per format, safe links, trimming.

Every string that came from a feed (headline, excerpt, outlet, "also reported by", a source's
error) is hostile. Each is first cleaned once (`clean`: control and bidi characters dropped,
whitespace collapsed, tag-like `<...>` and Markdown link syntax reduced to their text, mass
mentions such as `@everyone` or Slack's `<!channel>` broken with a zero-width space) and then
escaped for each format:

- `text`: the cleaned text as it is, for e-mail and SMS.
- `markdown` (`escape_markdown`): Markdown punctuation backslash-escaped, `<` written as `&lt;`
  and entity-like `&name;` as `&amp;name;` (CommonMark and Python-Markdown, which Apprise uses to
  turn Markdown into HTML, pass raw HTML and decode entities); `scheme://` in article text is
  broken so chat apps do not autolink it.
- `html` (`escape_html`): `html.escape` on everything untrusted.

A link is made only from `safe_url`: http(s) with a host, anything else (`javascript:`,
`&#106;avascript:`, `data:`, the `guid:` key of an item whose feed gave no link) is None.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit, urlunsplit

ZWSP = "\u200b"  # breaks a mention or an autolink without showing anything

_DROP = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
_MD_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*\)")
# No word boundary after the name: "@everyone" followed by letters (as left behind when a Markdown
# link is reduced to its text) is still a mass mention on some services.
_MENTION = re.compile(r"@(?=(?:everyone|here|channel|room|all))|<(?=[!@#])", re.IGNORECASE)


def clean(text: str | None) -> str:
    """One line of untrusted text made inert before any format-specific escaping."""
    text = _MD_LINK.sub(r"\1", _TAG.sub(" ", _DROP.sub(" ", text or "")))
    return " ".join(_MENTION.sub(lambda m: m.group(0) + ZWSP, text).split())


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!>|~])")
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")
_SCHEME = re.compile(r"(?<=[A-Za-z]):(?=//)")


def escape_markdown(text: str) -> str:
    """Escape cleaned text for Markdown so it renders literally and never forms a link."""
    text = _MD_ENTITY.sub("&amp;", _SCHEME.sub(":" + ZWSP, text))
    return _MD_SPECIAL.sub(r"\\\1", text).replace("<", "&lt;")


def markdown_link_target(url: str) -> str:
    """A safe URL as a Markdown link target: Markdown decodes entity references there, so
    `&lt;` in the URL is written `&amp;lt;` to stay literal."""
    return _MD_ENTITY.sub("&amp;", url)


def escape_html(text: str) -> str:
    return html.escape(text, quote=True)


_URL_MENTION = re.compile(r"@(?=(?:everyone|here|channel|room|all))", re.IGNORECASE)
_NETLOC = re.compile(r"[A-Za-z0-9.\-_~:@\[\]%!$&'*+,;=]+")


def safe_url(url: str | None) -> str | None:
    """The URL if it is http(s) with a host, with unsafe characters percent-encoded; else None."""
    url = (url or "").strip()
    if _DROP.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        host, netloc = parts.hostname, parts.netloc
        if host and not netloc.isascii():  # internationalised domain -> punycode
            netloc = netloc.lower().replace(host, host.encode("idna").decode("ascii"))
    except (ValueError, UnicodeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not _NETLOC.fullmatch(netloc):
        return None
    rest = (quote(p, safe="/?#[]@!$&'*+,;=%:~-._") for p in parts[2:])
    # a URL printed as text ("…/@everyone") must not ping either; %40 means the same to servers
    rest = (_URL_MENTION.sub("%40", p) for p in rest)
    return urlunsplit((parts.scheme.lower(), netloc, *rest))


def trim(text: str, limit: int) -> str:
    """Cut to `limit` characters on a word boundary when one is near, marking the cut with '…'.
    Done before escaping, so a cut never falls inside an escape."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit - 30:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """Split text into (piece, is_match) runs."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for s, e in spans:
        if s < pos:
            continue
        if s > pos:
            out.append((text[pos:s], False))
        out.append((text[s:e], True))
        pos = e
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def markdown_marked(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Escaped Markdown with the matched `spans` in **bold**."""
    return "".join(
        f"**{escape_markdown(p)}**" if hit else escape_markdown(p)
        for p, hit in _segments(text, spans)
    )


def html_marked(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Escaped HTML with the matched `spans` in <b>."""
    return "".join(
        f"<b>{escape_html(p)}</b>" if hit else escape_html(p) for p, hit in _segments(text, spans)
    )
