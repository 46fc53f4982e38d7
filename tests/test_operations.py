"""Operating the monitor (issue 14, item 8) as an operator meets it, through the real parts.

`check` and `once` run as real processes on real config files; feeds come from the loopback
server; the daemon runs as a subprocess (tests/test_daemon.py's `Daemon`), is scraped over HTTP
on loopback and stopped with SIGTERM. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.config import load
from monitor.errors import ConfigError
from monitor.rules.query import Document, parse_query
from monitor.runtime.healthz import start_health_server
from monitor.service.monitor import Monitor
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver
from tests.test_cli_check import PROBLEM, run
from tests.test_daemon import Daemon, Feed, free_port, get, json_lines

NOW = datetime.now(UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def feed_of(server: LoopbackServer, *titles: str, path: str = "/feed") -> str:
    items = [Item(f"g{i}", t, published=NOW - timedelta(minutes=i)) for i, t in enumerate(titles)]
    server.route(path, Reply(body=rss(items), headers={"Content-Type": "application/rss+xml"}))
    return server.url(path)


# ------------------------------------------------------------------ names in any script


def test_names_in_any_script_pass_check_and_are_stored_nfc(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [monitor]
        database = "m.db"
        [channels]
        "canale-città" = "json://127.0.0.1:9/hook"
        [[sources]]
        name = "città"
        url = "https://a.example/feed.xml"
        [[sources]]
        name = "новости"
        url = "https://b.example/feed.xml"
        [[sources]]
        name = "東京"
        url = "https://c.example/feed.xml"
        [[sources]]
        name = "cafe\\u0301.it"
        url = "https://d.example/feed.xml"
        [[rules]]
        name = "tregua-città"
        query = "source:città OR source:новости OR source:東京"
        channels = ["canale-città"]
        """,
    )
    done = run(tmp_path, "--config", str(path), "check")
    assert done.returncode == 0, done.stderr
    assert "4 sources, 1 rules, 1 channels" in done.stdout
    assert "channel canale-città:" in done.stdout
    # one name typed two ways is one name: the decomposed é is stored composed
    assert [s.name for s in load(path).sources][-1] == "café.it"


@pytest.mark.parametrize("name", ["città", "новости", "東京", "हिन्दी", "café.it"])
def test_source_queries_match_names_in_any_script(name: str) -> None:
    query = parse_query(f"source:{name} AND tregua")
    assert query.match(Document("Tregua firmata", "", name, "it")) is not None
    assert query.match(Document("Tregua firmata", "", "altro", "it")) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ansa mondo", "it contains a space"),
        ("ansa\u200bmondo", "it contains the invisible character U+200B"),
        ("-ansa", 'it starts with "-"'),
        ("ansa/mondo", 'it contains "/"'),
    ],
)
def test_a_bad_name_is_refused_with_its_line_and_why(tmp_path: Path, name: str, why: str) -> None:
    path = write(
        tmp_path,
        f"""
        [monitor]
        database = "m.db"

        [[sources]]
        name = {json.dumps(name)}
        url = "https://a.example/feed.xml"
        """,
    )
    done = run(tmp_path, "--config", str(path), "check")
    assert done.returncode == 2
    problem = PROBLEM.fullmatch(done.stderr.strip())
    assert problem is not None, done.stderr
    assert problem["line"] == "5" and problem["where"] == "sources[0].name"
    assert why in problem["what"] and "letters and digits of any script" in problem["what"]


# ------------------------------------------------------------------ sizes as written


def test_the_size_limit_reads_as_written_in_check_and_in_the_poll_error(
    tmp_path: Path, server: LoopbackServer
) -> None:
    big = [Item(f"g{i}", "x" * 40, "y" * 2000, published=NOW) for i in range(800)]
    server.route("/big", Reply(body=rss(big), headers={"Content-Type": "application/rss+xml"}))
    path = write(
        tmp_path,
        f"""
        [monitor]
        database = "m.db"
        max_bytes = "1.5MB"
        [[sources]]
        name = "big"
        url = "{server.url("/big")}"
        """,
    )
    checked = run(tmp_path, "--config", str(path), "check")
    assert "responses up to 1.5MB (max_bytes)" in checked.stdout
    polled = run(tmp_path, "--config", str(path), "once")
    assert "exceeds the 1.5MB limit" in polled.stderr, polled.stderr
    assert "1.57286" not in polled.stderr + checked.stdout


# ------------------------------------------------------------------ log level and time zone


