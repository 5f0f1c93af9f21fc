"""Discover and validate runs: which notebook runs with which params file, in which order.

A *run* is one execution of ``notebooks/<stem>.ipynb`` in a profile with the parameters of one
file ``params/<profile>/<stem>[.<variant>].yaml``; its name is ``<profile>`` or
``<profile>-<variant>``. For the ``cpu`` profile a notebook without a params file runs once with
its defaults; other profiles skip such notebooks. Runs are ordered as ``params/manifest.yaml``
lists them (:mod:`wemem.batch.manifest`). Everything here reads files only;
:mod:`wemem.batch.runner` runs the batch.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
from pathlib import Path
from typing import Any

from wemem.batch import manifest
from wemem.batch.parameters_cell import read_parameters_cell
from wemem.errors import ParamsError
from wemem.params import PROFILE_NAME, load_params_file

logger = logging.getLogger("wemem.batch.runner")

DEFAULT_PROFILE = "cpu"
RESERVED_PARAMS = ("profile", "output_dir")  # injected by the runner, never set in params files
RUNNER_KEY = "resources"  # read by the runner (Ray task resources), not passed to the notebook
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$")

__all__ = [
    "DEFAULT_PROFILE",
    "RESERVED_PARAMS",
    "RUNNER_KEY",
    "RunSpec",
    "check_profile",
    "discover_runs",
    "notebook_defaults",
    "notebook_parameters",
    "validate_runs",
]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of one notebook.

    Attributes:
        notebook: path of the source notebook.
        stem: its file name without ``.ipynb`` (``02_motivation``).
        profile: ``cpu``, ``tiny``, ``paper``, … (a folder of ``params/``).
        variant: the ``<variant>`` of ``<stem>.<variant>.yaml``, or ``None``.
        params: the parameters read from the params file (``{}``: the notebook's defaults).
        run_name: ``<profile>`` or ``<profile>-<variant>``; the run's folder name.
        params_file: the file ``params`` came from, or ``None``.
        resources: the params file's ``resources:`` key (``num_cpus``, ``num_gpus`` of each Ray
            task, see :mod:`wemem.experiment.executor`); the runner's, not passed to the notebook.
        smoke: at smoke scale (:mod:`wemem.batch.smoke`), the parameters overridden (already in
            ``params``); ``None`` for a run at its own scale.
    """

    notebook: Path
    stem: str
    profile: str
    variant: str | None
    params: dict
    run_name: str
    params_file: Path | None = None
    resources: dict = dataclasses.field(default_factory=dict)
    smoke: dict | None = None

    @property
    def run_id(self) -> str:
        """``<stem>`` or ``<stem>.<variant>``: the name of the params file and the manifest entry."""
        return self.stem if self.variant is None else f"{self.stem}.{self.variant}"


# ----------------------------------------------------------------------------- discovery


def _profiles(params_dir: Path) -> list[str]:
    """``cpu`` and every folder of ``params_dir`` with a profile's name (:data:`PROFILE_NAME`)."""
    found = {p.name for p in params_dir.iterdir() if p.is_dir()} if params_dir.is_dir() else set()
    return sorted(p for p in found | {DEFAULT_PROFILE} if PROFILE_NAME.fullmatch(p))


def check_profile(profile: str, params_dir: Path) -> None:
    """Raise :class:`ParamsError` unless ``profile`` is ``cpu`` or a folder of ``params_dir`` with
    a profile's name (letters, digits, ``_`` and ``-``): any such folder is a profile."""
    if not isinstance(profile, str) or not PROFILE_NAME.fullmatch(profile):
        raise ParamsError(
            f"profile {profile!r} not allowed: a profile is a folder of {params_dir} named with "
            "letters, digits, '_' and '-'"
        )
    profiles = _profiles(params_dir)
    if profile not in profiles:
        raise ParamsError(
            f"profile {profile!r} unknown: no folder {params_dir / profile}; "
            f"allowed: {', '.join(profiles)}"
        )


