"""How a feed item is known from poll to poll: the GUID rule, in one place.

Several readers must agree on it, or an item is skipped, matched or keyed differently depending
on the path it took: the lxml fast path and feedparser (parse_fast must give feedparser's
entries), the pre-scan that skips unchanged items (parse.scan_items, whose keys
normalize.to_articles skips by), and normalize (which turns an entry into an article URL).

- An item's link is its own link, else its GUID when the GUID is a permalink: an RSS `<guid>`
  unless `isPermaLink` says otherwise, an Atom `<id>` always (feedparser 6 reads them so; on its
  path feedparser applies this itself).
- An item's key is its GUID, else its link.
- An article's URL is the item's link when that is a web URL, else its GUID when that is one,
  else a key that is not a link (`no_link_key`).
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from monitor.models import Article
from monitor.text import hash_fold

__all__ = ["has_link", "is_permalink", "item_key", "item_link", "no_link_key"]

# Keys of items with no http(s) link: `guid:<source>/<GUID>`, else `title:<source>/<hash>`. Not
# links (alerts.safe_url refuses them), stable from poll to poll, and per source, since a bare
# GUID such as "42" is only unique within its feed. Percent-encoded: a hostile GUID ("<script>",
# spaces) shows as inert text wherever a key is printed.
_NO_LINK = ("guid:", "title:")
_KEY_SAFE = "/:@!$&'()*+,;="


def is_permalink(attribute: str | None) -> bool:
    """An RSS `<guid>`'s `isPermaLink` attribute read as feedparser reads it: absent is true."""
    return (attribute if attribute is not None else "true") == "true"


def item_link(link: str | None, guid: str | None, *, guid_is_permalink: bool) -> str | None:
    """The item's link: its own, else its GUID when that is a permalink; None when neither."""
    if link:
        return link
    return guid if guid and guid_is_permalink else None


def item_key(guid: str | None, link: str | None) -> str | None:
    """The key an item is skipped and recognised by from poll to poll: its GUID, else its link."""
    return guid or link


def no_link_key(source: str, guid: str | None, title: str) -> str | None:
    """The `url` of an article whose item has no web link; None when it has no GUID or title.

    The title's hash uses `text.hash_fold`, so keys already stored stay the same."""
    where = quote(source, safe="")
    if guid and guid.strip():
        return f"guid:{where}/{quote(guid.strip(), safe=_KEY_SAFE)}"
    if title:
        digest = hashlib.blake2b((hash_fold(title) or title).encode(), digest_size=16).hexdigest()
        return f"title:{where}/{digest}"
    return None


def has_link(article: Article) -> bool:
    """False for an article keyed by its GUID or title because its feed gave no web link."""
    return not article.url.startswith(_NO_LINK)
