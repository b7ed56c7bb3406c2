"""Import structure: every module imports on its own, no import cycles, imports at module top.

An import inside a function is allowed only for an optional heavy dependency (``OPTIONAL``):
everything lrlab needs is imported when its module is.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lrlab"

#: Optional heavy dependencies (not in pyproject's [project] dependencies) that a function may
#: import where it needs them. None is used today.
OPTIONAL: frozenset[str] = frozenset()

#: Function-level imports in modules that are being ported right now, by (module, imported name);
#: each entry must still be present (test_pending_entries_are_still_needed), so remove it with
#: the import.
PENDING: frozenset[tuple[str, str]] = frozenset()

_IMPORT_EACH = r"""
import importlib, json, pkgutil, sys, traceback

import lrlab

failed = {}
names = sorted(m.name for m in pkgutil.walk_packages(
    lrlab.__path__, "lrlab.", onerror=lambda name: failed.setdefault(name, traceback.format_exc())))
# A module that ``import lrlab`` already loads imports from scratch exactly as lrlab does (Python
# runs the package first, which imports it in its fixed place): the import above covered it.
# Every other module is imported after forgetting all of lrlab (torch & co. stay loaded).
with_package = {k for k in sys.modules if k.startswith("lrlab.")}
own = [name for name in names if name not in with_package]
for name in own:
    for key in [k for k in sys.modules if k == "lrlab" or k.startswith("lrlab.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc()
print(json.dumps({"modules": names, "own": own, "failed": failed}))
"""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _in_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _runtime_top_imports(tree: ast.Module):
    """Imports that run when the module is imported: module level, also inside if/try blocks
    (but not ``if TYPE_CHECKING:``), never inside functions or classes."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _in_type_checking(node):
                stack += node.body
            stack += node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody
            for h in node.handlers:
                stack += h.body
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            stack += node.body


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """lrlab modules an import statement executes (every package on the way, and submodules
    named in ``from pkg import sub``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_pkg else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        names = [mod] + [f"{mod}.{a.name}" for a in node.names]
    out = set()
    for name in names:
        parts = name.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return out & known


def _import_graph() -> dict[str, set[str]]:
    """Module → the lrlab modules it imports at import time, leaving out its own ancestors
    (Python always imports a module's packages first, so those edges are not cycles)."""
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        deps = set()
        for node in _runtime_top_imports(tree):
            deps |= _targets(name, path.name == "__init__.py", node, known)
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _function_imports() -> set[tuple[str, str, int]]:
    """(module, top-level imported name, line) of every import inside a function or class."""
    found = set()
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for scope in ast.walk(tree):
            if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            for node in ast.walk(scope):
                if isinstance(node, ast.Import):
                    found |= {(name, a.name.split(".")[0], node.lineno) for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    top = "lrlab" if node.level else (node.module or "").split(".")[0]
                    found.add((name, top, node.lineno))
    return found


def test_every_module_imports_from_scratch():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["modules"]) == set(_modules()) - {"lrlab"}
    assert "lrlab.cli" in out["own"]  # the modules the package does not load were each imported alone
    assert not out["failed"], "\n\n".join(f"{k}:\n{v}" for k, v in out["failed"].items())


def test_no_import_cycles():
    graph = _import_graph()
    assert graph["lrlab.train.population"] >= {"lrlab.probes.accuracy", "lrlab.losses"}  # the walker sees imports
    cycles = _cycles(graph)
    detail = [" ; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_imports_at_module_top():
    bad = sorted((m, top, line) for m, top, line in _function_imports()
                 if top not in OPTIONAL and (m, top) not in PENDING)
    assert not bad, "imports inside functions (move them to the module top):\n" + "\n".join(
        f"{m}:{line}: {top}" for m, top, line in bad)


def test_pending_entries_are_still_needed():
    present = {(m, top) for m, top, _ in _function_imports()}
    assert PENDING <= present, f"no longer needed, remove from PENDING: {sorted(PENDING - present)}"
