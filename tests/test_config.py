"""Config loading as a user meets it: the shipped file, broken files, secrets, durations."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from monitor.config.lines import Locator
from monitor.config.loader import Config, default_config_path, load, parse_duration
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "monitor.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env=env or {})
    return info.value.problems


def line_of(path: Path, snippet: str) -> int:
    """1-based line of the only line containing `snippet`."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if snippet in line]
    assert len(hits) == 1, (snippet, hits)
    return hits[0]


# ------------------------------------------------------------------ the shipped config


def test_shipped_config_loads_and_follows_the_talks():
    config = load(SHIPPED, env={})
    hosts = {s.url.split("/")[2] for s in config.sources}
    assert {
        "www.corriere.it",
        "xml2.corriereobjects.it",
        "www.ansa.it",
        "www.repubblica.it",
        "www.ilpost.it",
        "feeds.bbci.co.uk",
        "www.theguardian.com",
        "kyivindependent.com",
    } <= hosts
    assert "https://www.corriere.it/dynamic-feed/rss/section/Esteri.xml" in {
        s.url for s in config.sources
    }
    assert dict(config.channels) == {}  # alerts go to standard output out of the box
    assert all(rule.channels == () for rule in config.rules)
    queries = " ".join(rule.query.lower() for rule in config.rules)
    for words in ("garanzie di sicurezza", "security guarantees", "cessate il fuoco", "tregua"):
        assert words in queries
    for words in ("ceasefire", "peace talks", "negoziat", "colloqui", "abu dhabi"):
        assert words in queries
    assert config.settings.timezone == "Europe/Rome"
    assert config.settings.interval == 300
    assert config.secrets == frozenset()


def test_shipped_example_channels_are_valid_when_uncommented(tmp_path):
    """The commented channel examples are what users copy: they must pass as written."""
    text = SHIPPED.read_text()
    block = text.split("[channels]\n", 1)[1].split("\n\n", 1)[0]  # not a source's `# url =`
    examples = [ln[2:] for ln in block.splitlines() if ln.startswith("# ") and '= "' in ln]
    examples = [ln for ln in examples if "://" in ln.split("#")[0]]
    assert len(examples) >= 5
    text = text.replace("[channels]\n", "[channels]\n" + "\n".join(examples) + "\n")
    env = {name: f"value-of-{name.lower()}" for name in ("TELEGRAM_TOKEN", "TELEGRAM_CHAT_ID")}
    env |= {"SMTP_USER": "desk-user", "SMTP_PASSWORD": "p@ss/word!", "WEBHOOK_HOST": "hooks.lan"}
    env |= {"SLACK_TOKEN_A": "ta1", "SLACK_TOKEN_B": "tb2", "SLACK_TOKEN_C": "tc3"}
    env |= {"MATRIX_USER": "bot", "MATRIX_PASSWORD": "matrix-pw"}
    config = load(write(tmp_path, text), env=env)
    assert config.channels["desk"].startswith("mailtos://desk-user:p@ss/word!@smtp.example.org")
    assert (
        config.mask(config.channels["desk"])
        == "mailtos://***:***@smtp.example.org?to=desk@example.org"
    )


SEED_TITLE = (
    "Garanzie di sicurezza per Kiev, una reazione in tre «step»: gli Usa agirebbero in 72 ore "
    "in caso di nuovo attacco russo"
)
SEED_TEXT = (
    "Nuovi colloqui Mosca-Kiev ad Abu Dhabi (presenti anche gli Usa). Pioggia di missili "
    "sull'Ucraina durante la visita di Rutte"
)


