"""Alert logic with no I/O: idempotency keys, rendering, digests, backoff, quiet hours, rate limits.

Everything here is a pure function of its arguments (time and jitter are passed in), so the outbox
can be replayed and the same alert always renders the same way.

Rendering treats every string that came from a feed (headline, excerpt, outlet, "also reported by")
as hostile. Each is first cleaned once (control and bidi characters dropped, whitespace collapsed,
tag-like `<...>` and Markdown link syntax reduced to their text, mass mentions such as `@everyone`
or Slack's `<!channel>` broken with a zero-width space) and then escaped for each format:

- `text`: clean plain text for e-mail and SMS. Matched terms are not marked (guillemets would clash
  with Italian quotations); the "Matched:" line names them.
- `markdown`: matched terms in `**bold**`; Markdown punctuation backslash-escaped, `<` written as
  `&lt;` and entity-like `&name;` as `&amp;name;` (CommonMark and Python-Markdown, which Apprise
  uses to turn Markdown into HTML, pass raw HTML and decode entities); `scheme://` in article
  text is broken so chat apps do not autolink it. The only link is the article URL.
- `html`: `html.escape` on everything untrusted, `<b>` for matched terms, `<a href>` only for the
  article URL.

The article URL is used only when it is http(s) with a host; anything else (`javascript:`,
`&#106;avascript:`, `data:`, the `guid:` key of an item whose feed gave no link) is dropped from
every format, which then says "(no link)" so a reader does not look for one.

Size: a headline is cut at HEADLINE_CHARS on a word, marked "…", before it is escaped (so never
inside an escape), and the excerpt at `excerpt_chars`; `notify.fit` then cuts each body to what
its channel's service accepts.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from monitor.alerts.excerpt import excerpt, find_terms  # noqa: F401 - re-exported
from monitor.models import Alert, Article, Match, Message, Rule
from monitor.stories.developments import StoryContext, development, story_alert

TITLE_CHARS = 150
HEADLINE_CHARS = 300  # no real headline is longer; a feed's 2 MB one must not fill every alert
NAME_CHARS = 80  # each outlet named in "also reported by"
DIGEST_CAP = 50
FOLLOW_UP = "New development in a story you follow"
NO_LINK = "(no link)"
_ZWSP = "\u200b"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- idempotency ------------------------------------------------------------------------------


def alert_key(rule: str, channel: str, subject: str) -> str:
    """Stable outbox key for (rule, channel, subject); JSON framing so no two triples collide."""
    raw = json.dumps([rule, channel, subject], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()


def article_subject(article_id: int) -> str:
    return f"article:{article_id}"


def story_subject(story_id: int, n: int | None = None) -> str:
    """`story:<id>` for the opening alert, `story:<id>:<n>` for the n-th follow-up."""
    return f"story:{story_id}" if n is None else f"story:{story_id}:{n}"


# --- cleaning untrusted text ------------------------------------------------------------------

_DROP = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
_MD_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*\)")
# No word boundary after the name: "@everyone" followed by letters (as left behind when a Markdown
# link is reduced to its text) is still a mass mention on some services.
_MENTION = re.compile(r"@(?=(?:everyone|here|channel|room|all))|<(?=[!@#])", re.IGNORECASE)


def _clean(text: str | None) -> str:
    """One line of untrusted text made inert before any format-specific escaping."""
    text = _MD_LINK.sub(r"\1", _TAG.sub(" ", _DROP.sub(" ", text or "")))
    return " ".join(_MENTION.sub(lambda m: m.group(0) + _ZWSP, text).split())


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!>|~])")
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")
_SCHEME = re.compile(r"(?<=[A-Za-z]):(?=//)")


def _md(text: str) -> str:
    """Escape cleaned text for Markdown so it renders literally and never forms a link."""
    text = _MD_ENTITY.sub("&amp;", _SCHEME.sub(":" + _ZWSP, text))
    return _MD_SPECIAL.sub(r"\\\1", text).replace("<", "&lt;")


def _h(text: str) -> str:
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


def _trim(text: str, limit: int) -> str:
    """Cut to `limit` characters on a word boundary when one is near, marking the cut with '…'."""
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


def _md_marked(text: str, spans: Sequence[tuple[int, int]]) -> str:
    return "".join(f"**{_md(p)}**" if hit else _md(p) for p, hit in _segments(text, spans))


def _html_marked(text: str, spans: Sequence[tuple[int, int]]) -> str:
    return "".join(f"<b>{_h(p)}</b>" if hit else _h(p) for p, hit in _segments(text, spans))


# --- time -------------------------------------------------------------------------------------


def _aware(dt: datetime) -> datetime:
    """Naive datetimes in this project are UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def format_time(dt: datetime | None, timezone: str) -> str:
    """'3 Feb 2026 14:05 CET': English month names whatever the locale, zone abbreviation last."""
    if dt is None:
        return "time unknown"
    local = _aware(dt).astimezone(ZoneInfo(timezone))
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local:%H:%M} {local.tzname()}"


