"""What an alert says: one match, or a digest of many, in plain text, Markdown and HTML.

Pure: the same alert always renders the same way, so a replayed outbox sends the same words.
Every format says the same things. Feed text is cleaned and escaped by `escape`:

- `text`: clean plain text for e-mail and SMS. Matched terms are not marked (guillemets would clash
  with Italian quotations); the "Matched:" line names them.
- `markdown`: matched terms in `**bold**`; the only link is the article URL.
- `html`: `<b>` for matched terms, `<a href>` only for the article URL.

Without a safe article URL (see `escape.safe_url`) every format says "(no link)", so a reader
does not look for one.

One message per article and channel: an alert several rules matched names each of them, with
its terms, on a line of its own ("Rule: a · Matched: x, y"), and its title starts with all of
their names ("[a, b] headline"); a digest line names each rule before its terms.

Size: a headline is cut at HEADLINE_CHARS on a word, marked "…", before it is escaped (so never
inside an escape), and the excerpt at `excerpt_chars`; `delivery.channels.fit` then cuts each
body to what its channel's service accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor.alerts.escape import (
    clean,
    escape_html,
    escape_markdown,
    html_marked,
    markdown_link_target,
    markdown_marked,
    safe_url,
    trim,
)
from monitor.alerts.excerpt import excerpt, find_terms
from monitor.alerts.timing import aware
from monitor.models import Article, Match, Message, Rule

TITLE_CHARS = 150
HEADLINE_CHARS = 300  # no real headline is longer; a feed's 2 MB one must not fill every alert
NAME_CHARS = 80  # each outlet named in "also reported by"
DIGEST_CAP = 50
FOLLOW_UP = "New development in a story you follow"
NO_LINK = "(no link)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_time(dt: datetime | None, timezone: str) -> str:
    """'3 Feb 2026 14:05 CET': English month names whatever the locale, zone abbreviation last."""
    if dt is None:
        return "time unknown"
    local = aware(dt).astimezone(ZoneInfo(timezone))
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local:%H:%M} {local.tzname()}"


def _when(article: Article) -> datetime | None:
    return article.published or article.first_seen


def _all_terms(matches: Sequence[Match]) -> tuple[str, ...]:
    """Every rule's terms, each once, in the order the rules matched."""
    return tuple(dict.fromkeys(t for m in matches for t in m.terms))


def _rules_and_terms(matches: Sequence[Match]) -> list[tuple[str, str]]:
    """(rule name, its terms) of each match, cleaned for every format."""
    return [(clean(m.rule), ", ".join(clean(t) for t in m.terms)) for m in matches]


def _names(names: Sequence[str], cap: int = 10) -> str:
    cleaned = [trim(n, NAME_CHARS) for n in (clean(x) for x in names) if n]
    more = len(cleaned) - cap
    return ", ".join(cleaned[:cap]) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class _Item:
    """The cleaned, reader-facing parts of one matched article, shared by every format."""

    headline: str
    spans: list[tuple[int, int]]  # matched terms in the headline
    outlet: str
    when: str
    url: str | None
    terms: str

    @classmethod
    def of(
        cls, article: Article, matches: Sequence[Match], source_title: str, timezone: str
    ) -> _Item:
        """`terms`: the terms that matched; with several rules, each rule's ("a: x; b: y")."""
        headline = trim(clean(article.title), HEADLINE_CHARS) or "(no title)"
        named = _rules_and_terms(matches)
        terms = named[0][1] if len(named) == 1 else "; ".join(f"{r}: {t}" for r, t in named)
        return cls(
            headline=headline,
            spans=find_terms(headline, _all_terms(matches)),
            outlet=clean(source_title) or clean(article.source),
            when=format_time(_when(article), timezone),
            url=safe_url(article.url),
            terms=terms,
        )

    def no_link(self) -> str:
        """Said after the outlet and time when there is no link to click: a reader looks for one."""
        return "" if self.url else f" · {NO_LINK}"

    def md_head(self) -> str:
        head = markdown_marked(self.headline, self.spans)
        return f"[{head}]({markdown_link_target(self.url)})" if self.url else head

    def html_head(self) -> str:
        head = html_marked(self.headline, self.spans)
        return f'<a href="{escape_html(self.url)}">{head}</a>' if self.url else head


