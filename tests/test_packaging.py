"""Packaging: every third-party module lrlab imports is a declared dependency."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
DIST = {"yaml": "pyyaml", "PIL": "pillow"}  # import name -> distribution name where they differ


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT / "lrlab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "lrlab"}


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}


def test_core_dependencies_are_declared():
    for name in ("torch", "numpy", "pandas", "pydantic", "yaml", "typer", "rich", "matplotlib"):
        assert DIST.get(name, name) in _declared()


def test_every_imported_package_is_declared():
    missing = {DIST.get(n, n) for n in _imported_top_level_modules()} - _declared()
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
