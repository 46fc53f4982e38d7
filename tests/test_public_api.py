"""The public face of `monitor`: exactly these names, each resolving, none loading I/O early."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import monitor

PUBLIC = """Clock Config ConfigError FetchError Monitor MonitorError ParseError RuleSyntaxError
StorageError SystemClock __version__ load_config""".split()
HEAVY = ("aiohttp", "apprise", "apscheduler", "sqlite_utils", "prometheus_client", "feedparser")


def test_all_is_pinned() -> None:
    assert sorted(monitor.__all__) == sorted(PUBLIC)
    assert len(set(monitor.__all__)) == len(monitor.__all__)


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(monitor, name) is not None, name
    assert monitor.load_config is monitor.config.loader.load
    assert issubclass(monitor.ConfigError, monitor.MonitorError)
    assert monitor.SystemClock().now().utcoffset() is not None  # aware, in UTC
    assert set(PUBLIC) <= set(dir(monitor))


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        monitor.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("monitor.no_such_name resolved")


def test_importing_the_package_loads_no_io_library() -> None:
    code = (
        "import sys, monitor, monitor.text; from monitor import __version__;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def loaded(config: Path, args: list[str], watched: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run `news-monitor --config CONFIG ARGS` in a fresh interpreter: its standard output and
    which of the `watched` modules it loaded (a command that fails fails the test)."""
    code = (
        "import sys; from monitor.cli.commands import cli\n"
        f"try: cli(['--config', {str(config)!r}, *{args!r}])\n"
        "except SystemExit as exc: assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {watched!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout, ast.literal_eval(done.stderr.strip().splitlines()[-1])


def test_check_loads_no_http_client_apprise_or_scheduler(tmp_path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(
        '[monitor]\ndatabase = "m.db"\n\n[[sources]]\nname = "a"\nurl = "https://a.example/f.xml"\n'
        '\n[[rules]]\nname = "r"\nquery = "ukraine"\n'
    )
    assert loaded(config, ["check"], HEAVY)[1] == []


# What each read command may load: none of the I/O libraries of a poll, and less where it can.
POLL_ONLY = ("aiohttp", "apprise", "apscheduler", "bs4", "soupsieve", "feedparser")
READ_COMMANDS = {  # command: (its arguments, what it must not load besides POLL_ONLY and prom)
    "--help": (["--help"], ("pydantic", "sqlite_utils", "asyncio")),  # not even the config loader
    "check": (["check"], ("sqlite_utils", "asyncio")),
    "sources": (["sources"], ()),
    "search": (["search", "ukraine"], ()),
    "test-rule --text": (
        ["test-rule", "r", "--text", "Ukraine\ntalks resume"],
        ("sqlite_utils", "asyncio"),
    ),
    "test-rule --query --text": (  # no config needed
        ["test-rule", "-q", "ukraine", "--text", "Ukraine talks"],
        ("pydantic", "sqlite_utils", "asyncio"),
    ),
}


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_read_commands_load_only_what_they_need(tmp_path, command: str) -> None:
    """`--help` and the commands that only read start without the poll's libraries (see
    bench/bench_startup.py for what they cost); run in a fresh interpreter each."""
    from monitor.store import open_store

    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n[[sources]]\nname = "a"\n'
        'url = "https://a.example/f.xml"\n\n[[rules]]\nname = "r"\nquery = "ukraine"\n'
    )
    with open_store(tmp_path / "m.db"):  # `sources` and `search` read an existing database
        pass
    args, extra = READ_COMMANDS[command]
    forbidden = (*POLL_ONLY, "prometheus_client", *extra)
    assert loaded(config, args, forbidden)[1] == [], command


def test_once_printing_to_the_terminal_loads_no_apprise_bs4_or_scheduler(tmp_path) -> None:
    """A cron `once` with feed sources and no channels pays for neither Apprise (its plugins
    are ~0.15 s of start-up), bs4/soupsieve (html sources and article pages only) nor the
    scheduler (digests only): it still polls and prints the match."""
    from email.utils import format_datetime

    from tests.loopback import LoopbackServer, Reply

    now = format_datetime(datetime.now(UTC)).encode()
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>Ukraine '
        b"talks resume</title><link>https://example.org/a</link><guid>a</guid>"
        b"<pubDate>" + now + b"</pubDate></item></channel></rss>"
    )
    with LoopbackServer() as server:
        server.route("/f.xml", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
        base = server.url("")
        config = tmp_path / "monitor.toml"
        config.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n\n[[sources]]\nname = "a"\n'
            f'url = "{base}/f.xml"\nallow_private = true\n\n[[rules]]\nname = "r"\n'
            'query = "ukraine"\nalert = "article"\n'
        )
        out, found = loaded(config, ["once"], ("apprise", "bs4", "soupsieve", "apscheduler"))
    assert "Ukraine talks resume" in out
    assert found == []
