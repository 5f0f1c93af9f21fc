"""Smoke scale: every run of a profile with only its sizes shrunk (``params/smoke.yaml``).

``wemem reproduce --profile P --smoke`` runs exactly the runs of ``P``; each run's parameters are its
params file's with the size keys of ``params/smoke.yaml`` replaced, and only those its notebook
declares (a notebook's other parameters keep their params-file or default values). Smoke runs
write under ``<outputs>/smoke/``, record the overrides they got in ``run.json`` (``smoke``), and
their reports say "smoke scale" in the title, so they are never mistaken for results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from wemem.batch.discovery import RunSpec, notebook_defaults, notebook_parameters
from wemem.errors import ParamsError
from wemem.params import load_params_file

SMOKE_FILE = "smoke.yaml"
SMOKE_DIR = "smoke"
_KEYS = {"sizes", "caps", "by_notebook", "data_options"}


@dataclasses.dataclass(frozen=True)
class SmokeScale:
    """The overrides of ``params/smoke.yaml``: ``sizes`` for every notebook, ``caps`` (a size
    kept as the run has it up to the cap: a number, or each number of a list), ``by_notebook``
    (stem → sizes, over ``sizes``) and ``data_options`` (offline dataset → options merged into a
    run's ``data_options``)."""

    sizes: dict[str, Any]
    caps: dict[str, Any]
    by_notebook: dict[str, dict[str, Any]]
    data_options: dict[str, dict[str, Any]]
    source: Path

    def overrides(self, spec: RunSpec) -> dict[str, Any]:
        """The parameters ``spec`` runs with at smoke scale that differ from its own."""
        declared = notebook_parameters(spec.notebook) or set()
        wanted = {**self.sizes, **self.by_notebook.get(spec.stem, {})}
        out = {k: v for k, v in wanted.items() if k in declared}
        current = {**notebook_defaults(spec.notebook), **spec.params}
        for key, cap in self.caps.items():
            if key in declared and key not in out and key in current:
                out[key] = _capped(current[key], cap)
        dataset = current.get("dataset")
        if "data_options" in declared and dataset in self.data_options:
            options = current.get("data_options") or {}
            out["data_options"] = {**options, **self.data_options[dataset]}
        return {k: v for k, v in out.items() if current.get(k, object()) != v}

    def apply(self, spec: RunSpec) -> RunSpec:
        """``spec`` at smoke scale (its overrides recorded in ``smoke``)."""
        changed = self.overrides(spec)
        return dataclasses.replace(spec, params={**spec.params, **changed}, smoke=changed)


def _capped(value: Any, cap: float) -> Any:
    """``value`` with every number above ``cap`` lowered to it (a number or a list of numbers)."""
    if isinstance(value, (list, tuple)):
        return [_capped(v, cap) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > cap:
        return type(value)(cap)
    return value


def load(params_dir: Path = Path("params")) -> SmokeScale:
    """Read ``params_dir/smoke.yaml``; ParamsError naming the file and the bad key."""
    path = Path(params_dir) / SMOKE_FILE
    if not path.is_file():
        raise ParamsError(f"--smoke: {path} not found; it lists the sizes a smoke run overrides")
    shape = f"a mapping with keys {', '.join(sorted(_KEYS))}"
    data = load_params_file(
        path, expected=shape, empty=f"empty smoke file; expected {shape} (`{{}}`: no overrides)"
    )
    if set(data) - _KEYS:
        raise ParamsError(f"{path}: expected {shape}")
    parts = {k: data.get(k) or {} for k in _KEYS}
    for key, value in parts.items():
        nested = key not in ("sizes", "caps")
        if not isinstance(value, dict) or (
            nested and not all(isinstance(v, dict) for v in value.values())
        ):
            kind = "a mapping of names to mappings" if nested else "a mapping"
            raise ParamsError(f"{path}: {key!r} must be {kind}")
    bad = [
        k
        for k, v in parts["caps"].items()
        if isinstance(v, bool) or not isinstance(v, (int, float))
    ]
    if bad:
        raise ParamsError(f"{path}: caps.{bad[0]} must be a number (the largest value a run keeps)")
    return SmokeScale(source=path, **parts)


def outputs_root(root: Path) -> Path:
    """Where smoke runs write: ``<root>/smoke``."""
    return Path(root) / SMOKE_DIR
