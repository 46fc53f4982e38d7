"""`news-monitor check` as a user runs it: a real process, a real file, a real environment.

The config is given the way a user gives it, relative to the current directory, so every
message starts with the path the user typed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "monitor.toml"
CONFIG = "config/monitor.toml"  # as typed, relative to the cwd
PROBLEM = re.compile(r"(?P<file>[^:]+):(?P<line>\d+): (?P<where>[\w.\[\]-]+): (?P<what>.+)")


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m monitor ARGS` in `cwd`, with only the given variables added to a clean env."""
    base = {k: v for k, v in os.environ.items() if k != "NEWS_MONITOR_CONFIG"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def lines_with(path: Path, snippet: str) -> list[int]:
    """1-based numbers of the lines containing `snippet`."""
    return [i for i, ln in enumerate(path.read_text().splitlines(), 1) if snippet in ln]


def line_of(path: Path, snippet: str) -> int:
    [line] = lines_with(path, snippet)
    return line


# ------------------------------------------------------------------ a good config


def test_shipped_config_is_ok_with_its_counts(tmp_path):
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    result = run(tmp_path, "--config", str(SHIPPED), "check")
    assert result.returncode == 0, result.stderr
    assert f"{SHIPPED}: OK" in result.stdout
    counts = f"{len(data['sources'])} sources, {len(data['rules'])} rules, 0 channels"
    assert counts in result.stdout
    assert "no channels: alerts are printed on standard output" in result.stdout


def test_default_config_path_is_config_monitor_toml_in_the_cwd(tmp_path):
    write(tmp_path, SHIPPED.read_text(encoding="utf-8"))
    result = run(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert f"{CONFIG}: OK" in result.stdout


# ------------------------------------------------------------------ a file full of mistakes

BROKEN = """
    [monitor]
    interval = "5 minutes"
    timezone = "Europe/Roma"
    per_hots = 4

    [[sources]]
    name = "bbc"
    url = "ftp://feeds.bbci.co.uk/news/world/rss.xml"

    [[sources]]
    name = "bbc"
    url = "https://example.org/bbc"

    [[sources]]
    name = "page"
    kind = "html"
    url = "https://example.org/news/"

    [[rules]]
    name = "talks"
    query = '''
    (ukraine OR kyiv
    AND ceasefire'''
    channels = ["desk"]

    [[rules]]
    name = "digest"
    query = "ceasefire"
    alert = "stroy"
    digest = "0 8 * *"
    quiet_hours = "22-07"

    [[rules]]
    name = "noquery"
"""


def test_broken_config_lists_every_problem_with_its_line(tmp_path):
    path = write(tmp_path, BROKEN)
    headers = lines_with(path, "[[rules]]")
    expected = [
        (line_of(path, "5 minutes"), "monitor.interval", 'write "5m"'),
        (line_of(path, "Europe/Roma"), "monitor.timezone", "not a time zone"),
        (line_of(path, "per_hots"), "monitor.per_hots", 'did you mean "per_host"'),
        (line_of(path, "ftp://"), "sources[0].url", "not an http:// or https:// URL"),
        (lines_with(path, 'name = "bbc"')[1], "sources[1].name", 'duplicate source name "bbc"'),
        (line_of(path, 'kind = "html"'), "sources[2].kind", "needs `links`"),
        (line_of(path, "query = '''"), "rules[0].query", "at character"),
        (line_of(path, '["desk"]'), "rules[0].channels[0]", '"desk" is not defined'),
        (line_of(path, "stroy"), "rules[1].alert", 'must be "story" or "article"'),
        (line_of(path, "0 8 * *"), "rules[1].digest", "5 fields"),
        (line_of(path, "22-07"), "rules[1].quiet_hours", "HH:MM-HH:MM"),
        (headers[2], "rules[2].query", "required"),
    ]
    result = run(tmp_path, "--config", CONFIG, "check")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    found = result.stderr.splitlines()
    assert len(found) == len(expected), result.stderr
    for (line, where, what), message in zip(expected, found, strict=True):
        m = PROBLEM.fullmatch(message)
        assert m, message
        assert (m["file"], int(m["line"]), m["where"]) == (CONFIG, line, where), message
        assert what in m["what"], message


def test_toml_syntax_error_names_its_line(tmp_path):
    path = write(tmp_path, '[monitor]\ntimezone = "UTC"\ninterval = 5 minutes\n')
    result = run(tmp_path, "--config", CONFIG, "check")
    assert result.returncode == 2
    [message] = result.stderr.splitlines()
    assert message.startswith(f"{CONFIG}:{line_of(path, '5 minutes')}: TOML syntax")


# ------------------------------------------------------------------ values that used to crash later

DEEP = "(" * 250 + "ukraine" + ")" * 250
LIMITS = f"""
    [monitor]
    interval = inf
    timeout = nan
    story_window = "999999d"
    health_channel = "nope"

    [channels]
    chat = "telegramm://${{TELEGRAM_TOKEN}}/4242"

    [[sources]]
    name = "fast"
    url = "https://example.org/rss"
    interval = "1s"

    [[sources]]
    name = "forever"
    url = "https://example.org/other"
    interval = "99999999999w"

    [[rules]]
    name = "deep"
    query = "{DEEP}"
    channels = ["chat"]

    [[rules]]
    name = "february"
    query = "ceasefire"
    digest = "0 8 31 2 *"
"""


def test_values_that_crashed_later_are_all_refused_at_once(tmp_path):
    """Each of these passed `check`, then crashed a poll, a digest or the whole CLI."""
    path = write(tmp_path, LIMITS)
    expected = [
        (line_of(path, "inf"), "monitor.interval", "not number inf"),
        (line_of(path, "nan"), "monitor.timeout", "not number nan"),
        (line_of(path, "999999d"), "monitor.story_window", 'at most "30d"'),
        (line_of(path, '"nope"'), "monitor.health_channel", '"nope" is not defined'),
        (line_of(path, "telegramm"), "channels.chat", 'unknown Apprise scheme "telegramm://"'),
        (line_of(path, '"1s"'), "sources[0].interval", "shorter than min_interval (10s)"),
        (line_of(path, "99999999999w"), "sources[1].interval", 'at most "3650d" (10 years)'),
        (line_of(path, "((((("), "rules[0].query", "nested more than 50 deep"),
        (line_of(path, "31 2"), "rules[1].digest", "never fires"),
    ]
    result = run(
        tmp_path, "--config", CONFIG, "check", env={"TELEGRAM_TOKEN": SECRETS["TELEGRAM_TOKEN"]}
    )
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    found = result.stderr.splitlines()
    assert len(found) == len(expected), result.stderr
    for (line, where, what), message in zip(expected, found, strict=True):
        m = PROBLEM.fullmatch(message)
        assert m, message
        assert (m["file"], int(m["line"]), m["where"]) == (CONFIG, line, where), message
        assert what in m["what"], message
    assert not leaks(result.stderr, SECRETS["TELEGRAM_TOKEN"])


def test_the_largest_accepted_values_poll_and_alert(tmp_path):
    """The bounds are safe: a poll at every maximum stores, matches and schedules its next one."""
    from tests.feeds import Item, rss
    from tests.loopback import LoopbackServer, Reply

    with LoopbackServer() as server:
        server.route("/rss", Reply(body=rss([Item("a1", "Ceasefire talks resume in Geneva")])))
        write(
            tmp_path,
            f"""
            [monitor]
            database = "monitor.db"
            interval = "3650d"
            retention = "3650d"
            history_retention = "3650d"
            story_window = "30d"
            failing_after = "3650d"

            [[sources]]
            name = "wire"
            url = "{server.url("/rss")}"

            [[sources]]
            name = "gone"
            url = "{server.url("/gone")}"

            [[rules]]
            name = "talks"
            query = "ceasefire"
            cooldown = "3650d"
            """,
        )
        assert run(tmp_path, "--config", CONFIG, "check").returncode == 0
        result = run(tmp_path, "--config", CONFIG, "once")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert "Ceasefire talks resume in Geneva" in result.stdout  # the alert, on standard output


# ------------------------------------------------------------------ secrets and ${VAR}

SECRETS = {
    "TELEGRAM_TOKEN": "123456789:AAHs3cretTokenValue-xyz",
    "HOOK_PASSWORD": "hunter2-s3cret",
    "SMTP_PASSWORD": "correct-horse-battery",
}
CHANNELS = """
    [channels]
    chat = "tgram://${TELEGRAM_TOKEN}/4242"
    hook = "json://news:${HOOK_PASSWORD}@127.0.0.1:8080/alerts"
    desk = "mailtos://desk:${SMTP_PASSWORD}@smtp.example.org?to=desk@example.org"

    [[rules]]
    name = "talks"
    query = "ukraine"
    channels = ["chat", "hook", "desk"]
"""


def leaks(output: str, secret: str) -> list[str]:
    """Pieces of `secret` (6+ characters, plain or URL-encoded) that appear in `output`."""
    pieces = {secret[i : i + 6] for i in range(len(secret) - 5)}
    pieces |= {quote(secret, safe=""), quote(secret)}
    return sorted(p for p in pieces if p in output)


def test_channel_secrets_from_the_environment_are_never_printed(tmp_path):
    write(tmp_path, CHANNELS)
    result = run(tmp_path, "--config", CONFIG, "check", env=SECRETS)
    assert result.returncode == 0, result.stderr
    assert "0 sources, 1 rules, 3 channels" in result.stdout
    for name in ("chat", "hook", "desk"):
        assert f"channel {name}: " in result.stdout
    assert "127.0.0.1" in result.stdout and "smtp.example.org" in result.stdout
    for secret in SECRETS.values():
        assert not leaks(result.stdout + result.stderr, secret), result.stdout


def test_secrets_are_masked_in_error_messages_too(tmp_path):
    write(tmp_path, CHANNELS + '\n[[sources]]\nname = "x"\nurl = "gopher://${HOOK_PASSWORD}/"\n')
    result = run(tmp_path, "--config", CONFIG, "check", env=SECRETS)
    assert result.returncode == 2
    assert 'sources[0].url: "gopher://***/" is not an http' in result.stderr
    for secret in SECRETS.values():
        assert not leaks(result.stdout + result.stderr, secret), result.stderr


def test_secret_with_url_punctuation_is_not_printed_in_pieces(tmp_path):
    write(tmp_path, '[channels]\nhook = "json://news:${HOOK_PASSWORD}@127.0.0.1:8080/alerts"\n')
    result = run(tmp_path, "--config", CONFIG, "check", env={"HOOK_PASSWORD": "p@ss/w0rd!"})
    assert result.returncode in (0, 2)
    assert not leaks(result.stdout + result.stderr, "p@ss/w0rd!"), result.stdout
    assert "percent-encode" in result.stdout


def test_unset_variable_is_named_with_its_line(tmp_path):
    if "TELEGRAM_TOKEN" in os.environ:  # it would be used, as it is for a user
        pytest.skip("TELEGRAM_TOKEN is set in this environment")
    path = write(tmp_path, CHANNELS)
    env = {k: v for k, v in SECRETS.items() if k != "TELEGRAM_TOKEN"}
    result = run(tmp_path, "--config", CONFIG, "check", env=env)
    assert result.returncode == 2
    [message] = result.stderr.splitlines()
    line = line_of(path, "${TELEGRAM_TOKEN}")
    assert message == (
        f"{CONFIG}:{line}: channels.chat: environment variable TELEGRAM_TOKEN is not set "
        "(used as ${TELEGRAM_TOKEN})"
    )


# ------------------------------------------------------------------ no file, and --help


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = run(tmp_path, "--config", "nowhere.toml", "check")
    assert result.returncode == 2
    assert result.stderr.startswith("nowhere.toml: cannot read the config file: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    result = run(tmp_path, "check")  # the default path, absent in an empty directory
    assert result.returncode == 2
    assert result.stderr.startswith(f"{CONFIG}: cannot read the config file: ")


def test_help_works_even_with_a_broken_config(tmp_path):
    write(tmp_path, BROKEN)
    for args, env in [
        (["--config", CONFIG, "--help"], {}),
        (["--help"], {"NEWS_MONITOR_CONFIG": CONFIG}),
        (["--config", CONFIG, "check", "--help"], {}),
    ]:
        result = run(tmp_path, *args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout and result.stderr == ""
    assert "check" in run(tmp_path, "--help").stdout


def test_installed_news_monitor_script_help(tmp_path):
    script = Path(sys.executable).parent / "news-monitor"
    if not script.exists():
        pytest.skip("the news-monitor script is not installed in this environment")
    write(tmp_path, BROKEN)
    env = {k: v for k, v in os.environ.items() if k != "NEWS_MONITOR_CONFIG"}
    result = subprocess.run(
        [str(script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
