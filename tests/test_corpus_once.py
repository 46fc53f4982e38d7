"""The whole real feed corpus, served over loopback, through the real `news-monitor once`.

Every source must end as a success or a clearly recorded error; nothing may crash.
"""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.slow  # end-to-end over the real corpus / the benches

TYPES = {".xml": "application/rss+xml", ".json": "application/json"}


def _corpus_feeds(corpus: Path) -> list[Path]:
    root = corpus / "feeds"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TYPES)


def _source_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("").as_posix()
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in rel)


def test_every_corpus_feed_goes_through_once(corpus: Path, tmp_path: Path) -> None:
    feeds = _corpus_feeds(corpus)
    assert len(feeds) > 80
    root = corpus / "feeds"
    index = {
        row["file"]: row
        for row in csv.DictReader((root / "INDEX.tsv").open(encoding="utf-8"), delimiter="\t")
    }
    with LoopbackServer() as server:
        lines = ['[monitor]\ndatabase = "monitor.db"\ntimeout = "10s"\n']
        names = {}
        for n, path in enumerate(feeds):
            # no charset in Content-Type: the bytes must speak for themselves
            server.route(
                f"/f{n}",
                Reply(body=path.read_bytes(), headers={"Content-Type": TYPES[path.suffix]}),
            )
            name = _source_name(path, root)
            names[name] = path.relative_to(root).as_posix()
            lines.append(f'[[sources]]\nname = "{name}"\nurl = "{server.url(f"/f{n}")}"\n')
        lines.append('[[rules]]\nname = "ukraine"\nquery = "ukraine OR ucraina OR kyiv OR kiev"\n')
        config = tmp_path / "monitor.toml"
        config.write_text("\n".join(lines), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "once"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr

    db = sqlite3.connect(tmp_path / "monitor.db")
    state = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT name, last_success, last_error, (SELECT COUNT(*) FROM articles a "
            "WHERE a.source = s.name) FROM sources s"
        )
    }
    assert set(state) == set(names)
    for name, (success, error, _articles) in state.items():
        assert success or error, f"{name}: neither a success nor a recorded error"
        assert not (error or "").startswith("internal error"), f"{name}: {error}"

    # Every distinct outlet feed that feedparser reads cleanly yields stored articles.
    for name, rel in names.items():
        row = index.get(rel)
        if rel.startswith("news/") and row and row["bozo"] == "0" and int(row["entries"]) > 0:
            success, error, articles = state[name]
            assert success and not error, f"{name}: {error}"
            assert articles > 0, f"{name}: no articles stored"

    titles = [t for (t,) in db.execute("SELECT title FROM articles")]
    # accents and Cyrillic come out right whatever the declared (or missing) charset
    assert any("à" in t or "è" in t or "ù" in t for t in titles)
    assert any(any("\u0400" <= c <= "\u04ff" for c in t) for t in titles)
    assert not any("\ufffd" in t or "Ã" in t for t in titles)
    matched = db.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
    assert matched > 0  # the Kyiv Independent items mention Ukraine
