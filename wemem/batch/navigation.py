"""The navigation line of each notebook, derived from the manifest's notebook order.

The first Markdown cell of every notebook ends with a line linking the previous notebook, the
overview and the next one, in the order of ``params/manifest.yaml``'s ``notebooks``::

    [← 02 Motivation](02_motivation.ipynb) · [Overview](00_overview.ipynb) · [04 RMR →](04_defense_rmr.ipynb)

The overview (the manifest's first notebook) has ``Next: [01 … →](…)`` only, the last notebook no
next link. A link's label is the notebook's number and *topic*, read from its title
``# NN · Title``: the title without a leading ``Defense:``, up to its first ``:``, `` (``,
`` with `` or `` of `` (``# 07 · Defense: DP-SGD with Opacus`` → ``07 DP-SGD``), first letter upper
case. :func:`write_navigation` rewrites that one line (``wemem manifest --write-navigation``);
:func:`navigation_problems` lists the notebooks whose line differs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wemem.batch.manifest import Manifest
from wemem.errors import ParamsError

__all__ = [
    "expected_lines",
    "navigation_line",
    "navigation_problems",
    "topic",
    "write_navigation",
]

_TITLE_RE = re.compile(r"^#\s+(\d+)\s+·\s+(.+?)\s*$")
_TOPIC_END_RE = re.compile(r":| \(| with | of ")
_NAV_STARTS = ("[← ", "Next: [")  # how a navigation line begins (and no other line of the cell)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _first_markdown(nb: dict[str, Any], path: Path) -> dict[str, Any]:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            return cell
    raise ParamsError(f"{path}: no Markdown cell; the first one holds the title and navigation")


def _lines(cell: dict[str, Any]) -> list[str]:
    source = cell.get("source", "")
    return list(source) if isinstance(source, list) else source.splitlines(keepends=True)


def topic(title: str) -> str:
    """``"Defense: DP-SGD with Opacus"`` → ``"DP-SGD"`` (see the module docstring)."""
    text = title.removeprefix("Defense: ")
    text = _TOPIC_END_RE.split(text, maxsplit=1)[0].strip()
    return text[:1].upper() + text[1:]


def _label(path: Path) -> str:
    """``"<number> <topic>"`` of the notebook at ``path``, from its title ``# NN · Title``."""
    lines = _lines(_first_markdown(_read(path), path))
    match = _TITLE_RE.match(lines[0].rstrip("\n")) if lines else None
    if match is None:
        raise ParamsError(f"{path}: first Markdown cell does not start with '# NN · Title'")
    return f"{match.group(1)} {topic(match.group(2))}"


def _link(text: str, stem: str) -> str:
    return f"[{text}]({stem}.ipynb)"


def expected_lines(manifest: Manifest, notebooks_dir: Path) -> dict[str, str]:
    """Each notebook's navigation line (by stem), from the manifest's notebook order."""
    order = list(manifest.notebooks)
    labels = {stem: _label(Path(notebooks_dir) / f"{stem}.ipynb") for stem in order}
    overview = order[0] if order else ""
    out = {}
    for i, stem in enumerate(order):
        nxt = order[i + 1] if i + 1 < len(order) else None
        next_link = _link(f"{labels[nxt]} →", nxt) if nxt else None
        if i == 0:
            out[stem] = f"Next: {next_link}" if next_link else ""
            continue
        parts = [_link(f"← {labels[order[i - 1]]}", order[i - 1])]
        parts.append(_link(labels[overview].partition(" ")[2], overview))
        out[stem] = " · ".join(parts + ([next_link] if next_link else []))
    return out


def _nav_index(lines: list[str]) -> int | None:
    found = [i for i, line in enumerate(lines) if line.startswith(_NAV_STARTS)]
    return found[-1] if found else None


def navigation_line(path: Path) -> str | None:
    """The navigation line of the notebook at ``path`` as written (``None``: it has none)."""
    lines = _lines(_first_markdown(_read(path), path))
    i = _nav_index(lines)
    return None if i is None else lines[i].rstrip("\n")


def navigation_problems(manifest: Manifest, notebooks_dir: Path) -> list[str]:
    """One line per notebook whose navigation line is missing or differs from the generated one."""
    problems = []
    for stem, want in expected_lines(manifest, notebooks_dir).items():
        got = navigation_line(Path(notebooks_dir) / f"{stem}.ipynb")
        if got != want:
            problems.append(f"{stem}: navigation line {got!r}, expected {want!r}")
    return problems


def _with_line(lines: list[str], line: str) -> list[str]:
    i = _nav_index(lines)
    if i is None:  # appended after a blank line, as the other notebooks have it
        if lines and not lines[-1].endswith("\n"):
            lines = [*lines[:-1], lines[-1] + "\n"]
        return [*lines, "\n", line]
    ending = "\n" if lines[i].endswith("\n") else ""
    return [*lines[:i], line + ending, *lines[i + 1 :]]


def write_navigation(manifest: Manifest, notebooks_dir: Path) -> list[Path]:
    """Rewrite the navigation line of every notebook of the manifest whose line differs; nothing
    else of the file changes. Returns the notebooks rewritten."""
    changed = []
    for stem, want in expected_lines(manifest, notebooks_dir).items():
        path = Path(notebooks_dir) / f"{stem}.ipynb"
        if navigation_line(path) == want:
            continue
        nb = _read(path)
        cell = _first_markdown(nb, path)
        lines = _with_line(_lines(cell), want)
        cell["source"] = lines if isinstance(cell.get("source"), list) else "".join(lines)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        changed.append(path)
    return changed
