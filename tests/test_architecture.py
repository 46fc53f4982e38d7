"""The house rules that keep the code easy to change, held by tests."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"
PURE = {"rules", "normalize", "alerts", "text", "excerpt", "schedule", "models", "errors"}
PURE_PACKAGES = {"stories"}  # every module of these is pure core too
IO_LIBRARIES = {
    "aiohttp",
    "apprise",
    "apscheduler",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "requests",
    "httpx",
    "urllib.request",
    "subprocess",
    "os",
    "time",
    "random",
    "asyncio",
    "feedparser",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _pure_modules() -> list[Path]:
    modules = [PACKAGE / f"{name}.py" for name in sorted(PURE)]
    for package in sorted(PURE_PACKAGES):
        modules += sorted((PACKAGE / package).glob("*.py"))
    return [path for path in modules if path.exists()]


def test_pure_core_imports_no_io_library() -> None:
    for path in _pure_modules():
        name = path.relative_to(PACKAGE).with_suffix("")
        bad = {
            imp
            for imp in _imports(path)
            if any(imp == lib or imp.startswith(lib + ".") for lib in IO_LIBRARIES)
        }
        assert not bad, f"monitor/{name}.py is pure core but imports {sorted(bad)}"


def test_no_import_cycles() -> None:
    graph = {
        path.stem: {
            imp.split(".")[1]
            for imp in _imports(path)
            if imp.startswith("monitor.") and len(imp.split(".")) > 1
        }
        for path in PACKAGE.glob("*.py")
    }
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert seen.get(nxt) != 1, "import cycle: " + " -> ".join([*trail, node, nxt])
            if nxt not in seen:
                visit(nxt, [*trail, node])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [])


def test_modules_stay_small() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 520, f"monitor/{path.name} has {lines} lines: split it"
