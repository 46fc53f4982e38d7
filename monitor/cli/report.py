"""Human-readable terminal output for the CLI: plain functions from data to text.

Imports only the standard library at load: every command imports this module, and `--help` or
`check` should not pay for the story code (`readable` is imported by the one function using it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from monitor.models import Article, Match


def local_time(value: datetime | None, timezone: str) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def format_match(article: Article, match: Match, timezone: str) -> str:
    """One match as the terminal shows it: rule, headline, outlet, time, link, why."""
    terms = ", ".join(match.terms)
    when = local_time(article.published, timezone)
    return (
        f"[{match.rule}] {article.title}\n"
        f"    {article.source} · {when} · {article.url}\n"
        f"    matched: {terms}"
    )


def format_search_hit(article_id: int, article: Article, snippet: str, timezone: str) -> str:
    when = local_time(article.published, timezone)
    return (
        f"#{article_id} {article.title}\n    {article.source} · {when} · {article.url}\n"
        f"    {snippet}"
    )


def poll_summary(results: Sequence) -> str:
    """'12 sources: 3 new, 8 unchanged, 1 error; 17 new articles, 2 matches' plus the matches
    held back (too old, a first poll's backlog, muted), errors and warnings (a malformed body
    whose items were read all the same)."""
    outcomes = Counter(r.outcome for r in results)
    new = sum(r.new for r in results)
    found = sum(len(r.found) for r in results)
    parts = [
        f"{outcomes[k]} {k.replace('_', ' ')}"
        for k in ("new", "unchanged", "not_modified", "error")
        if outcomes[k]
    ]
    lines = [
        f"{len(results)} sources: {', '.join(parts) or 'none'}; {new} new articles, {found} matches"
    ]
    held: Counter[str] = Counter()
    for r in results:
        held.update(dict(r.held))
    if held:  # recorded but never alerted: alerts/held.py
        from monitor.alerts.held import describe

        lines.append(f"  matches held, not alerted: {describe(held)}")
    for r in results:
        if r.outcome == "error":
            lines.append(f"  {r.source}: {r.error}")
        elif getattr(r, "warning", ""):
            lines.append(f"  {r.source}: {r.warning}")
    return "\n".join(lines)


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return f"in {span(-seconds)}"
    return f"{span(seconds)} ago"


def span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# normalize.SKIP_REASONS as a reader says them: (one item, several items)
_SKIPPED = {
    "duplicate": ("duplicate item", "duplicate items"),
    "no_identifier": ("item with no GUID, link or title", "items with no GUID, link or title"),
}


def _skipped(reasons: dict[str, int]) -> str:
    """'2 duplicate items, 1 item with no GUID, link or title'"""
    parts = []
    for reason, n in reasons.items():
        one, many = _SKIPPED.get(reason, (reason, reason))
        parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts)


def source_status(row: dict, down: frozenset[str] = frozenset()) -> str:
    """A stored source's state in one word, as `sources` shows it (and `sources --json`)."""
    if not row["enabled"]:
        return "disabled"
    if row["consecutive_errors"]:
        return "down" if row["name"] in down else "failing"
    if row.get("last_warning"):
        return "down" if row["name"] in down else "malformed"
    return "ok" if row["last_success"] else "new"


def sources_table(
    rows: Sequence[dict], timezone: str, *, now: datetime, down: frozenset[str] = frozenset()
) -> str:
    """A fixed-width health table; errors, malformed feeds, and the items the last poll left
    out, below it."""
    header = ("source", "status", "last success", "next poll", "articles", "skipped", "errors")
    table = [header]
    problems = []
    warnings = [
        f"  {r['name']}: {r['last_warning']} (last well-formed: {_ago(r['last_clean'], now)})"
        for r in rows
        if r["enabled"] and r.get("last_warning")
    ]
    skipped = [(r["name"], r["skipped_reasons"]) for r in rows if r["last_skipped"]]
    for row in rows:
        if row["enabled"] and row["consecutive_errors"]:
            problems.append(
                f"  {row['name']}: {row['last_error']} ({_ago(row['last_error_at'], now)})"
            )
        table.append(
            (
                row["name"],
                source_status(row, down),
                _ago(row["last_success"], now),
                _ago(row["next_poll"], now) if row["enabled"] else "-",
                str(row["articles"]),
                str(row["last_skipped"]),
                str(row["consecutive_errors"]),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    if problems:
        lines += ["", "errors:", *problems]
    if warnings:
        lines += ["", "warnings:", *warnings]
    if skipped:
        lines += ["", "skipped by the last poll that read the feed:"]
        lines += [f"  {name}: {_skipped(reasons)}" for name, reasons in skipped]
    return "\n".join(lines)


def drain_summary(result) -> str:
    line = f"alerts: {result.sent} sent, {result.failed} to retry, {result.dead} dead"
    if result.postponed:
        line += f", {result.postponed} held"
    return line


def story_line(story, timezone: str) -> str:
    """One line of `news-monitor stories` (a models.StoryRow)."""
    languages = "+".join(story.languages) or "?"
    alerts = f"{story.alerts} alert" + ("" if story.alerts == 1 else "s")
    return (
        f"#{story.id}  {local_time(story.first_seen, timezone)}  {story.size} article(s)  "
        f"{languages}  {alerts}  [{', '.join(story.outlets)}]  {story.headline}"
    )


def timeline_entry(entry, timezone: str) -> str:
    """One article (or copy) of `news-monitor stories ID` (a models.TimelineEntry):
    whether it alerted and why, and the facts it added."""
    from monitor.stories.developments import readable

    kind = f"copy of #{entry.copy_of}" if entry.copy_of else f"#{entry.article_id}"
    language = f" ({entry.language})" if entry.language else ""
    lines = [
        f"{local_time(entry.at, timezone)}  {entry.source}{language}  {kind}  {entry.title}",
        f"    {entry.url}",
    ]
    lines += [f"    ALERTED {why}" for why in entry.alerted]
    if entry.fresh:
        shown = ", ".join(readable(f) for f in entry.fresh[:12])
        lines.append(f"    added: {shown}")
    return "\n".join(lines)


def emit_json(value: object) -> None:
    """`--json` output, one convention for every command: one JSON document on stdout (a list
    of objects, or an object), UTF-8 as is, times in ISO 8601 UTC, `None` as null."""
    import dataclasses
    import json
    import sys

    def plain(obj: object) -> object:
        if isinstance(obj, datetime):
            return obj.astimezone(UTC).isoformat() if obj.tzinfo else obj.isoformat()
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, set | frozenset | tuple):
            return list(obj)
        return str(obj)

    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=plain) + "\n")


def plural(n: int, what: str) -> str:
    """'1 feed', '3 feeds'."""
    return f"{n} {what}" + ("" if n == 1 else "s")
