"""Article bodies from trafilatura, when it is installed (`pip install 'news-monitor[fulltext]'`).

Why trafilatura for the body: on the 258 fundus pages of ../shared/corpus, scored by
bench/eval_extract.py, it keeps at least 90 % of the expected paragraphs on 89.9 % of the pages,
against 82.2 % for the hand-written heuristic of extract.py, and loses more than half of them on
3 pages (with extract.py's JSON-LD `articleBody` check) against 27. Why not for the title: the
JSON-LD-first titles of extract.py match 80.6 %, trafilatura's 68.2 % (it often leaves the site
name on). So extract.py keeps its title, author, date and language, and its mojibake repair,
and takes the body from here.

Why optional: trafilatura and what it brings (babel alone is 36 MB) add ~52 MB to an install
that is ~105 MB without them, for the sources with `fetch_article` only. The Docker image installs
it; without it the hand-written extractor gives every body, and one log line says so.

Imported when the first article page is read, never at start-up: it takes ~0.15 s and ~12 MB,
and `check`, `--help` and the feed-only daemon never need it. Pages arrive decoded by
extract.py (its charset rules) and already size-checked (`MAX_HTML_BYTES`).
"""

from __future__ import annotations

import threading
from types import ModuleType

import structlog

__all__ = ["INSTALL_HINT", "trafilatura_body"]

INSTALL_HINT = "pip install 'news-monitor[fulltext]'"

log = structlog.stdlib.get_logger("monitor.ingest")

_lock = threading.Lock()
_loaded: list[ModuleType | None] = []  # [] untried; [module] or [None] once tried


def _trafilatura() -> ModuleType | None:
    """The trafilatura module, or None when it cannot be imported (said once, in the log)."""
    with _lock:
        if not _loaded:
            try:
                import trafilatura
            except ImportError as exc:
                log.warning(
                    "trafilatura is not installed: article bodies come from the built-in "
                    f"extractor, which misses more of them ({INSTALL_HINT})",
                    error=str(exc),
                )
                trafilatura = None
            _loaded.append(trafilatura)
        return _loaded[0]


def trafilatura_body(html: str, url: str) -> str | None:
    """The main text of a decoded page, paragraphs apart by a blank line ("" when it finds
    none or fails on the page); None when trafilatura is not installed."""
    module = _trafilatura()
    if module is None:
        return None
    try:
        found = module.bare_extraction(html, url=url, with_metadata=True)
    except Exception as exc:  # a bug on one odd page: the built-in extractor takes over
        log.debug("trafilatura failed on a page", url=url, error=repr(exc))
        return ""
    text = getattr(found, "text", None) or ""
    return "\n\n".join(line.strip() for line in text.split("\n") if line.strip())
