"""A tiny run of bench/bench_poll.py: it must run end to end and print every figure.

No timing assertions: speed is what the benchmark prints, not what a test checks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end over the real corpus / the benches

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("reader", reason="the benchmark's peer (PyPI reader) is not installed")


def test_bench_poll_runs_and_prints_the_figures() -> None:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "bench_poll.py"),
        "--feeds", "20",
        "--items", "5",
        "--latency-trials", "2",
        "--latency-feeds", "5",
        "--idle-seconds", "5",
        "--idle-interval", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for scenario in ("[cold]", "[304]", "[same-body]", "[10%-new]"):
        assert scenario in out
    for figure in ("feeds/s", "new/s", "CPU ms/f", "RSS MB", "news-monitor/reader"):
        assert figure in out
    for contender in ("news-monitor", "reader", "floor: fetch", "floor: lxml parse"):
        assert contender in out
    assert "item appears -> alert at webhook: p50" in out
    assert "[idle]" in out