@pytest.mark.parametrize(
    ("title", "text", "rules"),
    [
        (SEED_TITLE, SEED_TEXT, {"security-guarantees", "peace-talks", "abu-dhabi-talks"}),
        ("Zelensky: le garanzie di sicurezza prima di ogni tregua", "", {"security-guarantees",
         "ceasefire"}),
        ("Russia and Ukraine agree to an energy ceasefire", "", {"ceasefire"}),
        ("Negoziati, Putin apre a nuovi colloqui con gli Usa", "", {"peace-talks"}),
        ("Israel and Hamas agree to a ceasefire in Gaza", "Talks resume in Doha.", set()),
        ("Abu Dhabi hosts a Formula 1 race", "", set()),
    ],
)  # fmt: skip
def test_shipped_rules_catch_the_talks_and_nothing_else(title, text, rules):
    from monitor.rules.query import Document, parse_query

    config = load(SHIPPED, env={})
    doc = Document(title=title, text=text, source="corriere-esteri", language="it")
    assert {r.name for r in config.rules if parse_query(r.query).match(doc)} == rules


# ------------------------------------------------------------------ a file full of mistakes

BROKEN = """
    [monitor]
    interval = "5 minutes"
    timezone = "Europe/Roma"
    concurrency = "many"
    log_fromat = "json"

    [channels]
    desk = "mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.org?to=a@example.org"

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

    [[sources]]
    name = "nourl"

    [[rules]]
    name = "talks"
    query = '''
    (ukraine OR kyiv
    AND ceasefire'''
    chanels = ["desk"]

    [[rules]]
    name = "other"
    query = "ceasefire"
    channels = ["desk", "dsek"]
    cooldown = "1 hour"
    digest = "0 8 * *"
    quiet_hours = "22-07"

    [[rules]]
    name = "noquery"

    [[source]]
    name = "typo-table"
"""


def test_every_mistake_is_reported_at_once_with_its_line(tmp_path):
    path = write(tmp_path, BROKEN)
    secret_user = "alice-the-smtp-user"
    found = problems(path, env={"SMTP_USER": secret_user})
    h = line_of  # short alias
    headers = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.startswith("[[")]
    expected = [
        (h(path, "5 minutes"), "monitor.interval", 'write "5m"'),
        (h(path, "Europe/Roma"), "monitor.timezone", "not a time zone"),
        (h(path, '"many"'), "monitor.concurrency", "whole number"),
        (
            h(path, "log_fromat"),
            "monitor.log_fromat",
            'unknown key "log_fromat" (did you mean "log_format"?)',
        ),
        (h(path, "desk ="), "channels.desk", "SMTP_PASSWORD is not set"),
        (h(path, "ftp://"), "sources[0].url", "not an http:// or https:// URL"),
        (h(path, "example.org/bbc") - 1, "sources[1].name", 'duplicate source name "bbc"'),
        (h(path, 'kind = "html"'), "sources[2].kind", "needs `links`"),
        (headers[3], "sources[3].url", "required"),
        (h(path, "query = '''"), "rules[0].query", "at character"),
        (
            h(path, "chanels"),
            "rules[0].chanels",
            'unknown key "chanels" (did you mean "channels"?)',
        ),
        (
            h(path, '"dsek"'),
            "rules[1].channels[1]",
            'not defined in [channels]; did you mean "desk"',
        ),
        (h(path, "1 hour"), "rules[1].cooldown", 'write "1h"'),
        (h(path, "0 8 * *"), "rules[1].digest", "5 fields"),
        (h(path, "22-07"), "rules[1].quiet_hours", "HH:MM-HH:MM"),
        (headers[6], "rules[2].query", "required"),
        (headers[7], "source", 'did you mean "sources"?'),
    ]
    assert len(found) == len(expected), "\n".join(found)
    for (line, where, what), message in zip(expected, found, strict=True):
        prefix = f"{path}:{line}: {where}: "
        assert message.startswith(prefix) and what in message, (prefix, what, message)
    assert all(secret_user not in m for m in found)


def test_syntax_error_names_file_line_and_hints_at_quotes(tmp_path):
    path = write(tmp_path, '[monitor]\ntimezone = "UTC"\ninterval = 5 minutes\n')
    [message] = problems(path)
    assert message.startswith(f"{path}:3: TOML syntax")
    assert "quotes" in message


