"""Optional HTTP endpoint for operators: `/healthz` and `/metrics` (Prometheus).

It binds to 127.0.0.1 by default and refuses any non-loopback address unless the caller passes
`allow_remote=True`. The metrics are not secret, but the endpoint has no authentication and no
TLS: on a public interface anyone could scrape it, learn which sources are watched and failing,
and poll `/healthz` (which touches the database) as often as they like. Expose it beyond the host
only behind something that authenticates (a reverse proxy, a container network). The daemon
binds `[monitor] health_host` (127.0.0.1 unless the user, or the Docker image through
`NEWS_MONITOR_HEALTH_HOST`, chose otherwise): a configured address is the user's explicit choice,
so it passes `allow_remote=True` and logs a warning when that address is not loopback.

`check` is the daemon's probe: it returns `{name: True}` for each healthy part and `{name: False}`
or `{name: "reason"}` for a failing one. A check that raises or takes longer than
`check_timeout` seconds makes `/healthz` fail too, so a wedged daemon is reported, not hidden.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from monitor.secrets import mask
from monitor.service.metrics import Metrics

Check = Callable[[], Awaitable[dict[str, bool | str]]]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names for them."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HealthServer:
    """A running endpoint; `port` is the real port (useful when 0 was asked for)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Close the listening socket and finish in-flight requests."""
        await self._runner.cleanup()


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=mask(json.dumps(body, sort_keys=True)),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _app(metrics: Metrics, check: Check, check_timeout: float) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        try:
            results = await asyncio.wait_for(check(), timeout=check_timeout)
        except TimeoutError:
            results = {"check": f"timed out after {check_timeout:g} s"}
        except Exception as exc:  # the probe itself failing is a failed health check
            results = {"check": f"{type(exc).__name__}: {exc}"}
        failing = {name: value for name, value in results.items() if value is not True}
        if failing or not results:
            return _json(503, {"status": "failing", "checks": results, "failing": failing})
        return _json(200, {"status": "ok", "checks": results})

    async def metrics_view(_request: web.Request) -> web.Response:
        body = mask(metrics.render().decode()).encode()  # label values are ours, but be sure
        response = web.Response(body=body, headers={"Cache-Control": "no-store"})
        # Set the header as-is: the `content_type` argument would drop the `version` parameter.
        response.headers["Content-Type"] = metrics.content_type
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def start_health_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    metrics: Metrics,
    check: Check,
    allow_remote: bool = False,
    check_timeout: float = 5.0,
) -> HealthServer:
    """Serve `/healthz` and `/metrics` on `host:port` until `stop()` is awaited.

    Raises ValueError for a non-loopback `host` without `allow_remote=True` (see module doc),
    and OSError when the port cannot be bound.
    """
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"refusing to serve health/metrics on non-loopback address {host!r}: the endpoint "
            "is unauthenticated; bind 127.0.0.1 or allow remote access explicitly"
        )
    # access_log=None: a scraper every few seconds would otherwise flood the daemon's log.
    runner = web.AppRunner(_app(metrics, check, check_timeout), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    real_port = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            real_port = int(address[1])
            break
    return HealthServer(runner, host, real_port)