def _load_params(path: Path) -> dict:
    data = load_params_file(path)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ParamsError(f"{path}: parameter names must be strings, got {bad[0]!r}")
    return data


def discover_runs(
    profile: str,
    *,
    only: str | None = None,
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
) -> list[RunSpec]:
    """List the runs of ``profile``, notebooks sorted by name, variants after the plain run.

    ``profile``: a folder of ``params_dir`` (:func:`check_profile`), or ``cpu`` (which may have no
    folder); a custom one runs the notebooks it has files for. ``only``:
    comma-separated fnmatch globs on stems (``"02_*"``) or, with a dot, on run ids
    (``"06_*.cifar10_*"``); ``None`` for all. ParamsError: unknown profile; ``only`` matches
    nothing; a params file that names no notebook, has a bad variant or is not a YAML mapping.
    """
    notebooks_dir, params_dir = Path(notebooks_dir), Path(params_dir)
    check_profile(profile, params_dir)
    notebooks = sorted(notebooks_dir.glob("*.ipynb"))
    if not notebooks:
        raise ParamsError(f"notebooks folder {str(notebooks_dir)!r}: no notebook (*.ipynb) there")
    stems = [nb.stem for nb in notebooks]
    globs = [g.strip() for g in only.split(",")] if only is not None else []
    if only is not None:  # globs on stems, or on run ids (<stem>.<variant>) when they have a dot
        notebooks = [nb for nb in notebooks if _matches(nb.stem, globs, stem=True)]
        if not notebooks:
            raise ParamsError(
                f"only={only!r} matches no notebook in {notebooks_dir}; "
                f"stems: {', '.join(stems) or '(none)'}"
            )

    profile_dir = params_dir / profile
    files = sorted(profile_dir.glob("*.y*ml")) if profile_dir.is_dir() else []
    by_stem: dict[str, list[tuple[str | None, Path]]] = {}
    for path in files:
        if path.suffix == ".yml":
            raise ParamsError(f"{path}: params files end in '.yaml'; rename it")
        stem, _, variant = path.name[: -len(".yaml")].partition(".")
        if stem not in stems:
            raise ParamsError(
                f"{path}: names no notebook; expected <stem>[.<variant>].yaml with stem one of: "
                f"{', '.join(stems) or '(none)'}"
            )
        if variant and not _NAME_RE.match(variant):
            raise ParamsError(
                f"{path}: variant {variant!r} not allowed: use letters, digits, '_' and single "
                "'-' between them"
            )
        by_stem.setdefault(stem, []).append((variant or None, path))

    runs = []
    for nb in notebooks:
        entries = sorted(by_stem.get(nb.stem, []), key=lambda e: (e[0] is not None, e[0] or ""))
        if not entries:
            if profile != DEFAULT_PROFILE:
                logger.info("skipping %s: no params file in %s", nb.stem, profile_dir)
                continue
            entries = [(None, None)]
        for variant, path in entries:
            params = _load_params(path) if path is not None else {}
            resources = _resources(path, params.pop(RUNNER_KEY, {}))
            runs.append(
                RunSpec(
                    notebook=nb,
                    stem=nb.stem,
                    profile=profile,
                    variant=variant,
                    params=params,
                    run_name=profile if variant is None else f"{profile}-{variant}",
                    params_file=path,
                    resources=resources,
                )
            )
    if only is not None:
        runs = [r for r in runs if _matches(r.run_id, globs, stem=False)]
        if not runs:
            raise ParamsError(f"only={only!r} matches no run of profile {profile!r}")
    return _in_manifest_order(runs, params_dir, profile)


