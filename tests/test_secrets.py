"""Secrets never leave the process: not in CLI output, logs, alerts, metrics or the database.

A `${FEED_KEY}` secret sits in a source URL's query and in its host name, so a resolver error
repeats it lower-cased; the feed server on 127.0.0.1 echoes it percent-encoded in its error.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from monitor import secrets
from monitor.config import loader as config_mod
from monitor.service.monitor import Monitor
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver

SECRET = "FeedKey/ZZZ999"  # mixed case, with URL punctuation
FORMS = (
    SECRET,
    SECRET.lower(),
    SECRET.upper(),
    quote(SECRET, safe=""),
    quote(SECRET, safe="").lower(),
)
ROOT = Path(__file__).resolve().parent.parent


def _leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


def test_every_form_of_a_secret_is_masked() -> None:
    s = secrets.Secrets([SECRET])
    for form in (*FORMS, json.dumps(SECRET)[1:-1], SECRET.replace("/", "%2f")):
        assert s.mask(f"a {form} b") == "a *** b", form
    assert s.mask("nothing here") == "nothing here"
    assert secrets.Secrets(["ab"]).mask("ab cd") == "ab cd"  # too short to be told from text


def _config(tmp_path: Path, server: LoopbackServer, hook: str) -> Path:
    """One source whose host holds the secret (fails to resolve), one whose query holds it."""
    path = tmp_path / "monitor.toml"
    path.write_text(
        "[monitor]\n"
        f"database = {json.dumps(str(tmp_path / 'm.db'))}\n"
        'failing_after = "1s"\nhealth_channel = "hook"\nlog_format = "json"\n'
        f"[channels]\nhook = {json.dumps(hook)}\n"
        '[[sources]]\nname = "dns"\nurl = "http://x${FEED_HOST}.invalid/rss"\n'
        '[[sources]]\nname = "query"\n'
        f'url = "{server.url("/rss")}?apikey=${{FEED_KEY}}"\n',
        encoding="utf-8",
    )
    return path


ENV = {"FEED_KEY": SECRET, "FEED_HOST": "FeedKey-ZZZ999"}


def test_cli_output_logs_and_database_never_show_the_secret(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # the server's error page repeats the request line, secret and all (percent-encoded)
    server.route("/rss", lambda seen: Reply(status=500, body=f"bad key in {seen.path}".encode()))
    path = _config(tmp_path, server, "json://127.0.0.1:9/")
    env = {**os.environ, **ENV, "NEWS_MONITOR_CONFIG": str(path)}
    host_forms = ("FeedKey-ZZZ999", "feedkey-zzz999")
    outputs = []
    for command in (["once"], ["sources"], ["check"]):
        done = subprocess.run(
            [sys.executable, "-m", "monitor", *command],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip
        outputs.append(done.stdout + done.stderr)
    everything = "\n".join(outputs)
    assert "dns" in everything and "query" in everything  # the commands did report the sources
    assert "cannot resolve host" in everything and "500" in everything
    assert not _leaks(everything) and not any(h in everything for h in host_forms), everything
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("m.db*")).decode("latin-1")
    assert not _leaks(stored) and not any(h.lower() in stored.lower() for h in host_forms)
    assert "apikey=${FEED_KEY}" in stored  # the URL is stored as written, not expanded


def test_the_source_down_alert_never_shows_the_secret(
    tmp_path: Path, server: LoopbackServer, monkeypatch
) -> None:
    server.route("/rss", lambda seen: Reply(status=500, body=f"bad key in {seen.path}".encode()))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with WebhookReceiver() as hook:
        cfg = config_mod.load(_config(tmp_path, server, hook.url()))

        async def scenario() -> None:
            monitor = Monitor(cfg)
            try:
                await monitor.poll_everything()
                await asyncio.sleep(1.2)  # past failing_after since the sources were added
                await monitor.poll_everything()
                monitor.check_sources()
                await monitor.drain()
            finally:
                await monitor.close()

        asyncio.run(scenario())
        posts = hook.wait_for(2)
    bodies = "\n".join(json.dumps(p.payload) + p.payload.get("message", "") for p in posts)
    assert "is down" in bodies and "500" in bodies
    assert not _leaks(bodies) and "feedkey-zzz999" not in bodies.lower(), bodies
