"""A notebook's cell tagged ``parameters``: the names it declares and their literal defaults.

The one reader of that cell: the runner checks params files against its names
(:func:`wemem.batch.discovery.validate_runs`), the dry run and the cost model overlay params files on
its defaults (:func:`wemem.batch.runner.plan`, :func:`wemem.planning.workload.plan_run`).

Parsed with :mod:`ast` rather than ``papermill.inspect_notebook``, whose line-based parser silently
skips any line holding two ``=`` (``x = 1  # paper: x=2``, ``d = dict(a=1)``).
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from wemem.errors import ParamsError

TAG = "parameters"

__all__ = ["TAG", "ParametersCell", "read_parameters_cell"]


@dataclass(frozen=True)
class ParametersCell:
    """What a ``parameters`` cell declares.

    Attributes:
        names: every name assigned at the cell's top level (``x = …``, ``x: int = …``, ``a, b = …``).
        defaults: ``name → value`` for each ``name = <literal>`` (one plain name on the left, a
            Python literal on the right, :func:`ast.literal_eval`); other assignments are left out.
    """

    names: frozenset[str]
    defaults: Mapping[str, Any]


def _names(tree: ast.Module) -> frozenset[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.AST):
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names)


def _defaults(tree: ast.Module) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                with contextlib.suppress(ValueError, SyntaxError):
                    out[target.id] = ast.literal_eval(node.value)
    return out


def read_parameters_cell(path: Path) -> ParametersCell | None:
    """The first cell of the notebook at ``path`` tagged ``parameters``; ``None``: no such cell.

    Raises:
        ParamsError: the cell is not valid Python.
    """
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if TAG in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return None
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise ParamsError(f"{path}: parameters cell is not valid Python: {exc}") from None
    return ParametersCell(names=_names(tree), defaults=_defaults(tree))
