"""The rewrite of the store's SQLite SQL for PostgreSQL (store/pg/dialect.py).

The store's statements are written once; what only SQLite reads is rewritten for PostgreSQL.
First the rewrite itself, a pure function of the text (no server needed); then the same
statements run on both backends (conftest's `store`), which must give the same answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.models import Alert, Message
from monitor.store import Store
from monitor.store.pg.dialect import to_postgres

T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT a FROM t WHERE id = ? AND b IN (?, ?)",
         "SELECT a FROM t WHERE id = %s AND b IN (%s, %s)"),
        ("UPDATE t SET x = NULL WHERE u IS NOT ?",
         "UPDATE t SET x = NULL WHERE u IS DISTINCT FROM %s"),
        ("SELECT 1 FROM t WHERE u is ?", "SELECT 1 FROM t WHERE u IS NOT DISTINCT FROM %s"),
        ("SELECT IFNULL(a, 0) FROM t", "SELECT COALESCE(a, 0) FROM t"),
        ("SELECT json_array_length(o.rules) FROM outbox o",
         "SELECT json_array_length(o.rules::json) FROM outbox o"),
    ],
    ids=["placeholders", "is-not-param", "is-param", "ifnull", "json-array-length"],
)  # fmt: skip
def test_sqlite_only_spellings_are_rewritten(sqlite: str, postgres: str) -> None:
    assert to_postgres(sqlite) == postgres


def test_json_each_reads_a_json_array_with_its_order_under_its_alias_or_none() -> None:
    elements = "json_array_elements_text({}::json) WITH ORDINALITY AS {}(value, key)"
    assert to_postgres("SELECT 1 FROM json_each(rules) WHERE value = ?") == (
        f"SELECT 1 FROM {elements.format('rules', 'json_each')} WHERE value = %s"
    )
    joined = "FROM a sa JOIN json_each(o.rules) j ON j.value = sa.rule ORDER BY j.key"
    assert to_postgres(joined) == (
        f"FROM a sa JOIN {elements.format('o.rules', 'j')} ON j.value = sa.rule ORDER BY j.key"
    )
    assert to_postgres("FROM json_each(?) AS e JOIN t") == (
        f"FROM {elements.format('%s', 'e')} JOIN t"
    )
    for follower in ("JOIN t", "ORDER BY 1", "LIMIT 3", "GROUP BY 1", "UNION SELECT 1"):
        assert to_postgres(f"FROM json_each(x) {follower}") == (
            f"FROM {elements.format('x', 'json_each')} {follower}"
        ), follower


def test_only_the_scalar_min_and_max_become_least_and_greatest() -> None:
    assert to_postgres("SELECT MAX(at), MIN(n) FROM t GROUP BY k") == (
        "SELECT MAX(at), MIN(n) FROM t GROUP BY k"
    )
    assert to_postgres("SET at = MAX(story_index.at, excluded.at)") == (
        "SET at = GREATEST(story_index.at, excluded.at)"
    )
    merged = "first_seen = MIN(first_seen, (SELECT MIN(f) FROM s WHERE id = ?))"
    assert to_postgres(merged) == (
        "first_seen = LEAST(first_seen, (SELECT MIN(f) FROM s WHERE id = %s))"
    )
    nested = "SELECT max(coalesce(a, 0) + 1, min(b, c), MAX(d)) FROM t"
    assert to_postgres(nested) == "SELECT GREATEST(coalesce(a, 0) + 1, LEAST(b, c), MAX(d)) FROM t"


def test_literals_and_quoted_names_are_left_alone_but_percent_is_escaped() -> None:
    sql = """SELECT 'is it? MAX(a, b)', "odd?name" FROM t WHERE s LIKE '50%' AND x = ?"""
    assert to_postgres(sql) == (
        """SELECT 'is it? MAX(a, b)', "odd?name" FROM t WHERE s LIKE '50%%' AND x = %s"""
    )
    assert to_postgres("SELECT 'it''s ?' || ?") == "SELECT 'it''s ?' || %s"


def test_the_shared_spelling_passes_unchanged() -> None:
    """What both engines read is not touched: upserts, RETURNING, CAST of a parameter."""
    sql = (
        "INSERT INTO term_df (term, bucket, n) VALUES (%s, %s, %s) ON CONFLICT (term, bucket) "
        "DO UPDATE SET n = term_df.n + excluded.n RETURNING n, CAST(%s AS TEXT) IS NULL"
    )
    assert to_postgres(sql.replace("%s", "?")) == sql


# ------------------------------------------------------------------ the same answers on both


def _alert(n: int, rules: list[str]) -> Alert:
    message = Message(f"title {n}", "text", "markdown", "html")
    return Alert(f"k{n}", rules[0], "chat", message, T0, article_id=n)


def test_rewritten_statements_give_the_same_answers_on_both_backends(store: Store) -> None:
    """One test body, once per backend: json_each (of a column, of a parameter) in order,
    json_array_length, IS NOT ?, the scalar MAX beside the aggregate."""
    store.add_alerts([_alert(1, ["talks"]), _alert(2, ["abu-dhabi"])], T0)
    store.add_alerts([_alert(1, ["abu-dhabi"])], T0)  # joins row k1: rules talks, abu-dhabi
    db = store.db  # type: ignore[attr-defined]
    rules = db.execute(
        "SELECT o.key, j.value FROM outbox o, json_each(o.rules) j ORDER BY o.key, j.key"
    ).fetchall()
    assert rules == [("k1", "talks"), ("k1", "abu-dhabi"), ("k2", "abu-dhabi")]
    assert store.pending_count("abu-dhabi") == 2  # EXISTS (... json_each(rules) WHERE value = ?)
    several = db.execute("SELECT key FROM outbox WHERE json_array_length(rules) > 1").fetchall()
    assert several == [("k1",)]
    given = db.execute("SELECT value FROM json_each(?) ORDER BY key", ('["b", "a", "c"]',))
    assert given.fetchall() == [("b",), ("a",), ("c",)]  # a parameter's array, in its order
    others = db.execute("SELECT key FROM outbox WHERE rule IS NOT ? ORDER BY key", ("talks",))
    assert others.fetchall() == [("k2",)]
    later = db.execute("SELECT MAX(due_at, ?) FROM outbox WHERE key = ?", ("2027", "k2"))
    assert later.fetchone() == ("2027",)
    assert db.execute("SELECT MAX(id) FROM outbox").fetchone()[0] >= 2
