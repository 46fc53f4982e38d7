"""Helpers for the benches that measure whole processes: the feed server's client, a launcher
that reports a child's own CPU and peak RSS, and /proc sampling of a running daemon.

Why a launcher: Linux carries the RSS high-water mark of the memory a child was forked from (or
shared, with vfork) into the child's ru_maxrss, so a child of a 500 MB process reports at least
500 MB. The launcher is a `python -S` process of ~9 MB that spawns the command and `os.wait4`s
it: ~9 MB is the floor of every RSS it reports, below the ~13 MB of `python -c pass`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

PY = sys.executable
HERE = Path(__file__).resolve().parent

_LAUNCHER = r"""
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
actions = [(os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
           (os.POSIX_SPAWN_DUP2, 1, 2)]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
print(os.waitstatus_to_exitcode(status), ru.ru_utime, ru.ru_stime, ru.ru_maxrss, wall)
"""


def compile_package() -> None:
    """Byte-compile `monitor/` as `pip install` does for an installed package (reader's modules
    are compiled in site-packages): with PYTHONDONTWRITEBYTECODE set, as on the machines these
    benches ran on, every `news-monitor` child would otherwise compile its ~80 modules from
    source, ~0.1 s of CPU that no installed copy pays. Children read the cached files."""
    import compileall

    compileall.compile_dir(HERE.parent / "monitor", quiet=1)


def run_measured(
    argv: list[str], *, output: Path, cwd: Path | None = None, timeout: float = 3600
) -> dict:
    """Run `argv` as a whole process (stdout and stderr to `output`); its own figures:
    `cpu` (user+sys s, all threads, imports included), `rss_mb` (peak), `wall` s, `code`."""
    cmd = [PY, "-S", "-c", _LAUNCHER, str(output), *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"launcher failed: {done.stderr[-2000:]}")
    code, user, system, maxrss, wall = done.stdout.split()
    return {
        "code": int(code),
        "cpu": float(user) + float(system),
        "user": float(user),
        "sys": float(system),
        "rss_mb": int(maxrss) / 1024,
        "wall": float(wall),
    }


class Server:
    """The feed server process (`_feeds.py serve`) and its control API."""

    def __init__(self, feeds: int, items: int) -> None:
        helper = str(HERE / "_feeds.py")
        cmd = [PY, helper, "serve", "--feeds", str(feeds), "--items", str(items)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            raise RuntimeError("feed server did not start")
        self.base = f"http://127.0.0.1:{line[1]}"
        self.origin = " ".join(line[3:])

    def call(self, path: str, method: str = "POST") -> dict:
        req = urllib.request.Request(
            self.base + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self, query: str = "") -> dict:
        return self.call("/control/stats" + query, "GET")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def proc_cpu(pid: int) -> float:
    """CPU seconds (utime + stime, all threads) of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a running process, in MB."""
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