def _matches(name: str, globs: list[str], *, stem: bool) -> bool:
    """Whether a notebook stem (``stem``) or a run id matches one of ``only``'s globs: a glob with
    a dot is a run-id glob (its part before the dot selects stems), one without selects stems."""
    if stem:
        return any(fnmatch.fnmatchcase(name, g.partition(".")[0]) for g in globs)
    return any(fnmatch.fnmatchcase(name, g if "." in g else f"{g}*") for g in globs)


def _resources(path: Path | None, value: Any) -> dict:
    allowed = ("num_cpus", "num_gpus")
    if not isinstance(value, dict) or set(value) - set(allowed):
        raise ParamsError(
            f"{path}: '{RUNNER_KEY}' must map {' and/or '.join(allowed)} to numbers, got {value!r}"
        )
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise ParamsError(f"{path}: {RUNNER_KEY}.{k} = {v!r}: expected a number >= 0")
    return dict(value)


def _in_manifest_order(runs: list[RunSpec], params_dir: Path, profile: str) -> list[RunSpec]:
    if not (Path(params_dir) / manifest.FILE).exists():
        return runs
    m = manifest.load(params_dir)
    unlisted = [r.run_id for r in runs if m.run(profile, r.stem, r.variant) is None]
    if unlisted and profile in m.runs:  # a custom profile (unlisted) runs in notebook order
        logger.warning(
            "runs not in %s (run after the listed ones): %s", manifest.FILE, ", ".join(unlisted)
        )
    return sorted(runs, key=manifest.order_key(m, profile))


def validate_runs(runs: list[RunSpec]) -> None:
    """Check every params key against its notebook's ``parameters`` cell, before running anything.

    Raises:
        ParamsError: listing every problem found: an unknown key, a key the runner injects
            (``profile``, ``output_dir``), a notebook without a cell tagged ``parameters`` or one
            whose parameters lack ``profile`` or ``output_dir``.
    """
    problems: list[str] = []
    allowed_by_nb: dict[Path, set[str] | None] = {}
    for spec in runs:
        if spec.notebook not in allowed_by_nb:
            allowed_by_nb[spec.notebook] = _notebook_params(spec.notebook, problems)
        allowed = allowed_by_nb[spec.notebook]
        if allowed is None:
            continue
        source = spec.params_file or spec.notebook
        for key in spec.params:
            if key in RESERVED_PARAMS:
                problems.append(
                    f"{source}: parameter {key!r} is set by the runner; remove it from the file"
                )
            elif key not in allowed:
                choices = ", ".join(sorted(allowed - set(RESERVED_PARAMS))) or "(none)"
                problems.append(
                    f"{source}: unknown parameter {key!r} for notebook {spec.stem}; "
                    f"allowed: {choices}"
                )
    if problems:
        raise ParamsError("\n".join(problems))


def notebook_parameters(path: Path) -> set[str] | None:
    """Names assigned at top level of the notebook's cell tagged ``parameters``; ``None``: no cell
    (:func:`wemem.batch.parameters_cell.read_parameters_cell`).

    Raises:
        ParamsError: the parameters cell is not valid Python.
    """
    cell = read_parameters_cell(path)
    return None if cell is None else set(cell.names)


def _notebook_params(path: Path, problems: list[str]) -> set[str] | None:
    try:
        allowed = notebook_parameters(path)
    except ParamsError as exc:
        problems.append(str(exc))
        return None
    if allowed is None:
        problems.append(f"{path}: no cell tagged 'parameters'; every notebook needs exactly one")
        return None
    missing = [p for p in RESERVED_PARAMS if p not in allowed]
    if missing:
        problems.append(
            f"{path}: parameters cell lacks {', '.join(missing)}; every notebook declares "
            'profile = "cpu" and output_dir = ""'
        )
    return allowed


def notebook_defaults(path: Path) -> dict[str, Any]:
    """The literal values assigned in the notebook's ``parameters`` cell (non-literals skipped;
    ``{}`` without the cell)."""
    cell = read_parameters_cell(path)
    return {} if cell is None else dict(cell.defaults)
