"""What a `news-monitor` command costs from exec to exit: whole-process CPU, peak RSS, modules.

Run: `python bench/bench_startup.py` (`--repeat 7`, `--importtime 12`, `--only check,--help`).

Each command is run as the user runs it, the `news-monitor` console script of this interpreter's
environment (else `python -m monitor`), on a copy of the shipped `config/monitor.toml` whose
`database` points into a temporary directory (a first `once` creates it, so `search`, `sources`
and the rest read a real, empty database). The shipped sources are public web sites: with no
network their lookups fail at once, so `once` measures the start-up and shutdown of a poll.

`check +channel` and `check +page source` add one Apprise channel or one page source with a CSS
selector to that config: `check` then validates them, which loads Apprise or soupsieve and bs4.

Per command and per baseline (`python -c pass`, `python -c "import click"`), `--repeat` runs,
interleaved so that noise from other processes spreads over all of them; each child's CPU
(user + sys) and peak RSS come from `os.wait4`, so nothing of this script is counted. Printed:
the medians, CPU as a ratio to `python -c pass` of the same run, and, from one more run that
dumps `sys.modules` at exit, the number of modules loaded and which of the heavy packages are.
`--importtime N` adds, per command, the N packages with the largest `-X importtime` self time,
summed per package (one run: indicative only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _procs

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "monitor.toml"
PY = sys.executable
HEAVY = (
    "aiohttp",
    "apprise",
    "apscheduler",
    "bs4",
    "soupsieve",
    "feedparser",
    "sqlite_utils",
    "prometheus_client",
    "pydantic",
)
SHORT = {"prometheus_client": "prom", "sqlite_utils": "sq_utils", "apscheduler": "apsched"}
TEXT = "Ucraina, tregua a Pasqua\nPutin annuncia un cessate il fuoco di 30 ore, Kyiv scettica."
QUERY = "(ucrain* OR kyiv) AND (tregua OR ceasefire)"
BASELINES = {"python -c pass": "pass", "python -c 'import click'": "import click"}

# `check` on the shipped config plus one channel (it validates the Apprise URL, so it loads Apprise)
# or one page source (its CSS selector is compiled, so it loads soupsieve and bs4)
CHANNEL = '\n[channels]\nhook = "json://127.0.0.1:9/news-monitor"\n'
PAGE = (
    '\n[[sources]]\nname = "page"\nkind = "html"\nurl = "https://www.example.org/news/"\n'
    'links = "article h2 a"\n'
)


def commands(config: Path) -> dict[str, list[str]]:
    """Label -> the arguments after `news-monitor`."""
    c = ["--config", str(config)]
    variant = {
        name: ["--config", str(config.with_name(f"{name}.toml")), "check"]
        for name in ("channel", "page")
    }
    return {
        "--help": ["--help"],
        "check": [*c, "check"],
        "check +channel": variant["channel"],
        "check +page source": variant["page"],
        "sources": [*c, "sources"],
        "search QUERY": [*c, "search", "tregua"],
        "test-rule -q --text": [*c, "test-rule", "--query", QUERY, "--text", TEXT],
        "test-rule NAME --text": [*c, "test-rule", "ceasefire", "--text", TEXT],
        "once": [*c, "once"],
    }


def entry_point() -> list[str]:
    """The console script beside this interpreter, as a user runs it; else `python -m monitor`."""
    script = Path(PY).parent / "news-monitor"
    return [str(script)] if script.exists() else [PY, "-m", "monitor"]


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU s, peak RSS MB, exit code) of one child process, from its own rusage."""
    with open(os.devnull, "wb") as null:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=null, stderr=null)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


_DUMP = (
    "import atexit, json, sys\n"
    "def _dump():\n"
    "    with open({out!r}, 'w') as f: json.dump(sorted(sys.modules), f)\n"
    "atexit.register(_dump)\n"
    "sys.argv = ['news-monitor', *{args!r}]\n"
    "from monitor.cli import main\n"
    "main()\n"
)


def modules(args: list[str], cwd: Path, env: dict[str, str], out: Path) -> list[str]:
    """The modules a command has loaded when it exits (atexit, so after the command ran)."""
    code = _DUMP.format(out=str(out), args=args)
    subprocess.run([PY, "-c", code], cwd=cwd, env=env, capture_output=True, check=False)
    return json.loads(out.read_text())


