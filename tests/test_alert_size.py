"""Oversized alerts: every channel gets a body its service accepts, cut cleanly, link kept.

Real parts: a 2 MB headline served by the loopback server, polled by the real CLI (`once`) into a
real SQLite file and delivered through Apprise `json://` to a real webhook receiver, in each body
format; a digest far over Apprise's `json://` limit sent the same way; and the pure cut of each
format, checked for well-formedness with real Markdown and HTML parsers.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import markdown as markdown_lib
import pytest
from apprise import Apprise, NotifyFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts import render as alerts
from monitor.delivery import channels as notify
from monitor.models import Article, Match, Rule
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
LINK = "https://news.example.org/big.html"
RULE = Rule(name="talks", query="ceasefire", channels=("hook",))
WHEN = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)
# 2 MB of headline, with Markdown and HTML specials so every escape is exercised near the cut
HEADLINE = "Ceasefire talks resume " + "in Geneva & <Rome> (again), a_b*c [d] " * 55_000


# ---------------------------------------------------------------- well-formedness checks


class _Tags(HTMLParser):
    """Every start tag closed in order; nothing but whole entities."""

    VOID = frozenset({"br", "hr", "img", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [v or "" for k, v in attrs if k == "href"]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"</{tag}> closes nothing open")


def _visible(rendered: str) -> str:
    """What a reader sees of rendered HTML: the text, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^<>]+>", " ", rendered)).split())


def _starts(cut: str, full: str) -> None:
    """A cut body shows the start of the full one, then '…'."""
    assert cut.endswith("…"), cut[-200:]
    assert full.startswith(cut[:-1].rstrip()), (cut[-200:], full[: len(cut) + 50])


def html_ok(body: str, full: str | None = None) -> list[str]:
    """The hrefs of a well-formed HTML body (fails the test otherwise); with `full`, what it
    shows is the start of what `full` shows."""
    parser = _Tags()
    parser.feed(body)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack, body[-300:])
    assert "<" not in re.sub(r"<[^<>]+>", "", body), "a cut tag"
    assert not re.search(r"&(?!#?\w+;)", body), "a cut entity"
    if full is not None and full != body:
        _starts(_visible(body), _visible(full))
    return parser.links


def markdown_ok(body: str, full: str | None = None) -> list[str]:
    """The link targets of a Markdown body as Python-Markdown renders it; with `full`, what it
    shows is the start of what `full` shows (so no escape, entity, emphasis or link was cut)."""
    rendered = markdown_lib.markdown(body)
    if full is not None:
        if full != body:
            _starts(_visible(rendered), _visible(markdown_lib.markdown(full)))
    else:
        text = _visible(rendered)
        assert "**" not in text and "](" not in text and "\\" not in text, text[-300:]
    return re.findall(r'<a href="([^"]*)"', rendered)


def article(title: str = HEADLINE, url: str = LINK, text: str = "") -> Article:
    return Article(source="wire", guid=url, url=url, title=title, text=text, published=WHEN)


def alert(a: Article | None = None) -> alerts.Message:
    return alerts.render_alert(
        a or article(), Match(RULE.name, ("ceasefire",)), source_title="Wire", rule=RULE,
        timezone="UTC", also_reported_by=["ANSA", "Reuters"],
    )  # fmt: skip


def digest(n: int = 50, path_chars: int = 1_500) -> alerts.Message:
    """50 items whose long links make every body several times Apprise's json:// limit."""
    items = []
    for i in range(n):
        url = f"https://news.example.org/{'p' * path_chars}/{i}.html"
        title = f"Ceasefire report {i}: " + "talks & <guarantees> go on " * 12
        a = Article(source="wire", guid=url, url=url, title=title, text="",
                    published=WHEN + timedelta(minutes=i))  # fmt: skip
        items.append((a, Match(RULE.name, ("ceasefire",)), "Wire"))
    return alerts.render_digest(items, rule=RULE, timezone="UTC", now=WHEN)


# ---------------------------------------------------------------- through the real pipeline


def test_a_2mb_headline_arrives_capped_clean_and_linked_in_every_format(
    tmp_path: Path, server: LoopbackServer, hook: WebhookReceiver
) -> None:
    now = datetime.now(UTC)  # `once` runs on the real clock: an older item is held (max_age)
    feed = rss([Item("big", HEADLINE, "Talks went on all night.", link=LINK, published=now)])
    assert len(feed) > 2_000_000
    server.route("/feed", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "monitor.db"}"\n\n[channels]\n'
        f'text = "{hook.url("/text")}"\n'
        f'md = "{hook.url("/md")}?format=markdown"\n'
        f'html = "{hook.url("/html")}?format=html"\n\n'
        f'[[sources]]\nname = "wire"\nurl = "{server.url("/feed")}"\nallow_private = true\n\n'
        '[[rules]]\nname = "talks"\nquery = "ceasefire"\nalert = "article"\n'
        'channels = ["text", "md", "html"]\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "once"],
        env=ENV, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    posts = {p.path: p.payload for p in hook.wait_for(3, timeout=30)}
    limit = Apprise.instantiate(hook.url()).body_maxlen  # what Apprise says json:// takes
    for payload in posts.values():
        assert len(payload["message"]) <= min(limit, 4_000)
        assert payload["title"].startswith("[talks] Ceasefire talks resume in Geneva")
        assert len(payload["title"]) <= 150 and payload["title"].endswith("…")

    text = posts["/text"]["message"].splitlines()
    assert text[0].startswith("Ceasefire talks resume in Geneva") and text[0].endswith("…")
    assert LINK in text  # the link line survives, whole
    assert "Rule: talks · Matched: ceasefire" in text  # and what follows the headline

    md = posts["/md"]["message"]
    assert markdown_ok(md) == [LINK]
    assert re.search(r"^\[\*\*Ceasefire\*\* talks resume in Geneva .*…\]\(" + re.escape(LINK), md)

    hl = posts["/html"]["message"]
    assert html_ok(hl) == [LINK]
    assert re.search(r'<a href="' + re.escape(LINK) + r'"><b>Ceasefire</b> talks .*…</a>', hl)


