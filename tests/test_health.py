"""The health/metrics endpoint over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from monitor.runtime.healthz import HealthServer, is_loopback, start_health_server
from monitor.service.metrics import Metrics

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def _get(server: HealthServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(server.url + path) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def _sample(text: str, name: str, labels: str = "") -> float:
    """One series' value in the exposition, e.g. _sample(t, 'x_total', 'outcome="new"')."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in exposition:\n{text}"
    return float(found.group(1))


def _checks(**results: bool | str):
    async def check() -> dict[str, bool | str]:
        return dict(results)

    return check


async def test_healthz_ok_when_every_check_passes() -> None:
    server = await start_health_server(
        "127.0.0.1", 0, metrics=Metrics(), check=_checks(scheduler=True, database=True)
    )
    try:
        assert server.port > 0
        status, ctype, body = await _get(server, "/healthz")
    finally:
        await server.stop()
    assert status == 200
    assert ctype.startswith("application/json")
    assert json.loads(body) == {"status": "ok", "checks": {"scheduler": True, "database": True}}
    with pytest.raises(aiohttp.ClientConnectionError):  # stop() really closed the port
        await _get(server, "/healthz")


async def test_healthz_503_names_the_failing_checks() -> None:
    check = _checks(scheduler=True, database="attempt to write a readonly database")
    server = await start_health_server("127.0.0.1", 0, metrics=Metrics(), check=check)
    try:
        status, _, body = await _get(server, "/healthz")
    finally:
        await server.stop()
    assert status == 503
    data = json.loads(body)
    assert data["status"] == "failing"
    assert data["failing"] == {"database": "attempt to write a readonly database"}
    assert data["checks"]["scheduler"] is True


async def test_healthz_503_when_the_check_raises_or_hangs() -> None:
    async def broken() -> dict[str, bool | str]:
        raise RuntimeError("store closed")

    async def hung() -> dict[str, bool | str]:
        await asyncio.sleep(30)
        return {"scheduler": True}

    for check, expected in ((broken, "store closed"), (hung, "timed out")):
        server = await start_health_server(
            "127.0.0.1", 0, metrics=Metrics(), check=check, check_timeout=0.2
        )
        try:
            status, _, body = await _get(server, "/healthz")
        finally:
            await server.stop()
        assert status == 503
        assert expected in json.loads(body)["failing"]["check"]


async def test_metrics_exposition_counts_polls_and_alerts() -> None:
    metrics = Metrics()
    metrics.poll_done("new", 0.2, items=10, new=3, matches=2)
    metrics.poll_done("new", 0.4, items=5, new=1, matches=0)
    metrics.poll_done("not_modified", 0.05)
    metrics.poll_done("error", 12.0)
    metrics.alert_done("sent")
    metrics.alert_done("sent")
    metrics.alert_done("failed")
    metrics.set_outbox_depth(7)
    metrics.set_scheduler_lag(1.5)
    metrics.set_sources_failing(1)
    server = await start_health_server("127.0.0.1", 0, metrics=metrics, check=_checks(ok=True))
    try:
        status, ctype, text = await _get(server, "/metrics")
    finally:
        await server.stop()
    assert status == 200
    assert ctype.startswith("text/plain") and "version=" in ctype
    assert _sample(text, "news_monitor_polls_total", 'outcome="new"') == 2
    assert _sample(text, "news_monitor_polls_total", 'outcome="not_modified"') == 1
    assert _sample(text, "news_monitor_polls_total", 'outcome="error"') == 1
    assert _sample(text, "news_monitor_polls_total", 'outcome="unchanged"') == 0
    assert _sample(text, "news_monitor_items_seen_total") == 15
    assert _sample(text, "news_monitor_new_articles_total") == 4
    assert _sample(text, "news_monitor_matches_total") == 2
    assert _sample(text, "news_monitor_alerts_total", 'outcome="sent"') == 2
    assert _sample(text, "news_monitor_alerts_total", 'outcome="failed"') == 1
    assert _sample(text, "news_monitor_alerts_total", 'outcome="dead"') == 0
    assert _sample(text, "news_monitor_fetch_seconds_count") == 4
    assert _sample(text, "news_monitor_fetch_seconds_bucket", 'le="0.25"') == 2
    assert _sample(text, "news_monitor_fetch_seconds_sum") == pytest.approx(12.65)
    assert _sample(text, "news_monitor_outbox_depth") == 7
    assert _sample(text, "news_monitor_scheduler_lag_seconds") == 1.5
    assert _sample(text, "news_monitor_sources_failing") == 1
    assert _sample(text, "news_monitor_last_successful_poll_timestamp_seconds") > 0


def test_outbox_depth_callback_and_separate_registries() -> None:
    depth = [3]
    first, second = Metrics(clock=lambda: 1000.0), Metrics()
    first.outbox_depth_from(lambda: depth[0])
    first.poll_done("unchanged", 0.1)
    assert _sample(first.render().decode(), "news_monitor_outbox_depth") == 3
    depth[0] = 0
    assert _sample(first.render().decode(), "news_monitor_outbox_depth") == 0
    stamp = "news_monitor_last_successful_poll_timestamp_seconds"
    assert _sample(first.render().decode(), stamp) == 1000.0
    # The second instance did not see the first one's poll: no shared global registry.
    assert _sample(second.render().decode(), "news_monitor_polls_total", 'outcome="unchanged"') == 0
    assert _sample(second.render().decode(), stamp) == 0


def test_unknown_outcome_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Metrics().poll_done("ok", 0.1)
    with pytest.raises(ValueError):
        Metrics().alert_done("delivered")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org", "::"])
async def test_refuses_non_loopback_without_permission(host: str) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        await start_health_server(host, 0, metrics=Metrics(), check=_checks(ok=True))


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "", "example.org"):
        assert not is_loopback(host), host


def test_every_series_carries_the_worker_label() -> None:
    """Several workers on one database: each series says which worker counted it."""
    metrics = Metrics(worker="desk-1")
    metrics.set_sources(["wire"])
    metrics.poll_done("new", 0.2, items=3, new=1, source="wire")
    metrics.set_outbox_depth(2)
    series = [ln for ln in metrics.render().decode().splitlines() if ln[:1] != "#"]
    assert series and all('worker="desk-1"' in ln for ln in series), series
    text = "\n".join(series)
    assert _sample(text, "news_monitor_polls_total", 'outcome="new",worker="desk-1"') == 1
    assert _sample(text, "news_monitor_source_polls_total", 'source="wire",worker="desk-1"') == 1
    assert _sample(text, "news_monitor_outbox_depth", 'worker="desk-1"') == 2