def _when(article: Article) -> datetime | None:
    return article.published or article.first_seen


# --- rendering --------------------------------------------------------------------------------


def _names(names: Sequence[str], cap: int = 10) -> str:
    cleaned = [_trim(n, NAME_CHARS) for n in (_clean(x) for x in names) if n]
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
    def of(cls, article: Article, match: Match, source_title: str, timezone: str) -> _Item:
        headline = _trim(_clean(article.title), HEADLINE_CHARS) or "(no title)"
        return cls(
            headline=headline,
            spans=find_terms(headline, match.terms),
            outlet=_clean(source_title) or _clean(article.source),
            when=format_time(_when(article), timezone),
            url=safe_url(article.url),
            terms=", ".join(_clean(t) for t in match.terms),
        )

    def no_link(self) -> str:
        """Said after the outlet and time when there is no link to click: a reader looks for one."""
        return "" if self.url else f" · {NO_LINK}"

    def md_head(self) -> str:
        head = _md_marked(self.headline, self.spans)
        # Markdown decodes entity references in link targets: keep `&lt;` in a URL literal.
        return f"[{head}]({_MD_ENTITY.sub('&amp;', self.url)})" if self.url else head

    def html_head(self) -> str:
        head = _html_marked(self.headline, self.spans)
        return f'<a href="{_h(self.url)}">{head}</a>' if self.url else head


def render_alert(
    article: Article,
    match: Match,
    *,
    source_title: str,
    rule: Rule,
    timezone: str,
    also_reported_by: Sequence[str] = (),
    excerpt_chars: int = 280,
    follow_up: str | bool = False,
) -> Message:
    """One alert in plain text, Markdown and HTML, all saying the same things. A follow-up
    of a story starts with one line saying what is new (`follow_up`)."""
    it = _Item.of(article, match, source_title, timezone)
    body = _clean(article.text) or _clean(article.summary)
    snippet, spans = excerpt(body, match.terms, chars=excerpt_chars)
    others = _names(also_reported_by)
    rule_name = _clean(rule.name)
    news = FOLLOW_UP + (f" ({_clean(follow_up)})" if isinstance(follow_up, str) else "")

    text = [news, ""] if follow_up else []
    text += [it.headline, f"{it.outlet} · {it.when}", it.url or NO_LINK]
    text += ["", snippet] if snippet else []
    text += ["", f"Rule: {rule_name} · Matched: {it.terms}"]
    text += [f"Also reported by: {others}"] if others else []

    md = [f"_{_md(news)}_", ""] if follow_up else []
    md += [it.md_head(), "", f"{_md(it.outlet)} · {_md(it.when)}{_md(it.no_link())}", ""]
    md += [_md_marked(snippet, spans), ""] if snippet else []
    md += [f"Rule: {_md(rule_name)} · Matched: {_md(it.terms)}"]
    md += ["", f"Also reported by: {_md(others)}"] if others else []

    hl = [f"<p><i>{_h(news)}</i></p>"] if follow_up else []
    hl += [f"<p><b>{it.html_head()}</b><br>{_h(it.outlet)} · {_h(it.when)}{_h(it.no_link())}</p>"]
    hl += [f"<p>{_html_marked(snippet, spans)}</p>"] if snippet else []
    hl += [f"<p>Rule: {_h(rule_name)} · Matched: {_h(it.terms)}</p>"]
    hl += [f"<p>Also reported by: {_h(others)}</p>"] if others else []

    return Message(
        title=_trim(f"[{rule_name}] {it.headline}", TITLE_CHARS),
        text="\n".join(text),
        markdown="\n".join(md),
        html="\n".join(hl),
    )


