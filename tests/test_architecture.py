"""The package's shape, read from its source (AST; nothing is imported or run).

Rooms import one way (STYLE.md, *Layout*): the science (data, models, training, pruning,
memorization, defenses, attacks) → experiment → studies, report → batch, planning → cli, all on
top of a base of small modules (names, params, cache, io, errors, progress). Imports inside
functions count. No import cycle, no module over 400 lines, no function over 80 lines except the
few listed below with their reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wemem"
MAX_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL = 14

#: Layer of each room (first component under ``wemem``); a module may import its own layer or lower.
LAYERS = {
    **dict.fromkeys(("", "names", "params", "cache", "io", "errors", "progress"), 0),
    **dict.fromkeys(
        ("data", "models", "training", "pruning", "memorization", "defenses", "attacks"), 1
    ),
    "experiment": 2,
    **dict.fromkeys(("studies", "report"), 3),
    **dict.fromkeys(("batch", "planning"), 4),
    "cli": 5,
}

#: Functions allowed past 80 lines (at most five), each with its reason.
LONG_FUNCTIONS: dict[str, str] = {}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def analyse(root: Path) -> dict:
    """Modules, import edges (package ``__init__`` re-exports of its own children excluded),
    line counts and functions over the limit of the package at ``root``."""
    pkg = root.name
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    mods = {module_name(root, p): p for p in files}

    def target(name: str) -> str | None:
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    lines, long_funcs = {}, {}
    for m, p in mods.items():
        src = p.read_text(encoding="utf-8")
        lines[m] = len(src.splitlines())
        is_pkg = p.name == "__init__.py"
        for node in ast.walk(ast.parse(src)):
            found: list[str | None] = []
            if isinstance(node, ast.Import):
                found = [target(a.name) for a in node.names if a.name.split(".")[0] == pkg]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(m, is_pkg, node)
                if base.split(".")[0] == pkg:
                    found = [target(f"{base}.{a.name}") or target(base) for a in node.names]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_funcs[f"{m}.{node.name}"] = n
            for t in found:
                if t and t != m and not (is_pkg and t.startswith(m + ".")):
                    edges[m].add(t)
    return {"modules": mods, "edges": edges, "lines": lines, "long_functions": long_funcs}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, targets in sorted(edges.items()):
        for t in sorted(targets):
            if LAYERS[room(t)] > LAYERS[room(m)]:
                bad.append(f"{m} (layer {LAYERS[room(m)]}) imports {t} (layer {LAYERS[room(t)]})")
    return bad


def problems(root: Path) -> list[str]:
    a = analyse(root)
    out = [f"import cycle: {' ↔ '.join(c)}" for c in cycles(a["edges"])]
    unknown = sorted({room(m) for m in a["modules"]} - set(LAYERS))
    out += [f"room {r!r} has no layer in LAYERS" for r in unknown]
    if not unknown:
        out += layer_violations(a["edges"])
    out += [f"{m}: {n} lines (> {MAX_LINES})" for m, n in a["lines"].items() if n > MAX_LINES]
    out += [
        f"{f}: {n} lines (> {MAX_FUNCTION_LINES}) and not in LONG_FUNCTIONS"
        for f, n in a["long_functions"].items()
        if f not in LONG_FUNCTIONS
    ]
    top = [p for p in root.glob("*.py") if p.name != "__init__.py"]
    if len(top) > MAX_TOP_LEVEL:
        out.append(f"{len(top)} top-level modules (> {MAX_TOP_LEVEL})")
    return out


def test_the_package_holds_its_shape():
    assert problems(PACKAGE) == []


def test_allow_list_is_short_and_current():
    assert len(LONG_FUNCTIONS) <= 5
    long_now = analyse(PACKAGE)["long_functions"]
    assert set(LONG_FUNCTIONS) <= set(long_now), "an allowed function is no longer long: drop it"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "wemem"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "__init__.py": "",
    "errors.py": "class E(Exception):\n    pass\n",
    "data/__init__.py": "",
    "data/pool.py": "from wemem.errors import E\n",
    "experiment/__init__.py": "",
    "experiment/replicate.py": "from wemem.data import pool\n",
}


def test_a_clean_tree_passes(tmp_path):
    assert problems(_tree(tmp_path, CLEAN)) == []


def test_a_planted_cycle_through_a_function_import_fails(tmp_path):
    files = dict(CLEAN)
    files["data/noise.py"] = "from wemem.data import pool\n"
    files["data/pool.py"] = "def f():\n    from wemem.data import noise\n"
    found = problems(_tree(tmp_path, files))
    assert any("import cycle" in p and "wemem.data.noise" in p for p in found), found


def test_an_upward_import_fails(tmp_path):
    files = dict(CLEAN)
    files["data/pool.py"] = "def f():\n    from wemem.experiment import replicate\n"
    found = problems(_tree(tmp_path, files))
    assert any("wemem.data.pool (layer 1) imports wemem.experiment.replicate" in p for p in found)


def test_a_401_line_module_fails(tmp_path):
    files = dict(CLEAN)
    files["data/pool.py"] = "x = 1\n" * 401
    found = problems(_tree(tmp_path, files))
    assert found == ["wemem.data.pool: 401 lines (> 400)"]
    files["data/pool.py"] = "x = 1\n" * 400
    assert problems(_tree(tmp_path / "ok", files)) == []


def test_a_long_function_fails(tmp_path):
    files = dict(CLEAN)
    files["data/pool.py"] = "def f():\n" + "    x = 1\n" * 80
    found = problems(_tree(tmp_path, files))
    assert found == ["wemem.data.pool.f: 81 lines (> 80) and not in LONG_FUNCTIONS"]


@pytest.mark.parametrize("room_name", ["names", "cli"])
def test_every_room_has_a_layer(room_name):
    assert room_name in LAYERS
