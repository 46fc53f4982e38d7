"""README.md is the manual: its commands, config keys and test command must match the code.

A key the README documents but the loader rejects sends a user to an error; a key the loader
accepts but the README omits is a feature nobody finds. Both directions are checked.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.config import tables as config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHIPPED = ROOT / "config" / "monitor.toml"
TABLES = ("monitor", "sources", "rules")  # the tables the README documents key by key


def section(text: str, heading: str) -> str:
    """The body under `heading` (a whole heading line), up to the next heading of its level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    assert heading in lines, f"README has no heading {heading!r}"
    body = []
    for line in lines[lines.index(heading) + 1 :]:
        m = re.match(r"(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body)


def first_column(markdown: str) -> list[str]:
    """The backticked first cell of every table row: `| `key` | ... |` -> key."""
    return re.findall(r"^\|\s*`([^`]+)`\s*\|", markdown, re.MULTILINE)


def readme_keys(table: str) -> set[str]:
    heading = f"### `[{table}]`" if table == "monitor" else f"### `[[{table}]]`"
    keys = first_column(section(README, heading))
    assert keys, f"no key table under {heading}"
    assert len(keys) == len(set(keys)), f"a key is listed twice under {heading}: {keys}"
    return set(keys)


def models() -> dict[str, type[BaseModel]]:
    """The pydantic model that validates each documented table, as the loader uses it."""
    found = {
        name: model
        for name, model in vars(config).get("TOP", {}).items()
        if isinstance(model, type) and issubclass(model, BaseModel)
    }
    assert set(TABLES) <= set(found), f"cannot find the models of {TABLES} in monitor.config"
    return found


# ------------------------------------------------------------------ commands


def documented_commands() -> list[str]:
    rows = first_column(section(README, "## Commands"))
    commands = [row.split()[1] for row in rows if row.startswith("news-monitor ")]
    assert commands, "README's Commands table lists no `news-monitor COMMAND` rows"
    return commands


def test_every_documented_command_exists():
    """Fails while `run`, `alerts`, `notify-test` are still being built: that is the point."""
    from monitor.cli.commands import cli

    missing = [c for c in documented_commands() if c not in cli.commands]
    assert not missing, f"README documents commands the CLI does not have: {missing}"


def test_every_command_is_documented():
    from monitor.cli.commands import cli

    undocumented = sorted(set(cli.commands) - set(documented_commands()))
    assert not undocumented, f"commands missing from README's Commands table: {undocumented}"


# ------------------------------------------------------------------ config keys


@pytest.mark.parametrize("table", TABLES)
def test_documented_keys_are_the_keys_the_loader_accepts(table):
    documented, accepted = readme_keys(table), set(models()[table].model_fields)
    assert not documented - accepted, f"[{table}] README keys the loader rejects"
    assert not accepted - documented, f"[{table}] keys the README does not document"


def shipped_keys() -> dict[str, set[str]]:
    """Every key set in the shipped config, plus the commented-out `# key = ...` examples."""
    keys: dict[str, set[str]] = {table: set() for table in TABLES}
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    keys["monitor"] |= set(data.get("monitor", {}))
    for table in ("sources", "rules"):
        for entry in data.get(table, []):
            keys[table] |= set(entry)
    current = None
    for line in SHIPPED.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"#?\s*\[\[?\s*(\w+)\s*\]\]?\s*(?:#.*)?", line.strip())
        if header:
            current = header.group(1)
        elif current in keys and (m := re.match(r"#\s*([a-z_]+)\s*=\s*\S", line)):
            keys[current].add(m.group(1))
    return keys


def test_shipped_config_uses_only_documented_keys():
    shipped = shipped_keys()
    assert "max_attempts" in shipped["monitor"] and "links" in shipped["sources"]  # examples seen
    assert "digest" in shipped["rules"]
    for table in TABLES:
        undocumented = shipped[table] - readme_keys(table)
        assert not undocumented, f"config/monitor.toml [{table}] keys not in README"


# ------------------------------------------------------------------ the test command


def test_quick_start_test_command_is_what_ci_runs():
    blocks = re.findall(r"^```sh\n(.*?)^```", section(README, "## Quick start"), re.S | re.M)
    assert len(blocks) >= 2, "Quick start needs a run block and a test block"
    readme_command = blocks[1].strip()
    ci_lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert readme_command == ci_lines[-1].strip()