def render_digest(
    items: Sequence[tuple[Article, Match, str]],
    *,
    rule: Rule,
    timezone: str,
    now: datetime,
) -> Message:
    """One summary message for many matches, newest first, capped at DIGEST_CAP items.

    Newest first so that, when the cap cuts the list, what is left out is the oldest news.
    """
    oldest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(items, key=lambda i: _aware(_when(i[0]) or oldest), reverse=True)
    more = max(0, len(ordered) - DIGEST_CAP)
    rule_name = _clean(rule.name)
    count = f"{len(items)} new article" + ("" if len(items) == 1 else "s")
    heading = f"Digest for {rule_name}: {count} ({format_time(now, timezone)})"

    text, md = [heading, ""], [f"**{_md(heading)}**", ""]
    hl = [f"<p><b>{_h(heading)}</b></p>", "<ul>"]
    for article, match, source_title in ordered[:DIGEST_CAP]:
        it = _Item.of(article, match, source_title, timezone)
        line = f"{it.outlet} · {it.when} · {it.terms}"
        text.append(f"• {it.headline}\n  {line}\n  {it.url or NO_LINK}")
        md.append(f"- {it.md_head()} — {_md(line + it.no_link())}")
        hl.append(f"<li>{it.html_head()} — {_h(line + it.no_link())}</li>")
    hl.append("</ul>")
    if more:
        tail = f"… and {more} more"
        text.append(tail)
        md.append(_md(tail))
        hl.append(f"<p>{_h(tail)}</p>")
    return Message(
        title=_trim(f"[{rule_name}] Digest: {count}", TITLE_CHARS),
        text="\n".join(text),
        markdown="\n".join(md),
        html="\n".join(hl),
    )


# --- delivery timing --------------------------------------------------------------------------


