"""Log output as an operator sees it: JSON lines or human lines, never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from monitor.runtime import logs as logs

SECRETS = ("SECRETVALUE", "hunter2pass", "p@ss/w0rd")
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in logs.QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logs.set_secrets(())
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_timestamp_level_event_and_fields() -> None:
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    log = logs.get_logger("monitor.pipeline")
    log.info("poll done", source="corriere-esteri", new=3, seconds=0.25)
    log.debug("not shown at info")
    logging.getLogger("aiohttp.client").warning("connection reset by %s", "peer")
    first, second = _lines(out)
    assert first["event"] == "poll done"
    assert first["level"] == "info"
    assert first["logger"] == "monitor.pipeline"
    assert first["source"] == "corriere-esteri" and first["new"] == 3 and first["seconds"] == 0.25
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert second == {
        "event": "connection reset by peer",
        "level": "warning",
        "logger": "aiohttp.client",
        "timestamp": second["timestamp"],
    }


def test_auto_is_json_off_a_terminal_and_human_on_one() -> None:
    plain = io.StringIO()
    logs.configure("auto", stream=plain)
    logs.get_logger("t").info("hello", n=1)
    assert json.loads(plain.getvalue())["event"] == "hello"

    tty = Tty()
    logs.configure("auto", stream=tty)
    logs.get_logger("t").info("hello", n=1)
    text = tty.getvalue()
    assert "hello" in text and "\x1b[" in text  # coloured console line, not JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_human_format_off_a_terminal_has_no_colours() -> None:
    out = io.StringIO()
    logs.configure("human", stream=out)
    logs.get_logger("t").warning("feed slow", source="ansa")
    text = out.getvalue()
    assert "feed slow" in text and "source=ansa" in text and "warning" in text
    assert "\x1b[" not in text


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_secrets_never_reach_the_output(fmt: str) -> None:
    out = Tty() if fmt == "human" else io.StringIO()
    logs.configure(fmt, "debug", secrets=SECRETS, stream=out)
    log = logs.get_logger("monitor.notify")
    log.info("sending", token="SECRETVALUE", nested={"auth": ["x", "hunter2pass"]})
    log.info("channel chat failed: 401 for token SECRETVALUE and p@ss/w0rd")
    log.info("using mailtos://desk:p%40ss%2Fw0rd@smtp.example.org?to=desk@example.org")
    log.warning("retrying", url="mailtos://desk:notlisted@smtp.example.org")
    log.warning("telegram", target=f"tgram://{BOT_TOKEN}/12345")
    logging.getLogger("apprise").warning("failed https://hooks.example/T0/SECRETVALUE")
    logging.getLogger("apscheduler.executors").error("job raised %s", "hunter2pass")
    try:
        raise RuntimeError("cannot reach https://bot:SECRETVALUE@api.example.org")
    except RuntimeError:
        log.exception("poll crashed")
        logging.getLogger("aiohttp.client").exception("hook crashed")
    text = out.getvalue()
    for secret in (*SECRETS, "p%40ss%2Fw0rd", "notlisted", BOT_TOKEN.split(":")[1]):
        assert secret not in text, secret
    assert "mailtos://desk:***@smtp.example.org" in text
    assert "https://hooks.example/T0/***" in text
    assert "tgram://123456789:***/12345" in text
    assert "poll crashed" in text and "hook crashed" in text and "RuntimeError" in text
    if fmt == "json":
        events = {line["event"]: line for line in _lines(out)}
        assert events["sending"]["token"] == "***"
        assert events["sending"]["nested"] == {"auth": ["x", "***"]}
        assert events["failed https://hooks.example/T0/***"]["logger"] == "apprise"


def test_library_loggers_quiet_unless_debug() -> None:
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    logging.getLogger("apprise").info("loaded 120 plugins")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("apprise").warning("notification failed")
    assert [line["event"] for line in _lines(out)] == ["notification failed"]

    out = io.StringIO()
    logs.configure("json", "debug", stream=out)
    logging.getLogger("apscheduler.scheduler").info("Added job")
    assert [line["event"] for line in _lines(out)] == ["Added job"]


def test_reconfigure_replaces_handler_and_secrets() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("json", secrets=["oldsecret"], stream=first)
    logs.configure("json", secrets=["newsecret"], stream=second)
    logs.get_logger("t").info("values oldsecret newsecret")
    assert first.getvalue() == ""
    # a value that once was a secret stays masked: a reload never unmasks it
    assert _lines(second)[0]["event"] == "values *** ***"
    logs.set_secrets(["oldsecret"])
    logs.get_logger("t").info("after reload oldsecret")
    assert _lines(second)[1]["event"] == "after reload ***"
    assert logs.mask("x oldsecret y") == "x *** y"


def test_bad_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError):
        logs.configure("xml")
    with pytest.raises(ValueError):
        logs.configure("json", "loud")