def test_missing_file_and_bad_encoding(tmp_path):
    [message] = problems(tmp_path / "nope.toml")
    assert message.startswith(f"{tmp_path / 'nope.toml'}: cannot read")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[monitor]\n\ntimezone = "Europe/Rome" # citt\xe0\n')
    [message] = problems(path)
    assert message.startswith(f"{path}:3: ") and "UTF-8" in message


def test_wrong_types_and_shapes(tmp_path):
    path = write(
        tmp_path,
        """
        sources = "bbc"
        [monitor]
        health_port = 70000
        max_bytes = "ten megabytes"
        log_format = "xml"
        [[rules]]
        name = "r"
        query = "ukraine"
        urgent = "yes"
        channels = "desk"
        alert = "stroy"
        """,
    )
    found = "\n".join(problems(path))
    assert f"{path}:1: sources: must be a list of tables: write [[sources]]" in found
    assert f"{path}:3: monitor.health_port: must be at most 65535" in found
    assert f'{path}:4: monitor.max_bytes: "ten megabytes" is not a size' in found
    assert f'{path}:5: monitor.log_format: must be "auto", "human" or "json"' in found
    assert f'{path}:9: rules[0].urgent: must be true or false, not text "yes"' in found
    assert f"{path}:10: rules[0].channels: must be a list" in found
    assert f'{path}:11: rules[0].alert: must be "story" or "article"' in found


def test_feed_with_page_selectors_and_bad_selector(tmp_path):
    path = write(
        tmp_path,
        """
        [[sources]]
        name = "feed"
        url = "https://example.org/rss"
        links = "a.story"
        [[sources]]
        name = "page"
        kind = "html"
        url = "https://example.org/"
        links = "a[href"
        """,
    )
    found = problems(path)
    assert found[0].startswith(f"{path}:4: sources[0].links: `links` applies only to pages")
    assert found[1].startswith(f'{path}:9: sources[1].links: "a[href" is not a CSS selector')


# ------------------------------------------------------------------ env and secrets


def test_env_substitution_in_any_string_and_masking(tmp_path):
    path = write(
        tmp_path,
        """
        [monitor]
        database = "${DATA_DIR}/monitor.db"
        [channels]
        chat = "tgram://${TELEGRAM_TOKEN}/${TELEGRAM_CHAT_ID}"
        literal = "json://hooks.lan/path?x=$${NOT_A_VAR}"
        [[sources]]
        name = "feed"
        url = "https://${FEED_HOST}/rss"
        """,
    )
    env = {"DATA_DIR": "/srv/nm", "TELEGRAM_TOKEN": "123:ABC/def+ghi", "TELEGRAM_CHAT_ID": "42"}
    config = load(path, env=env | {"FEED_HOST": "news.example.org"})
    assert config.settings.database == Path("/srv/nm/monitor.db")
    assert config.channels["chat"] == "tgram://123:ABC/def+ghi/42"
    assert config.channels["literal"] == "json://hooks.lan/path?x=${NOT_A_VAR}"
    assert config.sources[0].url == "https://news.example.org/rss"
    assert "123:ABC/def+ghi" in config.secrets
    # the token, also URL-encoded; "42" is too short to mask without mangling ordinary text
    log = "sent via tgram://123:ABC/def+ghi/42 (123%3AABC%2Fdef%2Bghi) in 42 ms"
    assert config.mask(log) == "sent via tgram://***/42 (***) in 42 ms"


def test_unset_variable_is_named_but_set_secrets_never_printed(tmp_path):
    path = write(
        tmp_path,
        """
        [channels]
        desk = "mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.org"
        [[sources]]
        name = "x"
        url = "gopher://${SMTP_PASSWORD}.example.org/"
        [[rules]]
        name = "r"
        query = "ukraine"
        channels = ["desk", "${CHANNEL}"]
        """,
    )
    found = problems(path, env={"SMTP_PASSWORD": "hunter2-secret"})
    text = "\n".join(found)
    assert f"{path}:2: channels.desk: environment variable SMTP_USER is not set" in text
    assert f"{path}:9: rules[0].channels[1]: environment variable CHANNEL is not set" in text
    assert f'{path}:5: sources[0].url: "gopher://***.example.org/" is not an http' in text
    assert "hunter2" not in text


