"""A real Matrix homeserver (Synapse) on 127.0.0.1 for tests, with no way out to the internet.

Synapse lives in its own venv (`.ci/install-synapse` makes `.venv-synapse`) so its pinned
dependencies never meet ours; `synapse_python()` finds it, and tests skip when it returns None.

The generated config: SQLite, one plain-HTTP client listener on 127.0.0.1 (no federation
listener, no TLS), registration only through the admin shared-secret API, and everything that
would reach the internet turned off (federation sending and whitelist, key servers, URL previews,
stats reporting, push, presence). Message, join, room-creation and registration rate limits are
relaxed; the login rate limit is Synapse's default, as on a real server. Every request is
written to `access.log`, so a test can count what the client really asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV_PYTHON = "NEWS_MONITOR_SYNAPSE_PYTHON"
SERVER_NAME = "news-monitor.test"  # never resolved: federation is off
_RELAXED = {"per_second": 1000, "burst_count": 1000}


def synapse_python() -> Path | None:
    """The interpreter of the Synapse venv, or None when Synapse is not installed here."""
    configured = os.environ.get(ENV_PYTHON)
    python = Path(configured) if configured else ROOT / ".venv-synapse" / "bin" / "python"
    if not python.is_file():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import synapse.app.homeserver"], capture_output=True, timeout=60
    )
    return python if probe.returncode == 0 else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MatrixError(Exception):
    """A client-server or admin API call that did not answer 2xx."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class Synapse:
    """`with Synapse(python, tmp_path) as hs: token = hs.register('bot', 'pw'); hs.api(...)`."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.python = python
        self.workdir = workdir
        self.port = 0
        self.shared_secret = secrets.token_hex(16)
        self.access_log = workdir / "access.log"
        self.output = workdir / "synapse.out"
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        """homeserver.yaml and log config as JSON (a subset of YAML), plus a signing key."""
        work = self.workdir
        (work / "media").mkdir(exist_ok=True)
        seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        (work / "signing.key").write_text(f"ed25519 a_test {seed}\n")
        access = {"class": "logging.FileHandler", "filename": str(self.access_log)}
        log_config = {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "access": access | {"formatter": "plain"},
                "main": {
                    "class": "logging.FileHandler",
                    "filename": str(work / "homeserver.log"),
                    "formatter": "plain",
                },
            },
            "loggers": {
                "synapse.access": {"level": "INFO", "handlers": ["access"], "propagate": False}
            },
            "root": {"level": "WARNING", "handlers": ["main"]},
            "disable_existing_loggers": False,
        }
        (work / "log.yaml").write_text(json.dumps(log_config))
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": self.url + "/",
            "pid_file": str(work / "homeserver.pid"),
            "signing_key_path": str(work / "signing.key"),
            "media_store_path": str(work / "media"),
            "log_config": str(work / "log.yaml"),
            "database": {"name": "sqlite3", "args": {"database": str(work / "homeserver.db")}},
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            # Nothing leaves this machine.
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "federation_sender_instances": [],
            "allow_public_rooms_over_federation": False,
            "url_preview_enabled": False,
            "enable_metrics": False,
            "push": {"enabled": False},
            "presence": {"enabled": False},
            "user_directory": {"enabled": False},
            "serve_server_wellknown": False,
            # Tests act fast; a real server's login limit stays as it is.
            "rc_message": _RELAXED,
            "rc_registration": _RELAXED,
            "rc_room_creation": _RELAXED,
            "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
            "rc_joins_per_room": _RELAXED,
            "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
        }
        path = work / "homeserver.yaml"
        path.write_text(json.dumps(config, indent=1))
        return path

    def start(self, timeout: float = 45.0) -> None:
        """Start Synapse and wait until /_matrix/client/versions answers, at most `timeout`."""
        started = time.monotonic()
        self.port = _free_port()
        config = self._write_config()
        out = self.output.open("wb")
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "-c", str(config)],
            cwd=self.workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Synapse exited with {self._proc.returncode}:\n{self._tail()}")
            try:
                self.api("GET", "/_matrix/client/versions", timeout=2)
                break
            except (OSError, MatrixError):
                pass
            if time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"Synapse did not answer within {timeout:g}s:\n{self._tail()}")
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if Synapse is still there after `timeout` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> Synapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tail(self, lines: int = 30) -> str:
        texts = []
        for path in (self.output, self.workdir / "homeserver.log"):
            if path.exists():
                texts += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(texts)

    # -------------------------------------------------------------------------- API

    def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """One client-server/admin API call; raises MatrixError unless it answers 2xx."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            raise MatrixError(err.code, err.read().decode(errors="replace")) from None

    def register(self, username: str, password: str, *, admin: bool = False) -> str:
        """Create a user through the admin shared-secret API; returns its access token."""
        path = "/_synapse/admin/v1/register"
        nonce = self.api("GET", path)["nonce"]
        fields = [nonce, username, password, "admin" if admin else "notadmin"]
        mac = hmac.new(self.shared_secret.encode(), "\0".join(fields).encode(), hashlib.sha1)
        answer = self.api(
            "POST",
            path,
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return answer["access_token"]

    def user_id(self, username: str) -> str:
        return f"@{username}:{SERVER_NAME}"

    def messages(self, room_id: str, token: str, limit: int = 100) -> list[dict[str, Any]]:
        """The room's m.room.message events as `token`'s user sees them, oldest first."""
        query = urllib.parse.urlencode(
            {"dir": "b", "limit": limit, "filter": json.dumps({"types": ["m.room.message"]})}
        )
        room = urllib.parse.quote(room_id, safe="")
        answer = self.api("GET", f"/_matrix/client/v3/rooms/{room}/messages?{query}", token=token)
        return list(reversed(answer.get("chunk", [])))

    def requests(self, method: str, path_prefix: str) -> int:
        """How many `method` requests whose path starts with `path_prefix` Synapse has processed."""
        if not self.access_log.exists():
            return 0
        needle = f'"{method} {path_prefix}'
        return sum(
            1
            for line in self.access_log.read_text(errors="replace").splitlines()
            if "Processed request" in line and needle in line
        )