def test_a_body_over_the_services_limit_is_cut_to_it_cleanly(hook: WebhookReceiver) -> None:
    message = digest()
    limit = Apprise.instantiate(hook.url()).body_maxlen
    assert min(len(message.text), len(message.markdown), len(message.html)) > 2 * limit
    for fmt in ("text", "markdown", "html"):
        assert notify.send(f"{hook.url('/' + fmt)}?format={fmt}", message, timeout=10).ok
    got = {p.path: p.payload["message"] for p in hook.wait_for(3, timeout=10)}
    first = "https://news.example.org/" + "p" * 1_500 + "/49.html"  # the newest item
    for body in got.values():
        assert limit - 2_000 < len(body) <= limit  # cut near the limit, not far below it
    text = got["/text"]
    _starts(text, message.text)
    assert text.splitlines()[2].startswith("• Ceasefire report 49: talks")
    assert f"  {first}" in text.splitlines()
    assert markdown_ok(got["/markdown"], message.markdown)[0] == first
    assert html_ok(got["/html"], message.html)[0] == first


def test_each_service_gets_at_most_what_apprise_says_it_takes() -> None:
    """Telegram (4,096, the title goes into the body), Discord (2,000), Rocket.Chat (1,000):
    Apprise's own per-service `body_maxlen`, measured after its format conversion."""
    message = digest(n=50, path_chars=40)
    targets = {
        "tgram://123456789:abcdefg_hijklmnop/12345": 4_096,
        "discord://1234/abcd": 2_000,
        "rocket://user:pw@example.org/#news": 1_000,
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#news": 35_000,
    }
    for target, service_limit in targets.items():
        service = Apprise.instantiate(target)
        assert service.body_maxlen == service_limit
        fmt = NotifyFormat.MARKDOWN  # what notify picks for each of them
        title, body = notify.fit_message(service, message, fmt)
        sent = len(service.dialect_convert(body, fmt)) + (
            len(title) + 3 if service.title_maxlen <= 0 else 0
        )
        assert sent <= service_limit, target
        # whole when it fits (Slack), else not cut far below what the service takes
        assert body == message.markdown or len(body) > service_limit // 2, target
        assert markdown_ok(body, message.markdown)[0].endswith("/49.html"), target


# ---------------------------------------------------------------- pure: the cut per format


def test_render_cuts_a_huge_headline_in_every_format_and_keeps_the_link() -> None:
    m = alert()
    assert max(len(m.text), len(m.markdown), len(m.html)) < 4_000
    head = m.text.splitlines()[0]
    assert head.startswith("Ceasefire talks resume in Geneva") and head.endswith("…")
    assert len(head) <= alerts.HEADLINE_CHARS
    assert head[:-1].split()[-1] in HEADLINE.split()  # cut at a word boundary
    assert LINK in m.text.splitlines()
    assert markdown_ok(m.markdown) == [LINK]
    assert html_ok(m.html) == [LINK]


def test_fit_text_cuts_at_a_word_and_marks_it() -> None:
    body = alert(article(title="Ceasefire talks " + "resume again " * 30)).text
    cut = notify.fit(body, "text", 120)
    assert len(cut) <= 120 and cut.endswith("…")
    kept = cut[:-1].rstrip()
    assert body.startswith(kept) and body[len(kept)] in " \n"
    assert notify.fit(body, "text", len(body)) == body  # what fits is left alone


@pytest.mark.parametrize("limit", [40, 80, 150, 300, 700, 1_500, 3_000])
def test_fit_markdown_never_cuts_an_escape_and_keeps_the_link(limit: int) -> None:
    body = alert().markdown
    cut = notify.fit(body, "markdown", limit)
    assert len(cut) <= limit and "…" in cut
    links = markdown_ok(cut, body)
    if limit >= len(LINK) + 40:
        assert links == [LINK]


@pytest.mark.parametrize("limit", [40, 80, 150, 300, 700, 1_500, 3_000])
def test_fit_html_never_cuts_a_tag_or_entity_and_keeps_the_link(limit: int) -> None:
    body = alert().html
    cut = notify.fit(body, "html", limit)
    assert len(cut) <= limit and "…" in cut
    links = html_ok(cut, body)
    if limit >= len(LINK) + 60:
        assert links == [LINK]


@settings(max_examples=120, deadline=None)
@given(
    title=st.text(alphabet="ab <>&*_[]()\\.#`!-|~é", max_size=400),
    limit=st.integers(min_value=10, max_value=900),
)
def test_fit_keeps_every_format_well_formed(title: str, limit: int) -> None:
    m = alert(article(title="ceasefire " + title, text="ceasefire " + title))
    for fmt, check in (("markdown", markdown_ok), ("html", html_ok)):
        cut = notify.fit(getattr(m, fmt), fmt, limit)
        assert len(cut) <= limit
        check(cut, getattr(m, fmt))
    cut = notify.fit(m.text, "text", limit)
    assert len(cut) <= limit
    if cut != m.text:
        _starts(cut, m.text)