def test_default_config_path():
    assert default_config_path({}) == Path("config/monitor.toml")
    assert default_config_path({"NEWS_MONITOR_CONFIG": ""}) == Path("config/monitor.toml")
    assert default_config_path({"NEWS_MONITOR_CONFIG": "/etc/nm.toml"}) == Path("/etc/nm.toml")


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1w", 604800),
     ("1.5h", 5400), ("1d2h3m4s", 93784), (" 10m ", 600), ("0s", 0)],
)  # fmt: skip
def test_parse_duration_accepts(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "hint"),
    [("5 minutes", '"5m"'), ("1 hour", '"1h"'), ("30 sec", '"30s"'), ("2 giorni", '"2d"'),
     ("10", '"30s", "5m"'), ("", '"30s", "5m"'), ("5x", '"30s"'), ("30m1h", '"30s"'),
     ("5m5m", '"30s"'), ("m", '"30s"')],
)  # fmt: skip
def test_parse_duration_rejects_with_the_expected_form(text, hint):
    with pytest.raises(ValueError, match="is not a duration") as info:
        parse_duration(text)
    assert hint in str(info.value)


def test_defaults_inheritance_and_normalized_values(tmp_path):
    path = write(
        tmp_path,
        """
        [monitor]
        interval = 90
        max_bytes = "512 KB"
        health_port = 8787
        [[sources]]
        name = "a"
        url = "https://example.org/a"
        language = "IT"
        [[sources]]
        name = "b"
        url = "https://example.org/b"
        interval = "1h30m"
        [[rules]]
        name = "weekday-digest"
        query = "ukraine"
        digest = "0 8 * * 1-5"
        quiet_hours = "7:00-9:30"
        cooldown = 0
        [[rules]]
        name = "sunday"
        query = "ukraine"
        digest = "*/15 8-18 1,15 jan-jun 0,7"
        """,
    )
    config = load(path, env={})
    assert config.settings.max_bytes == 512 * 1024 and config.settings.health_port == 8787
    assert config.settings.retention == 90 * 86400 and config.settings.max_attempts == 8
    assert [s.interval for s in config.sources] == [90.0, 5400.0]
    assert config.sources[0].language == "it" and config.sources[0].kind == "feed"
    weekday, sunday = config.rules
    assert weekday.digest == "0 8 * * mon,tue,wed,thu,fri"  # crontab 1-5, same in APScheduler
    assert str(weekday.quiet_hours) == "07:00-09:30" and weekday.cooldown == 0
    assert sunday.digest == "*/15 8-18 1,15 jan-jun sun"
    assert weekday.channels == () and weekday.alert == "story"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.settings = config.settings  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.channels["x"] = "json://x"  # type: ignore[index]


def test_empty_file_is_a_valid_config(tmp_path):
    config = load(write(tmp_path, ""), env={})
    assert isinstance(config, Config)
    assert config.sources == () and config.rules == () and dict(config.channels) == {}
    assert config.settings.database == Path("data/monitor.db")


@pytest.mark.parametrize(
    ("digest", "complaint"),
    [("61 * * * *", 'minute "61"'), ("0 24 * * *", 'hour "24"'), ("0 8 0 * *", "day of month"),
     ("0 8 * 13 *", 'month "13"'), ("0 8 * * fry", 'day of week "fry"'), ("0 8 * * 5-1", "5-1"),
     ("0 8 * * */0", "*/0"), ("@daily", "5 fields")],
)  # fmt: skip
def test_bad_digest_says_which_field(tmp_path, digest, complaint):
    path = write(tmp_path, f'[[rules]]\nname = "r"\nquery = "x"\ndigest = "{digest}"\n')
    [message] = problems(path)
    assert message.startswith(f"{path}:4: rules[0].digest: ") and complaint in message