def importtime(args: list[str], cwd: Path, env: dict[str, str], top: int) -> list[tuple[str, int]]:
    """The `top` costliest packages of one run of a command by `-X importtime` self time (µs),
    summed per package: `monitor.<subpackage>`, else the top-level name (`pydantic`, `bs4`)."""
    code = "import sys; sys.argv = ['news-monitor', *%r]; from monitor.cli import main; main()"
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", code % (args,)],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            parts = m.group(2).split(".")
            name = ".".join(parts[:2]) if parts[0] == "monitor" else parts[0]
            totals[name] = totals.get(name, 0) + int(m.group(1))
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def setup(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the shipped config with its database in `tmp`; the environment for children."""
    text = SHIPPED.read_text(encoding="utf-8")
    database = json.dumps(str(tmp / "monitor.db"))  # a TOML basic string is a JSON string
    text, n = re.subn(r"(?m)^database\s*=\s*\"[^\"]*\"", f"database = {database}", text)
    if n != 1:
        raise SystemExit("bench_startup: no `database = ...` line in the shipped config")
    config = tmp / "monitor.toml"
    config.write_text(text, encoding="utf-8")
    # the shipped file ends inside [[rules]]: a table appended after it starts its own section
    (tmp / "channel.toml").write_text(text.replace("\n[channels]\n", CHANNEL, 1), encoding="utf-8")
    (tmp / "page.toml").write_text(text + PAGE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NEWS_MONITOR_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return config, env


def run(repeat: int, only: set[str] | None, top: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        config, env = setup(tmp)
        cmds = {k: v for k, v in commands(config).items() if not only or k in only}
        measure([*entry_point(), *commands(config)["once"]], tmp, env)  # creates the database
        runs = {label: [PY, "-c", code] for label, code in BASELINES.items()}
        runs |= {label: [*entry_point(), *args] for label, args in cmds.items()}
        cpu: dict[str, list[float]] = {label: [] for label in runs}
        rss: dict[str, list[float]] = {label: [] for label in runs}
        codes: dict[str, int] = {}
        for _ in range(repeat):  # interleaved: a burst of noise hits every command alike
            for label, argv in runs.items():
                seconds, peak, codes[label] = measure(argv, tmp, env)
                cpu[label].append(seconds)
                rss[label].append(peak)
        loaded = {
            label: modules(args, tmp, env, tmp / "modules.json") for label, args in cmds.items()
        }
        report(cpu, rss, codes, loaded, repeat)
        if top:
            for label, args in cmds.items():
                print(f"\n-X importtime, top {top} packages of `{label}` by import self time (ms):")
                for name, micros in importtime(args, tmp, env, top):
                    print(f"  {name:<40} {micros / 1000:7.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    cpu: dict[str, list[float]],
    rss: dict[str, list[float]],
    codes: dict[str, int],
    loaded: dict[str, list[str]],
    repeat: int,
) -> None:
    base = statistics.median(cpu["python -c pass"])
    flags = "  ".join(f"{SHORT.get(h, h):>8}" for h in HEAVY)
    print(f"news-monitor start-up: median of {repeat} runs; CPU = user+sys of the child (wait4)")
    print(f"python {sys.version.split()[0]}, {entry_point()[-1]}\n")
    head = f"{'command':<24} {'CPU ms':>7} {'/pass':>6} {'min ms':>7} {'RSS MB':>7} {'exit':>4}"
    print(f"{head} {'modules':>7}  {flags}")
    for label in cpu:
        med = statistics.median(cpu[label])
        line = (
            f"{label:<24} {med * 1000:7.0f} {med / base:6.2f} {min(cpu[label]) * 1000:7.0f} "
            f"{statistics.median(rss[label]):7.1f} {codes[label]:>4}"
        )
        if label in loaded:
            names = set(loaded[label])
            marks = "  ".join(f"{'yes' if h in names else '-':>8}" for h in HEAVY)
            line += f" {len(names):>7}  {marks}"
        print(line)
    print("\n/pass: CPU as a multiple of `python -c pass` measured in the same run.")
    print("`once` exits 1 when no source could be polled (no network): that is expected here.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command (median)")
    parser.add_argument("--only", default="", help="comma-separated command labels")
    parser.add_argument(
        "--importtime", type=int, default=0, metavar="N",
        help="also print the N packages with the most import time, per command",
    )  # fmt: skip
    args = parser.parse_args()
    _procs.compile_package()  # as installed: see _procs.compile_package
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    run(max(1, args.repeat), only, args.importtime)


if __name__ == "__main__":
    main()
