"""The house rules that keep the code easy to change, held by tests that can fail.

The layer rules (imports flow one way, no cycles, a pure core without I/O) are import-linter
contracts in pyproject.toml; import-linter's graph sees every import form, including
`from monitor import x`, relative imports and imports inside functions. A copy of the package
with one forbidden import added shows the contracts really fail.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "monitor"
BOTTOM = {"models", "errors", "text", "secrets", "clock"}  # single modules under every package
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(no_cache=True, no_logo=True))"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def _packages() -> set[str]:
    return {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_import_contracts_hold() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_contracts_fail_on_an_upward_import(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(PACKAGE, tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    models = tmp_path / "monitor" / "models.py"
    models.write_text(models.read_text() + "\nfrom monitor.cli import main  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "monitor.models -> monitor.cli" in done.stdout


def test_every_package_has_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert named == _packages() | modules, "place every package and top module in a layer"
    assert modules == BOTTOM, "a new top-level module: is it really plain data under everything?"


def test_packages_say_what_they_own_and_may_import() -> None:
    for name in sorted(_packages()):
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        assert len(doc.splitlines()) >= 3, f"monitor/{name}/__init__.py: say what it owns"
        assert "import" in doc, f"monitor/{name}/__init__.py: say what it may import"


def test_readme_tree_shows_every_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("### Architecture", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    shown = set(re.findall(r"^  (\w+)/", tree, re.MULTILINE))
    assert shown == _packages()


def test_no_module_imports_another_modules_private_names() -> None:
    for path in _modules():
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != own:
                private = [a.name for a in node.names if re.match(r"_[^_]", a.name)]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert not private, f"{where} imports {private} from {node.module}"


def test_modules_stay_small() -> None:
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 520, f"{path.relative_to(ROOT)} has {lines} lines: split it"


def test_functions_stay_short() -> None:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                assert length <= 70, f"{where} is {length} lines: split it at its seams"
