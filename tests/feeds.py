"""Build small but real RSS 2.0 / Atom documents for tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    description: str = ""
    link: str | None = None
    published: datetime | None = None


def rss(items: list[Item], *, title: str = "Test feed", language: str = "it") -> bytes:
    base = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://news.example.org/</link>",
        f"<language>{language}</language><description>test</description>",
    ]
    for n, item in enumerate(items):
        when = item.published or base + timedelta(minutes=n)
        link = item.link or f"https://news.example.org/{item.guid}.html"
        parts.append(
            "<item>"
            f"<title>{escape(item.title)}</title>"
            f"<link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
            f"<description>{escape(item.description)}</description>"
            f"<pubDate>{format_datetime(when)}</pubDate>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()