def render_alert(
    article: Article,
    match: Match,
    *,
    source_title: str,
    rule: Rule | None = None,
    timezone: str,
    also_reported_by: Sequence[str] = (),
    excerpt_chars: int = 280,
    follow_up: str | bool = False,
    also_matched: Sequence[Match] = (),
) -> Message:
    """One alert in plain text, Markdown and HTML, all saying the same things. A follow-up
    of a story starts with one line saying what is new (`follow_up`). `also_matched`: the
    matches of the other rules this one message speaks for (`match`'s rule is `rule`)."""
    md, h = escape_markdown, escape_html
    match = match if rule is None else Match(rule.name, match.terms)
    matches = [match, *(m for m in also_matched if m.rule != match.rule)]
    it = _Item.of(article, matches, source_title, timezone)
    body = clean(article.text) or clean(article.summary)
    snippet, spans = excerpt(body, _all_terms(matches), chars=excerpt_chars)
    others = _names(also_reported_by)
    named = _rules_and_terms(matches)
    names = ", ".join(r for r, _ in named)
    news = FOLLOW_UP + (f" ({clean(follow_up)})" if isinstance(follow_up, str) else "")

    text = [news, ""] if follow_up else []
    text += [it.headline, f"{it.outlet} · {it.when}", it.url or NO_LINK]
    text += ["", snippet] if snippet else []
    text += [""] + [f"Rule: {r} · Matched: {t}" for r, t in named]
    text += [f"Also reported by: {others}"] if others else []

    mds = [f"_{md(news)}_", ""] if follow_up else []
    mds += [it.md_head(), "", f"{md(it.outlet)} · {md(it.when)}{md(it.no_link())}", ""]
    mds += [markdown_marked(snippet, spans), ""] if snippet else []
    mds += ["  \n".join(f"Rule: {md(r)} · Matched: {md(t)}" for r, t in named)]
    mds += ["", f"Also reported by: {md(others)}"] if others else []

    hl = [f"<p><i>{h(news)}</i></p>"] if follow_up else []
    hl += [f"<p><b>{it.html_head()}</b><br>{h(it.outlet)} · {h(it.when)}{h(it.no_link())}</p>"]
    hl += [f"<p>{html_marked(snippet, spans)}</p>"] if snippet else []
    hl += ["<p>" + "<br>".join(f"Rule: {h(r)} · Matched: {h(t)}" for r, t in named) + "</p>"]
    hl += [f"<p>Also reported by: {h(others)}</p>"] if others else []

    return Message(
        title=trim(f"[{names}] {it.headline}", TITLE_CHARS),
        text="\n".join(text),
        markdown="\n".join(mds),
        html="\n".join(hl),
    )


def render_digest(
    items: Sequence[tuple[Article, Match | Sequence[Match], str]],
    *,
    rule: Rule,
    timezone: str,
    now: datetime,
) -> Message:
    """One summary message for many matches, newest first, capped at DIGEST_CAP items. An
    item is (article, its match or the matches of every rule it speaks for, outlet).

    Newest first so that, when the cap cuts the list, what is left out is the oldest news.
    """
    md, h = escape_markdown, escape_html
    oldest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(items, key=lambda i: aware(_when(i[0]) or oldest), reverse=True)
    more = max(0, len(ordered) - DIGEST_CAP)
    rule_name = clean(rule.name)
    count = f"{len(items)} new article" + ("" if len(items) == 1 else "s")
    heading = f"Digest for {rule_name}: {count} ({format_time(now, timezone)})"

    text, mds = [heading, ""], [f"**{md(heading)}**", ""]
    hl = [f"<p><b>{h(heading)}</b></p>", "<ul>"]
    for article, matched, source_title in ordered[:DIGEST_CAP]:
        matches = [matched] if isinstance(matched, Match) else list(matched)
        it = _Item.of(article, matches, source_title, timezone)
        line = f"{it.outlet} · {it.when} · {it.terms}"
        text.append(f"• {it.headline}\n  {line}\n  {it.url or NO_LINK}")
        mds.append(f"- {it.md_head()} — {md(line + it.no_link())}")
        hl.append(f"<li>{it.html_head()} — {h(line + it.no_link())}</li>")
    hl.append("</ul>")
    if more:
        tail = f"… and {more} more"
        text.append(tail)
        mds.append(md(tail))
        hl.append(f"<p>{h(tail)}</p>")
    return Message(
        title=trim(f"[{rule_name}] Digest: {count}", TITLE_CHARS),
        text="\n".join(text),
        markdown="\n".join(mds),
        html="\n".join(hl),
    )
