"""Alerts into a real Matrix room: a Synapse homeserver on 127.0.0.1, read back as another user.

Skips when Synapse is not installed (`bash .ci/install-synapse` installs it into .venv-synapse).
Everything asserted is what the reader's client would get from the server, not what was sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.render import render_alert
from monitor.delivery.channels import send
from monitor.models import Article, Match, Message, Rule
from tests.synapse import MatrixError, Synapse, synapse_python

LOGIN = "/_matrix/client/v3/login"


def _alert(headline: str, terms: tuple[str, ...]) -> Message:
    """A real rendered alert, as the daemon would send it."""
    article = Article(
        source="corriere",
        guid=headline,
        url="https://www.example.org/esteri/talks?id=7&lang=it",
        title=headline,
        text="Negotiators met in Abu Dhabi to discuss a ceasefire and security guarantees.",
        published=datetime(2026, 11, 25, 13, 5, tzinfo=UTC),
    )
    return render_alert(
        article,
        Match(rule="ukraine", terms=terms),
        source_title="Corriere della Sera",
        rule=Rule(name="ukraine", query='ceasefire OR "Abu Dhabi"'),
        timezone="Europe/Rome",
    )


@pytest.fixture(scope="module")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    python = synapse_python()
    if python is None:
        pytest.skip("Synapse is not installed (bash .ci/install-synapse)")
    with Synapse(python, tmp_path_factory.mktemp("synapse")) as server:
        yield server


class Account:
    """A user on the homeserver, with a password no test writes twice."""

    def __init__(self, hs: Synapse, name: str) -> None:
        self.name = name
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.token = hs.register(name, self.password)
        self.user_id = hs.user_id(name)

    def url(self, hs: Synapse, room: str, password: str | None = None) -> str:
        """The Apprise URL: matrix:// is plain HTTP (matrixs:// would be HTTPS)."""
        return f"matrix://{self.name}:{password or self.password}@127.0.0.1:{hs.port}/{room}"


def _from(events: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    return [e["content"] for e in events if e["sender"] == sender]


def test_alerts_arrive_in_a_room_once_each_and_the_login_is_reused(
    homeserver: Synapse, tmp_path: Path
) -> None:
    hs = homeserver
    reader = Account(hs, "reader")
    bot = Account(hs, "bot")
    room = hs.api(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "room_alias_name": "ukraine-desk"},
        token=reader.token,
    )["room_id"]
    storage = str(tmp_path / "apprise")
    first = _alert("Ukraine: ceasefire talks resume in Abu Dhabi", ("ceasefire", "Abu Dhabi"))
    second = _alert("Ceasefire holds for a second night", ("ceasefire",))
    logins_before = hs.requests("POST", LOGIN)
    target = bot.url(hs, "#ukraine-desk")

    sent = [send(target, m, timeout=15, storage_path=storage) for m in (first, second)]

    assert [d.error for d in sent] == [None, None]
    got = _from(hs.messages(room, reader.token), bot.user_id)
    assert len(got) == 2, got  # one event per send: no retry posted a duplicate
    one, two = got
    assert "Ukraine: ceasefire talks resume in Abu Dhabi" in one["body"]
    assert "Matched: ceasefire, Abu Dhabi" in one["body"]
    assert "Ceasefire holds for a second night" in two["body"]
    assert "Matched: ceasefire" in two["body"]
    assert one["format"] == "org.matrix.custom.html"
    html = one["formatted_body"]
    assert "<strong>ceasefire</strong>" in html and "<strong>Abu Dhabi</strong>" in html
    assert 'href="https://www.example.org/esteri/talks?id=7&amp;lang=it"' in html
    for content in got:
        text = str(content)
        assert bot.password not in text and bot.token not in text
        assert "**" not in content["body"]  # Markdown was rendered, not shown raw
    # The access token Apprise stored on the first send served the second one.
    assert hs.requests("POST", LOGIN) - logins_before == 1
    assert any(Path(storage).rglob("*.psdata"))


def test_invited_user_delivers_to_a_private_room_by_id(homeserver: Synapse, tmp_path: Path) -> None:
    hs = homeserver
    owner = Account(hs, "owner")
    bot = Account(hs, "invited-bot")
    room = hs.api(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "invite": [bot.user_id]},
        token=owner.token,
    )["room_id"]
    message = _alert("Ukraine: ceasefire talks resume in Abu Dhabi", ("ceasefire",))

    # Room version 12 IDs (Synapse's default) have no ":server" part; Apprise appends its
    # homeserver to an ID unless told `hsreq=no`, and the join then fails with 404.
    target = bot.url(hs, f"{room}?hsreq=no") if ":" not in room else bot.url(hs, room)

    delivery = send(target, message, timeout=15, storage_path=str(tmp_path))

    assert delivery.ok, delivery.error
    [content] = _from(hs.messages(room, owner.token), bot.user_id)
    assert "Ukraine: ceasefire talks resume in Abu Dhabi" in content["body"]
    assert "<strong>ceasefire</strong>" in content["formatted_body"]


def test_wrong_password_fails_without_posting_or_leaking_it(
    homeserver: Synapse, tmp_path: Path
) -> None:
    hs = homeserver
    owner = Account(hs, "desk")
    bot = Account(hs, "locked-out-bot")
    room = hs.api(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "room_alias_name": "closed-desk"},
        token=owner.token,
    )["room_id"]
    wrong = "wrong-" + secrets.token_urlsafe(12)
    message = _alert("Ukraine: ceasefire talks resume in Abu Dhabi", ("ceasefire",))

    delivery = send(
        bot.url(hs, "#closed-desk", password=wrong), message, timeout=15, storage_path=str(tmp_path)
    )

    assert not delivery.ok
    assert delivery.error and wrong not in delivery.error and bot.password not in delivery.error
    assert _from(hs.messages(room, owner.token), bot.user_id) == []
    with pytest.raises(MatrixError) as refused:  # and the bot never got into the room
        hs.api("GET", f"/_matrix/client/v3/rooms/{room}/joined_members", token=bot.token)
    assert refused.value.status == 403
