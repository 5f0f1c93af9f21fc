"""What a run depends on, as one digest: its notebook, parameters, the library code it imports.

``wemem reproduce`` skips a run whose fingerprint equals the one recorded in its ``run.json`` (and
whose outputs exist). The fingerprint hashes

* the notebook's cells (type, source, tags; not outputs or execution counts);
* the profile and the parameters of its params file;
* every ``wemem`` source file the notebook can reach by imports: the modules its code cells import
  or name (``from wemem import x``, ``wemem.x.y``), then, transitively, every module those import
  (anywhere in the file, so imports inside functions count), packages' ``__init__`` included;
* the fingerprints of the runs it reads the *outputs* of (notebook 12 reads the others' metrics).

Datasets are not hashed (the paper's are large); their content enters the model cache keys, so a
changed dataset retrains through the cache, but a skipped run is not re-executed: use ``--force``.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

import nbformat

from wemem.io import digest

PACKAGE = Path(__file__).resolve().parents[1]


def notebook_digest(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    cells = [
        [c.cell_type, c.source, sorted(c.get("metadata", {}).get("tags", []))] for c in nb.cells
    ]
    return digest(cells)


def _module_file(name: str) -> Path | None:
    """``wemem.a.b`` → its source file (module or package ``__init__``), or ``None``."""
    if name == "wemem":
        return PACKAGE / "__init__.py"
    if not name.startswith("wemem."):
        return None
    rel = Path(*name.split(".")[1:])
    for cand in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(tree: ast.AST, current: str) -> set[str]:
    """Names of ``wemem`` modules a syntax tree imports or names (``current``: its module name)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "wemem"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                own = _module_file(current)
                is_pkg = own is not None and own.name == "__init__.py"
                parts = current.split(".")
                parts = parts if is_pkg else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "wemem":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute):
            chain = []
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name) and node.id == "wemem":
                found.add("wemem." + chain[-1])
    return {n for n in found if _module_file(n) is not None}


@cache
def _module_deps(name: str) -> frozenset[str]:
    path = _module_file(name)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(_imports(tree, name))


def closure(roots: set[str]) -> set[str]:
    """Every ``wemem`` module reachable from ``roots`` (parent packages included)."""
    seen: set[str] = set()
    todo = list(roots) + ["wemem"]
    while todo:
        name = todo.pop()
        if name in seen or _module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += list(_module_deps(name))
    return seen


def notebook_modules(path: Path) -> set[str]:
    """The ``wemem`` modules a notebook's code uses, transitively."""
    nb = nbformat.read(path, as_version=4)
    roots: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: fall back to the whole package
            return closure(_all_modules())
        roots |= _imports(tree, "__main__")
    return closure(roots)


def _all_modules() -> set[str]:
    out = set()
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.add(".".join(parts))
    return out


def code_digest(modules: set[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(modules):
        path = _module_file(name)
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def run_fingerprint(spec, upstream: list[str] | None = None) -> str:
    """The digest a run is skipped by (see the module docstring); ``spec`` is a ``RunSpec``."""
    modules = notebook_modules(Path(spec.notebook))
    payload = {
        "notebook": notebook_digest(Path(spec.notebook)),
        "profile": spec.profile,
        "params": spec.params,
        "code": code_digest(modules),
        "upstream": sorted(upstream or []),
    }
    return digest(payload)