def test_channel_may_be_an_apprise_config_file(tmp_path):
    apprise_file = tmp_path / "apprise.yml"
    apprise_file.write_text("urls:\n  - json://localhost\n")
    path = write(
        tmp_path,
        f"""
        [channels]
        mine = "{apprise_file}"
        gone = "{tmp_path / "missing.yml"}"
        """,
    )
    [message] = problems(path)
    assert message.startswith(f"{path}:3: channels.gone: is neither an Apprise URL")
    path.write_text(f'[channels]\nmine = "{apprise_file}"\n')
    assert load(path, env={}).channels["mine"] == str(apprise_file)


def test_locator_ignores_lookalike_lines_inside_multiline_strings():
    text = textwrap.dedent(
        '''
        [[rules]]
        name = "a"
        query = """
        [[rules]]
        name = "fake" \\"""
        """
        channels = ["x"]
        [[rules]]
        name = 'b'
        '''
    ).lstrip("\n")
    locator = Locator(text)
    assert locator.line(("rules", 0, "name")) == 2
    assert locator.line(("rules", 0, "channels")) == 7
    assert locator.line(("rules", 1, "name")) == 9
    assert locator.line(("rules", 1, "query")) == 8  # absent key: the table header
    assert locator.line(("rules", 2, "query")) == 1  # nothing better: the first line


# ------------------------------------------------------------------ limits: refused here, not later

SOURCE = '[[sources]]\nname = "a"\nurl = "https://example.org/a"\n'
NOT_A_DURATION = 'must be a duration such as "5m" (or seconds), not '


@pytest.mark.parametrize(
    ("value", "complaint"),
    [("inf", NOT_A_DURATION + "number inf"), ("nan", NOT_A_DURATION + "number nan"),
     ('"99999999999w"', 'must be at most "3650d" (10 years), not text "99999999999w"'),
     ("1" + "0" * 400, 'must be at most "3650d" (10 years), not number 1' + "0" * 46 + "...")],
)  # fmt: skip
def test_interval_must_be_finite_and_at_most_ten_years(tmp_path, value, complaint):
    """These crashed the first poll with an OverflowError (or ValueError) traceback."""
    path = write(tmp_path, f"[monitor]\ninterval = {value}\n{SOURCE}interval = {value}\n")
    assert problems(path) == [
        f"{path}:2: monitor.interval: {complaint}",
        f"{path}:6: sources[0].interval: {complaint}",
    ]


@pytest.mark.parametrize(
    ("line", "complaint"),
    [("timeout = nan", NOT_A_DURATION + "number nan"),
     ("failing_after = inf", NOT_A_DURATION + "number inf"),
     ('story_window = "999999d"', 'must be at most "30d", not text "999999d"'),
     ('story_window = "31d"', 'must be at most "30d", not text "31d"'),
     ('retention = "3651d"', 'must be at most "3650d" (10 years), not text "3651d"')],
)  # fmt: skip
def test_other_durations_are_bounded_too(tmp_path, line, complaint):
    """A story_window of "999999d" made every poll fail: `now - window` is before year 1."""
    path = write(tmp_path, f"[monitor]\n{line}\n")
    assert problems(path) == [f"{path}:2: monitor.{line.split()[0]}: {complaint}"]


def test_the_largest_durations_load(tmp_path):
    text = '[monitor]\nstory_window = "30d"\nretention = "3650d"\nhistory_retention = "3650d"\n'
    settings = load(write(tmp_path, text + 'interval = "3650d"\n'), env={}).settings
    assert (settings.story_window, settings.interval) == (30 * 86400, 3650 * 86400)


