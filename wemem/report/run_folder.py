"""A run's output folder: figures, tables and ``metrics.json``, written atomically.

Notebooks open their folder once with :func:`open_run` and write everything a reader will see
through it, so that numbers flow from files (tables, figures and summary sentences read
``metrics.json``) and a crash never leaves a half-written file behind: every write goes to a
temporary file in the same folder and is moved into place with :func:`os.replace`.

Layout of a run folder (see ``outputs/README.md``)::

    <run folder>/
        metrics.json              # sections merged by RunFolder.update_metrics
        figures/<name>.png|pdf    # RunFolder.save_figure
        tables/<name>.csv|tex     # RunFolder.save_table
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from wemem.io import atomic_write_bytes, atomic_write_text, to_jsonable

logger = logging.getLogger(__name__)


_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
FIGURE_DPI = 150

__all__ = [
    "FIGURE_DPI",
    "RunFolder",
    "atomic_write_bytes",
    "atomic_write_text",
    "find_repo_root",
    "open_run",
    "to_jsonable",
]


def _deep_merge(base: dict, update: Mapping) -> dict:
    """Merge ``update`` into ``base`` in place: nested dicts merge, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"file name {name!r} not allowed: use letters, digits, '_', '-' and '.', "
            "no folders and no extension"
        )
    return name


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """The output folder of one run of one notebook.

    Attributes:
        path: the folder; created by :func:`open_run`.
    """

    path: Path

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.path / "tables"

    def save_figure(self, fig, name: str, *, close: bool = False) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (150 dpi) and ``.pdf``.

        Returns the PNG path. The figure is saved at its own size (no tight bounding box), so a
        6.4×4.8 in figure is 960×720 px; call ``fig.tight_layout()`` or use constrained layout.
        With pyplot's inline backend a figure made by ``plt.subplots`` shows once when its cell
        ends; a cell that also ends with ``fig`` shows it twice, unless ``close=True`` (closes
        it in pyplot, so only the trailing ``fig`` shows it).
        """
        _check_name(name)
        for fmt in ("png", "pdf"):
            buf = BytesIO()
            # Fixed metadata keeps PDFs byte-identical across runs (no creation date).
            meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
            fig.savefig(buf, format=fmt, dpi=FIGURE_DPI, metadata=meta)
            atomic_write_bytes(self.figures_dir / f"{name}.{fmt}", buf.getvalue())
        if close and "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)
        logger.debug("saved figure %s", self.figures_dir / f"{name}.png")
        return self.figures_dir / f"{name}.png"

    def save_table(self, df, name: str, *, index: bool = False, float_format: str = "%.4g") -> Path:
        """Save a pandas DataFrame as ``tables/<name>.csv`` and ``tables/<name>.tex``.

        The CSV keeps full precision; the LaTeX tabular (booktabs rules) rounds with
        ``float_format``. ``index``: also write the index (off by default: put labels in columns).
        Returns the CSV path.
        """
        _check_name(name)
        atomic_write_text(self.tables_dir / f"{name}.csv", df.to_csv(index=index))
        try:
            tex = df.to_latex(index=index, float_format=lambda x: float_format % x)
        except ImportError:  # pandas' LaTeX writer needs jinja2; keep the table without it
            logger.info("pandas.to_latex unavailable (jinja2 missing); using the plain writer")
            tex = _plain_latex(df, index=index, float_format=float_format)
        atomic_write_text(self.tables_dir / f"{name}.tex", tex)
        return self.tables_dir / f"{name}.csv"

    def read_metrics(self) -> dict:
        """Return the contents of ``metrics.json`` (``{}`` when nothing was written yet)."""
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def update_metrics(self, **sections: Any) -> dict:
        """Merge ``sections`` into ``metrics.json`` and return the whole, updated mapping.

        ``run.update_metrics(attack={"auc": 0.61})`` then ``run.update_metrics(attack={"tpr": 0.1})``
        leaves both keys under ``attack``: nested mappings merge, other values replace.
        """
        return self._write_metrics(_deep_merge(self.read_metrics(), to_jsonable(sections)))

    def _write_metrics(self, metrics: dict) -> dict:
        text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write_text(self.metrics_path, text)
        return metrics


def _latex_escape(text: str) -> str:
    repl = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}
    return "".join(repl.get(ch, ch) for ch in text)


def _plain_latex(df, *, index: bool, float_format: str) -> str:
    """A booktabs tabular without pandas' Styler (used when jinja2 is not installed)."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return float_format % value
        return _latex_escape(str(value))

    header = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = [
        "\\begin{tabular}{" + "l" * len(header) + "}",
        "\\toprule",
        " & ".join(_latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for label, row in zip(df.index, df.itertuples(index=False), strict=True):
        cells = ([cell(label)] if index else []) + [cell(v) for v in row]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``.

    Falls back to ``start`` itself when no such folder exists.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def open_run(
    notebook: str,
    *,
    profile: str,
    output_dir: str = "",
    settings: Any = None,
) -> RunFolder:
    """Open (create) the output folder of this run of ``notebook`` and record its settings.

    Args:
        notebook: the notebook's stem, e.g. ``"02_motivation"``.
        profile: the profile parameter (``cpu``, ``tiny``, ``paper``).
        output_dir: the ``output_dir`` parameter. The runner injects the run's final folder
            relative to the notebook's folder and names, in the kernel's environment, the temp
            folder that stands for it until the run is complete (``WEMEM_RUN_AS`` and
            ``WEMEM_RUN_DIR``, :mod:`wemem.batch.execution`): the files go there, while the
            records (``metrics.json``, the report) show only the stable name. When it is empty
            (someone running the notebook in JupyterLab) the folder is
            ``outputs/<notebook>/<profile>-interactive/`` under the repository root.
        settings: the validated settings (a dataclass or a mapping), stored in ``metrics.json``
            under ``"settings"``; ``None`` stores nothing.
    """
    stem = notebook[: -len(".ipynb")] if notebook.endswith(".ipynb") else notebook
    _check_name(stem)
    staged = os.environ.get("WEMEM_RUN_DIR")
    if output_dir and staged and str(output_dir) == os.environ.get("WEMEM_RUN_AS"):
        path = Path(staged)
    elif output_dir:
        path = Path(output_dir)
    else:
        _check_name(profile)
        path = find_repo_root() / "outputs" / stem / f"{profile}-interactive"
    path.mkdir(parents=True, exist_ok=True)
    run = RunFolder(path.resolve())
    if settings is not None:
        if not (dataclasses.is_dataclass(settings) or isinstance(settings, Mapping)):
            raise TypeError(f"settings must be a dataclass or a mapping, not {type(settings)}")
        # Replace rather than merge: a setting dropped since the last interactive run must go.
        metrics = run.read_metrics()
        metrics["settings"] = to_jsonable(settings)
        run._write_metrics(metrics)
    logger.info("run folder: %s", run.path)
    return run