def backoff_delay(
    attempt: int, *, base: float = 30.0, cap: float = 6 * 3600.0, jitter: float
) -> float:
    """Seconds before retry `attempt` (1 = first retry): capped exponential, equal jitter.

    Equal jitter (half fixed, half random) rather than full jitter, so the delay always grows
    with the attempt until the cap while retries of many alerts still spread out.
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    step = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return step / 2 + jitter * step / 2


_HHMM = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*")


def parse_quiet_hours(spec: str) -> tuple[time, time]:
    """'22:00-07:00' -> (22:00, 07:00); ValueError when malformed (config reports it)."""
    m = _HHMM.fullmatch(spec)
    if not m:
        raise ValueError(f"quiet hours must look like 22:00-07:00, got {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h2 == 24 and m2 == 0:
        h2 = 0
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"quiet hours out of range: {spec!r}")
    return time(h1, m1), time(h2, m2)


def _first_instant(day: date, wall: time, tz: ZoneInfo, after: datetime) -> datetime:
    """The first UTC instant after `after` when the local clock on `day` reaches `wall`.

    A wall time skipped by a DST jump resolves to the jump itself; a repeated one to whichever
    occurrence is still ahead.
    """
    naive = datetime.combine(day, wall)
    candidates = sorted(naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    lo, hi = candidates
    if lo.astimezone(tz).replace(tzinfo=None) != naive:  # in a gap: bisect for the jump
        while hi - lo > timedelta(minutes=1):
            mid = lo + (hi - lo) / 2
            lo, hi = (lo, mid) if mid.astimezone(tz).replace(tzinfo=None) >= naive else (mid, hi)
        return hi.replace(second=0, microsecond=0)
    return lo if lo > after else hi


def quiet_until(spec: str | None, now: datetime, timezone: str) -> datetime | None:
    """None if `now` is outside quiet hours `spec` (local to `timezone`), else when they end (UTC).

    A window like 22:00-07:00 spans midnight; equal start and end means no quiet hours.
    """
    if not spec:
        return None
    start, end = parse_quiet_hours(spec)
    if start == end:
        return None
    tz = ZoneInfo(timezone)
    now = _aware(now).astimezone(UTC)
    local = now.astimezone(tz)
    tod = local.time().replace(tzinfo=None)
    if (start <= tod < end) if start < end else not (end <= tod < start):
        day = local.date() + timedelta(days=1) if end < start <= tod else local.date()
        return _first_instant(day, end, tz, now)
    return None


def hold_until(rule: Rule, now: datetime, timezone: str) -> datetime | None:
    """When a non-urgent alert of `rule` may go, if quiet hours hold it now; urgent never waits."""
    return None if rule.urgent else quiet_until(rule.quiet_hours, now, timezone)


def rate_limit_until(
    sent_at: Sequence[datetime], *, limit: int, per: float, now: datetime
) -> datetime | None:
    """Sliding window: at most `limit` sends in any `per` seconds. None = one more may go now."""
    if limit < 1 or per <= 0:
        raise ValueError("rate limit needs limit >= 1 and per > 0")
    now = _aware(now)
    window_start = now - timedelta(seconds=per)
    recent = sorted(t for t in map(_aware, sent_at) if t > window_start)
    if len(recent) < limit:
        return None
    return recent[-limit] + timedelta(seconds=per)


# --- planning ---------------------------------------------------------------------------------

STDOUT = "stdout"  # the channel of rules that name none: the alert is printed


def plan_alerts(
    article_id: int,
    article: Article,
    match: Match,
    *,
    rule: Rule,
    source_title: str,
    timezone: str,
    now: datetime,
    digest_at: datetime | None = None,
    story: StoryContext | None = None,
) -> list[Alert]:
    """The outbox rows for a new match: one per channel of the rule, each with its own key.

    With `alert = "story"` and a `story`, the article opens the story's alert (key
    `story:<id>`), or sends follow-up n (`story:<id>:<n>`) when it brings a new development
    and the rule's cooldown has passed since the story's last alert, or nothing. With
    `alert = "article"` (or no story) every distinct article alerts (`article:<id>`). The
    story's other outlets are listed as "also reported by".

    A digest rule's rows wait for `digest_at` and go out as one summary; otherwise quiet hours
    (unless the rule is urgent) hold them until the quiet hours end.
    """
    story_id: int | None = None
    follow_up: str | bool = False
    subject = article_subject(article_id)
    if story is not None and rule.alert == "story":
        n = story_alert(story, article_id, cooldown=rule.cooldown, now=now)
        if n is None:
            return []
        story_id = story.story_id
        follow_up = (development(story) or True) if n > 0 else False
        subject = story_subject(story.story_id, n or None)
    message = render_alert(
        article,
        match,
        source_title=source_title,
        rule=rule,
        timezone=timezone,
        also_reported_by=story.outlets if story is not None else (),
        follow_up=follow_up,
    )
    due = digest_at or hold_until(rule, now, timezone) or now
    return [
        Alert(
            key=alert_key(rule.name, channel, subject),
            rule=rule.name,
            channel=channel,
            message=message,
            due_at=due,
            article_id=article_id,
            story_id=story_id,
            digest=digest_at is not None,
        )
        for channel in (rule.channels or (STDOUT,))
    ]
