"""Alerts through Apprise, asserted on what real loopback receivers got."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.delivery.channels import Message, describe, send
from tests.receivers import SmtpReceiver, WebhookReceiver

MESSAGE = Message(
    title="Ukraine: ceasefire talks resume in Abu Dhabi",
    text=(
        "Ukraine: ceasefire talks resume in Abu Dhabi\n"
        "Corriere della Sera, 14:05\n"
        "Negotiators met to discuss security guarantees.\n"
        "https://www.example.org/esteri/talks"
    ),
    markdown=(
        "**Ukraine: ceasefire talks resume in Abu Dhabi**\n"
        "_Corriere della Sera, 14:05_\n"
        "Negotiators met to discuss **security guarantees**.\n"
        "[Read](https://www.example.org/esteri/talks)"
    ),
    html="<b>Ukraine: ceasefire talks resume in Abu Dhabi</b>",
)
SECRET = "FAKE-T0KEN-d9f8a7"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(user="alice", password="s3cret-pass") as receiver:
        yield receiver


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def test_email_arrives_with_subject_and_clean_plain_text(smtp: SmtpReceiver) -> None:
    delivery = send(smtp.url(to="desk@example.org"), MESSAGE, timeout=5)

    assert delivery.ok, delivery.error
    [mail] = smtp.wait_for(1, timeout=5)
    assert mail.subject == MESSAGE.title
    assert mail.rcpt_tos == ["desk@example.org"]
    assert mail.authenticated_as == "alice"
    assert mail.content_types == ["text/plain"]
    assert _lines(mail.text) == _lines(MESSAGE.text)
    assert "**" not in mail.text and "<" not in mail.text


def test_email_with_wrong_password_fails_without_showing_it(smtp: SmtpReceiver) -> None:
    url = smtp.url().replace("s3cret-pass", SECRET)

    delivery = send(url, MESSAGE, timeout=5)

    assert not delivery.ok
    assert delivery.error and "127.0.0.1" in delivery.error
    assert SECRET not in delivery.error
    assert smtp.messages == []


def test_json_webhook_gets_title_and_plain_text(hook: WebhookReceiver) -> None:
    delivery = send(hook.url("/alerts"), MESSAGE, timeout=5)

    assert delivery.ok, delivery.error
    [post] = hook.wait_for(1, timeout=5)
    assert post.path == "/alerts"
    assert post.payload["title"] == MESSAGE.title
    assert post.payload["message"] == MESSAGE.text


def test_format_in_the_url_selects_the_markdown_body(hook: WebhookReceiver) -> None:
    assert send(hook.url("/md") + "?format=markdown", MESSAGE, timeout=5).ok

    [post] = hook.wait_for(1, timeout=5)
    assert post.payload["message"] == MESSAGE.markdown


def test_chat_service_gets_markdown_by_default(hook: WebhookReceiver) -> None:
    # Rocket.Chat renders Markdown; its incoming-webhook mode can point at our receiver.
    url = f"rocket://hookid/{SECRET.replace('-', '')}@127.0.0.1:{hook.port}/%23news"

    delivery = send(url, MESSAGE, timeout=5)

    assert delivery.ok, delivery.error
    [post] = hook.wait_for(1, timeout=5)
    assert "**security guarantees**" in post.payload["text"]
    assert "[Read](https://www.example.org/esteri/talks)" in post.payload["text"]


def test_failing_webhook_gives_useful_error_without_secret(hook: WebhookReceiver) -> None:
    hook.mode = "error"
    url = hook.url(auth=f"user:{SECRET}@") + f"?+X-Api-Key={SECRET}x&retry=3"

    delivery = send(url, MESSAGE, timeout=5)

    assert not delivery.ok
    assert delivery.error and "500" in delivery.error
    assert "127.0.0.1" in delivery.error
    assert SECRET not in delivery.error
    assert len(hook.attempts) == 1  # retry=3 overridden: the outbox retries, not Apprise


def test_the_reason_of_a_failure_survives_logging_at_error(hook: WebhookReceiver) -> None:
    """`once` logs at `error`: Apprise's warnings, where a failed send's reason is read, must
    still be raised (and not printed)."""
    import io

    from monitor.runtime import logs

    hook.mode = "error"
    out = io.StringIO()
    logs.configure("human", level="error", stream=out)
    try:
        delivery = send(hook.url(), MESSAGE, timeout=5)
    finally:
        logs.configure("human", level="info", stream=io.StringIO())
    assert not delivery.ok
    assert delivery.error and "500" in delivery.error
    assert "500" not in out.getvalue()  # below the level: not written


def test_dropped_connection_is_a_failed_delivery(hook: WebhookReceiver) -> None:
    hook.mode = "close"

    delivery = send(hook.url(), MESSAGE, timeout=5)

    assert not delivery.ok
    assert delivery.error and "connection" in delivery.error.lower()


def test_receiver_down_fails_then_delivers_once_when_back(
    hook: WebhookReceiver, tmp_path: Path
) -> None:
    url = hook.url(auth=f"user:{SECRET}@")
    hook.down()

    failed = send(url, MESSAGE, timeout=2)

    assert not failed.ok
    assert failed.error and SECRET not in failed.error
    hook.up()
    assert send(url, MESSAGE, timeout=5, storage_path=str(tmp_path)).ok
    assert len(hook.wait_for(1, timeout=5)) == 1
    assert len(hook.attempts) == 1


def test_receiver_that_never_answers_is_cut_off_at_the_timeout(hook: WebhookReceiver) -> None:
    hook.mode = "hang"

    delivery = send(hook.url(), MESSAGE, timeout=1)  # pytest-timeout bounds the test

    assert not delivery.ok
    assert delivery.error and "no answer within 1s" in delivery.error


@pytest.mark.parametrize(
    "url",
    [f"nonsense://{SECRET}/abc", f"tgram://{SECRET}/123", "json://", "mailto://"],
)
def test_invalid_url_is_reported_without_secrets(url: str) -> None:
    delivery = send(url, MESSAGE, timeout=1)

    assert not delivery.ok
    assert delivery.error and delivery.error.startswith("not a valid Apprise URL")
    assert SECRET not in delivery.error
    assert SECRET not in describe(url)


def test_describe_masks_passwords_tokens_and_header_values() -> None:
    shown = describe(f"json://user:{SECRET}@127.0.0.1:9/hook?+X-Token={SECRET}&format=text")
    assert SECRET not in shown
    assert shown.startswith("json://user:")
    assert "127.0.0.1:9/hook" in shown and "format=text" in shown

    chat = describe(f"tgram://123456789:{SECRET}AAAAAAAAAAAAAAAAAAAAA/12345")
    assert chat.startswith("tgram://") and SECRET not in chat


def test_apprise_config_file_target(hook: WebhookReceiver, tmp_path: Path) -> None:
    config = tmp_path / "apprise.yml"
    config.write_text(f"version: 1\nurls:\n  - {hook.url('/from-config', auth=f'u:{SECRET}@')}\n")

    delivery = send(str(config), MESSAGE, timeout=5)

    assert delivery.ok, delivery.error
    [post] = hook.wait_for(1, timeout=5)
    assert post.path == "/from-config"
    assert post.payload["message"] == MESSAGE.text
    shown = describe(str(config))
    assert str(config) in shown and "/from-config" in shown and SECRET not in shown

    hook.mode = "error"
    failed = send(str(config), MESSAGE, timeout=5)
    assert not failed.ok and failed.error and "500" in failed.error
    assert SECRET not in failed.error


def test_missing_or_empty_config_file_is_reported(tmp_path: Path) -> None:
    missing = send(str(tmp_path / "nope.yml"), MESSAGE, timeout=1)
    assert not missing.ok and missing.error and "not found" in missing.error

    empty = tmp_path / "empty.yml"
    empty.write_text("version: 1\nurls:\n  - nonsense://x\n")
    bad = send(str(empty), MESSAGE, timeout=1)
    assert not bad.ok and bad.error and "no valid notification URL" in bad.error
