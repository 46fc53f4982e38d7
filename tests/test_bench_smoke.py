"""Tiny runs of bench/bench_poll.py and bench/bench_daemon.py: they must run end to end and
print every figure.

No timing assertions: speed is what the benchmarks print, not what a test checks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end over the real corpus / the benches

ROOT = Path(__file__).resolve().parent.parent


def test_bench_poll_runs_and_prints_the_figures() -> None:
    pytest.importorskip("reader", reason="the benchmark's peer (PyPI reader) is not installed")
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "bench_poll.py"),
        "--feeds", "20",
        "--items", "5",
        "--curve", "5,20",
        "--latency-trials", "2",
        "--latency-feeds", "5",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for scenario in ("[cold]", "[304]", "[same-body]", "[10%-new]", "[summary]", "[curve]"):
        assert scenario in out
    for figure in ("feeds/s", "new/s", "CPU ms/f", "RSS MB", "reader/news-monitor", "ms/feed"):
        assert figure in out
    for contender in (
        "news-monitor once [10%]",
        "news-monitor once [none]",
        "reader (script)",
        "news-monitor [10%]",
        "news-monitor [none]",
        "floor: fetch",
        "floor: lxml parse",
    ):
        assert contender in out
    assert "item appears -> alert at webhook: p50" in out


def test_bench_daemon_runs_and_prints_the_cycles() -> None:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "bench_daemon.py"),
        "--sources", "20",
        "--items", "5",
        "--interval", "3s",
        "--cycles", "2",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for figure in ("0 (cold)", "% core", "ms/poll", "RSS max", "steady state over 2 cycles"):
        assert figure in out
    assert "not_modified" in out  # polls after the cold cycle are answered 304