def test_interval_below_min_interval_is_refused_unless_lowered(tmp_path):
    path = write(tmp_path, f'[monitor]\ninterval = "1s"\n{SOURCE}interval = "9s"\n')
    why = "is shorter than min_interval (10s): polling"
    found = problems(path)
    assert [m.split(why)[0] for m in found] == [
        f"{path}:2: monitor.interval: ",
        f"{path}:6: sources[0].interval: ",
    ]
    assert all("lower [monitor] min_interval" in m for m in found)
    path.write_text(f'[monitor]\ninterval = "1s"\nmin_interval = "1s"\n{SOURCE}interval = "9s"\n')
    config = load(path, env={})
    assert config.settings.min_interval == 1 and config.sources[0].interval == 9


def test_a_short_source_interval_is_reported_beside_its_other_mistakes(tmp_path):
    path = write(tmp_path, '[[sources]]\nname = "a"\nurl = "ftp://example.org/a"\ninterval = 2\n')
    assert [m.split(": ")[1] for m in problems(path)] == ["sources[0].url", "sources[0].interval"]


def test_an_invalid_monitor_key_hides_no_other_problem(tmp_path):
    """The [monitor] table's valid keys are still checked against the rest of the file."""
    path = write(
        tmp_path,
        """
        [monitor]
        interval = inf
        health_channel = "nope"
        lexicon = ["missing.tsv"]
        retention = "1 year"
        history_retention = "30d"
        min_interval = "1 s"
        [channels]
        ops = "json://localhost/"
        """,
    )
    found = problems(path)
    assert [m.split(": ")[1] for m in found] == [
        "monitor.interval",
        "monitor.health_channel",
        "monitor.lexicon[0]",
        "monitor.retention",
        "monitor.min_interval",
    ]  # not history_retention: it is compared with a retention that is itself wrong
    assert 'channel "nope" is not defined in [channels]' in found[1]


@pytest.mark.parametrize("digest", ["0 8 31 2 *", "0 8 30 feb *", "30 9 31 4,6,9,11 mon-fri"])
def test_digest_that_never_fires_is_refused(tmp_path, digest):
    path = write(tmp_path, f'[[rules]]\nname = "r"\nquery = "x"\ndigest = "{digest}"\n')
    assert problems(path) == [
        f'{path}:4: rules[0].digest: "{digest}" never fires: no date in the next 5 years '
        "has this day of month, month and day of week"
    ]
    path.write_text('[[rules]]\nname = "r"\nquery = "x"\ndigest = "0 8 29 2 *"\n')
    assert load(path, env={}).rules[0].digest == "0 8 29 2 *"  # leap years only, but it fires


@pytest.mark.parametrize(
    ("query", "at"),
    [("(" * 250 + "ukraine" + ")" * 250, 51), ("ukraine " + "NOT " * 400 + "x", 9 + 4 * 50),
     ("title:" * 300 + "kyiv", 1 + 6 * 50)],
)  # fmt: skip
def test_deeply_nested_query_is_refused_on_its_line(tmp_path, query, at):
    """250 parentheses used to give a 3,000-line RecursionError traceback."""
    path = write(tmp_path, f'[[rules]]\nname = "deep"\nquery = "{query}"\n')
    [message] = problems(path)
    prefix = f"{path}:3: rules[0].query: nested more than 50 deep (parentheses, NOT, field:)"
    assert message.startswith(f"{prefix} at character {at} "), message
    nested = "(" * 50 + "ukraine" + ")" * 50
    path.write_text(f'[[rules]]\nname = "deep"\nquery = "{nested}"\n')
    assert load(path, env={}).rules[0].query == nested


def test_unknown_apprise_scheme_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
        [channels]
        chat = "telegramm://${TOKEN}/42"
        hook = "https://hooks.example.org/news"
        ok = "JSON://localhost/news"
        [[rules]]
        name = "r"
        query = "ukraine"
        channels = ["chat", "hook", "ok"]
        """,
    )
    found = problems(path, env={"TOKEN": "123456:very-secret-token"})
    assert found == [
        f'{path}:2: channels.chat: unknown Apprise scheme "telegramm://"',
        f'{path}:3: channels.hook: unknown Apprise scheme "https://" (for a web hook write '
        "json://, form:// or xml://)",
    ]  # and the rule that names them gets no follow-on "not defined" error
