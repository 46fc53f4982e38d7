"""Real alert receivers on 127.0.0.1 for tests: an SMTP server and a JSON webhook.

Tests assert on what arrived, so each receiver records every delivery and offers a bounded
`wait_for(count, timeout)`. Both run in background threads so sync and async tests can use them.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _free_port() -> int:
    """A port that is free right now (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Recorder:
    """A list of arrivals plus a condition, so tests can wait for a count without sleeping."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        """Return the arrivals once there are at least `count`; raise after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"expected {count} deliveries within {timeout}s, got {len(self._items)}"
                    )
                self._cond.wait(left)
            return list(self._items)


# ---------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    """One e-mail as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None = None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The text/plain body ("" if the message has none)."""
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def content_types(self) -> list[str]:
        return [part.get_content_type() for part in self.message.walk()]


class _SmtpHandler:
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if session.authenticated and session.auth_data else None
        self.recorder.add(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                authenticated_as=login.decode() if isinstance(login, bytes) else login,
            )
        )
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """`with SmtpReceiver(user="u", password="p") as smtp: ... smtp.wait_for(1, 5)`.

    With `user`/`password`, AUTH (PLAIN/LOGIN) is offered without TLS, so an Apprise `mailto://`
    URL in `mode=insecure` logs in on loopback; `authenticated_as` shows that it did, and a wrong
    password is refused (535). Not *requiring* AUTH keeps aiosmtpd from warning on every session.
    """

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user = user
        self.password = password
        self._recorder = _Recorder()
        self.port = _free_port()
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = Controller(
            _SmtpHandler(self._recorder), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def url(self, *, to: str = "desk@example.org", sender: str = "monitor@example.org") -> str:
        """An Apprise URL that delivers to this server in plain SMTP (no TLS)."""
        creds = f"{self.user}:{self.password}@" if self.user is not None else ""
        return (
            f"mailto://{creds}127.0.0.1:{self.port}"
            f"?smtp=127.0.0.1&mode=insecure&from={sender}&to={to}"
        )

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._recorder.snapshot()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        return self._recorder.wait_for(count, timeout)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- webhook

Mode = Literal["ok", "error", "close", "hang"]


@dataclass
class ReceivedPost:
    """One webhook request: the path, headers and the decoded JSON payload."""

    path: str
    headers: dict[str, str]
    payload: Any
    raw: bytes = field(repr=False, default=b"")


class WebhookReceiver:
    """An HTTP server for Apprise `json://` posts that can fail, hang, go down and come back.

    `mode`: "ok" answers 200 and records the post; "error" answers 500 (recorded in `attempts`
    only); "close" drops the connection without an answer; "hang" never answers (until stop).
    `down()` stops listening (the port refuses connections); `up()` listens on the same port again.
    """

    def __init__(self) -> None:
        self.mode: Mode = "ok"
        self._delivered = _Recorder()
        self._attempts = _Recorder()
        self._release = threading.Event()  # frees "hang" handlers on stop
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                post = ReceivedPost(self.path, dict(self.headers.items()), payload, raw)
                receiver._attempts.add(post)
                mode = receiver.mode
                if mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "hang":
                    receiver._release.wait(60)
                    self.close_connection = True
                    return
                status, body = (500, b"boom") if mode == "error" else (200, b"ok")
                if mode == "ok":
                    receiver._delivered.add(post)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return _Handler

    def url(self, path: str = "/hook", *, scheme: str = "json", auth: str = "") -> str:
        """An Apprise URL for this receiver; `auth` ("user:pass@") to carry fake secrets."""
        return f"{scheme}://{auth}127.0.0.1:{self.port}{path}"

    @property
    def posts(self) -> list[ReceivedPost]:
        """Posts that were answered 200 (i.e. delivered)."""
        return self._delivered.snapshot()

    @property
    def attempts(self) -> list[ReceivedPost]:
        """Every request that reached the server, whatever the answer."""
        return self._attempts.snapshot()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedPost]:
        return self._delivered.wait_for(count, timeout)

    def up(self) -> WebhookReceiver:
        """Start listening (on the same port as before, if it was up before)."""
        if self._httpd is not None:
            return self
        self._release.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening entirely: connections to the port are refused until `up()`."""
        if self._httpd is None:
            return
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None
        self._thread = None

    start = up
    stop = down

    def __enter__(self) -> WebhookReceiver:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()