def once_config(tmp_path: Path, url: str, **monitor: str) -> Path:
    keys = "".join(f'{k} = "{v}"\n' for k, v in monitor.items())
    text = f'[monitor]\ndatabase = "m.db"\n{keys}\n[[sources]]\nname = "wire"\nurl = "{url}"\n'
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_log_level_debug_shows_each_poll_and_the_environment_overrides_it(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = feed_of(server, "Tregua a Kyiv", "Meteo")
    quiet = once_config(tmp_path, url, log_format="json")
    done = run(tmp_path, "--config", str(quiet), "once")
    assert done.returncode == 0, done.stderr
    assert not json_lines(done.stderr)  # `once` prints its summary, not log lines
    assert "1 sources:" in done.stderr

    loud = run(tmp_path, "--config", str(quiet), "once", env={"NEWS_MONITOR_LOG_LEVEL": "DEBUG"})
    (polled,) = [e for e in json_lines(loud.stderr) if e["event"] == "polled"]
    assert polled["level"] == "debug" and polled["source"] == "wire"

    configured = once_config(tmp_path, url, log_format="json", log_level="debug")
    done = run(tmp_path, "--config", str(configured), "once")
    assert [e["event"] for e in json_lines(done.stderr)].count("polled") == 1

    wrong = run(tmp_path, "--config", str(quiet), "once", env={"NEWS_MONITOR_LOG_LEVEL": "loud"})
    assert wrong.returncode == 2
    assert 'monitor.log_level: NEWS_MONITOR_LOG_LEVEL="loud" in the environment: not a log' in (
        wrong.stderr
    )


def test_the_worker_is_named_by_the_environment_or_by_host_and_pid(tmp_path: Path) -> None:
    path = write(tmp_path, '[monitor]\ndatabase = "m.db"\n')
    assert load(path, env={}).settings.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert load(path, env={"NEWS_MONITOR_WORKER": "desk-1"}).settings.worker == "desk-1"
    with pytest.raises(ConfigError) as wrong:
        load(path, env={"NEWS_MONITOR_WORKER": "x" * 101})
    assert 'monitor.worker: NEWS_MONITOR_WORKER="xxx' in str(wrong.value)
    assert "at most 100 printable characters" in str(wrong.value)


def test_human_lines_show_the_configured_zone_and_json_lines_stay_utc(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = feed_of(server, "Tregua a Kyiv")
    human = once_config(tmp_path, url, timezone="Asia/Tokyo", log_level="debug",
                        log_format="human")  # fmt: skip
    done = run(tmp_path, "--config", str(human), "once")
    line = next(ln for ln in done.stderr.splitlines() if "polled" in ln)
    stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) JST \[debug", line)
    assert stamp is not None, line
    shown = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    assert abs((shown - datetime.now(UTC)).total_seconds()) < 120

    as_json = once_config(tmp_path, url, timezone="Asia/Tokyo", log_level="debug",
                          log_format="json")  # fmt: skip
    done = run(tmp_path, "--config", str(as_json), "once")
    event = next(e for e in json_lines(done.stderr) if e["event"] == "polled")
    assert event["timestamp"].endswith("Z")
    when = datetime.fromisoformat(event["timestamp"])
    assert abs((when - datetime.now(UTC)).total_seconds()) < 120


def test_a_bad_health_host_is_refused(tmp_path: Path) -> None:
    path = once_config(tmp_path, "https://a.example/f.xml", health_host="every where")
    done = run(tmp_path, "--config", str(path), "check")
    assert done.returncode == 2
    assert 'monitor.health_host: "every where" is not an address to listen on' in done.stderr


# ------------------------------------------------------------------ the daemon


def metrics(port: int) -> dict[str, float]:
    _, text = get(f"http://127.0.0.1:{port}/metrics")
    return {
        key: float(value)
        for key, value in (ln.rsplit(" ", 1) for ln in text.splitlines() if ln[:1] != "#")
    }


def daemon_config(hook: str, feed: str, source: str, port: int, extra: str = "") -> str:
    return f"""[monitor]
database = "data/monitor.db"
interval = "1s"
min_interval = "1s"
timeout = "5s"
log_format = "json"
timezone = "Europe/Rome"
health_port = {port}
{extra}
[channels]
hook = "{hook}"

[[sources]]
name = "{source}"
url = "{feed}"
allow_private = true

[[rules]]
name = "allerta-città"
query = 'source:città AND tregua'
alert = "article"
channels = ["hook"]
"""


async def test_metrics_label_each_configured_source_and_drop_one_that_leaves(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = feed_of(server, "Tregua a Kyiv", "Meteo")
    text = f"""[monitor]\ndatabase = "{tmp_path / "m.db"}"\nhealth_port = 8787\n
[[sources]]\nname = "città"\nurl = "{url}"\nallow_private = true
[[sources]]\nname = "spenta"\nurl = "{url}"\nenabled = false\n"""
    monitor = Monitor(load(write(tmp_path, text)))  # health_port: /metrics is served (below)
    endpoint = await start_health_server("127.0.0.1", 0, metrics=monitor.metrics, check=_ok)
    try:
        await monitor.poll_everything()
        seen = await asyncio.to_thread(metrics, endpoint.port)
        worker = f'worker="{monitor.metrics.worker}"'  # on every series: host:pid here
        assert seen[f'news_monitor_source_polls_total{{source="città",{worker}}}'] == 1
        assert seen[f'news_monitor_source_new_articles_total{{source="città",{worker}}}'] == 2
        assert seen[f'news_monitor_source_errors_total{{source="città",{worker}}}'] == 0
        assert seen[f'news_monitor_source_fetch_seconds_count{{source="città",{worker}}}'] == 1
        assert not [k for k in seen if "spenta" in k]  # disabled: never polled, no series
        monitor.apply(load(write(tmp_path, text.replace("città", "東京"))))
        seen = await asyncio.to_thread(metrics, endpoint.port)
        assert seen[f'news_monitor_source_polls_total{{source="東京",{worker}}}'] == 0
        assert not [k for k in seen if "città" in k]
        assert seen[f'news_monitor_polls_total{{outcome="new",{worker}}}'] == 1  # totals keep it
    finally:
        await endpoint.stop()
        await monitor.close()


async def test_without_a_metrics_endpoint_no_per_source_series_are_kept(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """`once` and a daemon without `health_port` serve no /metrics: labelling every source
    would only cost start-up time (0.8 s at 10,000 sources)."""
    url = feed_of(server, "Tregua a Kyiv", "Meteo")
    text = f"""[monitor]\ndatabase = "{tmp_path / "m.db"}"\n
[[sources]]\nname = "città"\nurl = "{url}"\nallow_private = true\n"""
    monitor = Monitor(load(write(tmp_path, text)))
    try:
        await monitor.poll_everything()
    finally:
        await monitor.close()
    page = monitor.metrics.render().decode()
    assert 'source="città"' not in page
    totals = f'news_monitor_polls_total{{outcome="new",worker="{monitor.metrics.worker}"}}'
    assert f"{totals} 1.0" in page  # the totals are kept


async def _ok() -> dict[str, bool | str]:
    return {"ok": True}


@pytest.mark.slow
def test_daemon_with_a_unicode_source_logs_cycles_alerts_and_labels_its_metrics(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWS_MONITOR_HEALTH_HOST", "0.0.0.0")  # the Docker image's setting
    monkeypatch.setenv("NEWS_MONITOR_WORKER", "desk-1")  # every series carries it
    with WebhookReceiver() as hook:
        feed = Feed(server, "/live")
        feed.add("Meteo: sole su Roma")
        port = free_port()
        daemon = Daemon(tmp_path)
        daemon.write(daemon_config(hook.url(), feed.url, "città", port))
        try:
            daemon.start()
            warned = daemon.wait_log(lambda e: e["event"].startswith("/healthz and /metrics"), 5)
            assert warned["level"] == "warning" and "0.0.0.0" in warned["url"]
            nxt = daemon.wait_log(lambda e: e["event"].startswith("next poll"), 20)
            assert re.fullmatch(
                r"next poll (in \d+s|now): 1 of 1 sources due by \d\d:\d\d:\d\d", nxt["event"]
            ), nxt
            cycle = daemon.wait_log(lambda e: e["event"] == "poll cycle" and e["new"] >= 1, 15)
            assert cycle["level"] == "info" and cycle["sources"] == 1 and cycle["errors"] == 0

            feed.add("Tregua a Kyiv, firmato l'accordo")
            (post,) = hook.wait_for(1, 20)
            assert "Tregua a Kyiv" in post.payload["title"]
            assert "allerta-città" in post.payload["title"] + post.payload["message"]
            daemon.wait_log(lambda e: e["event"] == "poll cycle" and e["alerts_queued"] >= 1, 15)
            assert not daemon.count(lambda e: e["event"] == "polled")  # debug only

            seen, labels = metrics(port), '{source="città",worker="desk-1"}'
            assert seen[f"news_monitor_source_polls_total{labels}"] >= 2
            assert seen[f"news_monitor_source_new_articles_total{labels}"] == 2
            assert seen[f"news_monitor_source_errors_total{labels}"] == 0
            assert seen[f"news_monitor_source_fetch_seconds_count{labels}"] >= 2

            # a reload: the source renamed, debug lines on
            daemon.write(daemon_config(hook.url(), feed.url, "東京", port, 'log_level = "debug"'))
            daemon.wait_log(lambda e: e["event"] == "log settings changed", 10)
            daemon.wait_log(lambda e: e["event"] == "polled" and e["source"] == "東京", 10)
            seen = metrics(port)
            assert 'news_monitor_source_polls_total{source="東京",worker="desk-1"}' in seen
            assert not [k for k in seen if 'source="città"' in k]  # its series left with it
            assert daemon.stop() == 0
        finally:
            daemon.kill()
