"""Versioned schema migrations, applied in order; `PRAGMA user_version` is the version.

Never edit a released migration: append a new one. Each runs inside one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _v1_foundation(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "name": str,
            "url": str,
            "kind": str,
            "enabled": int,
            "state_url": str,  # the URL the conditional-GET state belongs to
            "etag": str,
            "last_modified": str,
            "body_hash": str,
            "last_success": str,
            "last_poll": str,
            "last_error": str,
            "last_error_at": str,
            "consecutive_errors": int,
            "next_poll": str,
            "lease_until": str,
            "last_new": int,
            "items_seen": int,
            "polls_ok": int,
            "polls_failed": int,
        },
        pk="name",
        defaults={
            "enabled": 1,
            "consecutive_errors": 0,
            "last_new": 0,
            "items_seen": 0,
            "polls_ok": 0,
            "polls_failed": 0,
        },
        not_null={"url", "kind"},
    )
    db["articles"].create(
        {
            "id": int,
            "source": str,
            "guid": str,
            "url": str,
            "title": str,
            "summary": str,
            "text": str,
            "language": str,
            "published": str,
            "first_seen": str,
            "updated_at": str,
            "edits": int,
            "author": str,
            "fingerprint": str,
        },
        pk="id",
        defaults={"edits": 0},
        not_null={"source", "guid", "url", "title"},
    )
    db["articles"].create_index(["url"], unique=True)
    db["articles"].create_index(["guid"])
    db["articles"].create_index(["fingerprint"])
    db["articles"].create_index(["published"])
    db["matches"].create(
        {"article_id": int, "rule": str, "terms": str, "matched_at": str},
        pk=("article_id", "rule"),
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["articles"].enable_fts(
        ["title", "summary", "text"],
        fts_version="FTS5",
        tokenize="unicode61 remove_diacritics 2",
        create_triggers=True,
    )


Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = [_v1_foundation]
