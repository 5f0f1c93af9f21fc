"""Validated, frozen settings for every notebook and the CLI.

A notebook's ``parameters`` cell holds plain literals; its setup cell turns them into one frozen
:class:`Settings` with :func:`settings_from`. Paper settings live only in ``params/`` files
(STYLE.md, principle 3). An unknown key or a bad value raises :class:`~wemem.errors.ParamsError`
naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wemem.errors import ParamsError
from wemem.names import APPROACHES, ARCH_NAMES, DATASETS, MEMSCORE_METHODS, NORMS

PROFILES = ("cpu", "tiny", "paper")  # the built-in profiles; any params/<name>/ is one too
#: What a profile name may be: a folder name of letters, digits, ``_`` and ``-``, not starting
#: with ``-`` (so never a path, a hidden folder or an option).
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
DATASET_NAMES = DATASETS
DEVICES = ("auto", "cpu", "cuda")


def _choice(*allowed: Any) -> dict:
    return {"allowed": allowed}


def _range(
    lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False
) -> dict:
    return {"range": (lo, hi, lo_open, hi_open)}


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on. Defaults are the offline ``cpu`` profile (spec cpu_scouting §4)."""

    # run
    # a built-in profile (PROFILES) or any folder params/<name>/: a safe folder name
    profile: str = field(default="cpu", metadata={"pattern": PROFILE_NAME})
    output_dir: str = ""
    device: str = field(default="auto", metadata=_choice(*DEVICES))
    threads: int = field(default=1, metadata=_range(1, 256))
    seeds: tuple[int, ...] = (0,)
    cache_dir: str = ""
    # data (spec §5)
    dataset: str = field(default="synthetic", metadata=_choice(*DATASET_NAMES))
    data_options: Mapping[str, Any] = field(default_factory=dict)
    label_noise: float = field(default=0.1, metadata=_range(0.0, 0.99))
    noise_seed: int = 0
    split_seed: int = 7
    n_shadows: int = field(default=2, metadata=_range(1, 64))
    member_fraction: float = field(default=0.9, metadata=_range(0.0, 1.0, lo_open=True))
    dev_fraction: float = field(default=0.34, metadata=_range(0.0, 1.0, lo_open=True))
    # model (spec §6.1)
    arch: str = field(default="fc", metadata=_choice(*ARCH_NAMES))
    width: float = field(default=1.0, metadata=_range(0.0, 16.0, lo_open=True))
    stem_maxpool: bool = True
    # BatchNorm (the paper) or GroupNorm for the CNNs of the whole experiment
    norm: str = field(default="batch", metadata=_choice(*NORMS))
    # the norm of the CNNs the DP-SGD rows train when norm is batch (dense models included): DP-SGD
    # needs per-example gradients, which BatchNorm lacks (this project's deviation; the paper does
    # not say how it ran DP on BatchNorm models). Every other row keeps the run's norm.
    dp_norm: str = field(default="group", metadata=_choice("group"))
    # training (spec §4.1, §10)
    lr: float = field(default=1e-3, metadata=_range(0.0, 10.0, lo_open=True))
    weight_decay: float = field(default=5e-4, metadata=_range(0.0, 10.0))
    batch_size: int = field(default=128, metadata=_range(1, 1_000_000))
    max_epochs: int = field(default=60, metadata=_range(1, 10_000))
    patience: int = field(default=5, metadata=_range(0, 10_000))
    # pruning (spec §4.2, §4.3)
    pruning_approach: str = field(default="l1_unstructured", metadata=_choice(*APPROACHES))
    # the fraction of the remaining weights each round removes: 0 prunes nothing, 1 everything
    pruning_rate: float = field(default=0.6, metadata=_range(0.0, 1.0, lo_open=True, hi_open=True))
    pruning_rounds: int = field(default=5, metadata=_range(1, 100))
    finetune_epochs: int = field(default=21, metadata=_range(1, 10_000))
    # memorization scores (spec §3): estimator and its budget
    memscore_method: str = field(default="fz", metadata=_choice(*MEMSCORE_METHODS))
    memscore_models: int = field(default=16, metadata=_range(2, 100_000))
    memscore_ratio: float = field(default=0.7, metadata=_range(0.0, 0.99, lo_open=True))
    memscore_epochs: int = field(default=20, metadata=_range(1, 10_000))
    memscore_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        out["data_options"] = dict(self.data_options)
        return out


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES = {
    f.name: type(f.default) if f.default is not dataclasses.MISSING else dict
    for f in FIELDS.values()
}


def _coerce(key: str, value: Any) -> Any:
    """Check one value's type and allowed set or range; return it in canonical form."""
    f = FIELDS[key]
    want = _TYPES[key]
    bad = None
    if key == "seeds":
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ParamsError(
                f"parameter 'seeds' = {value!r}: expected a non-empty list of integers"
            )
        return tuple(int(v) for v in value)
    if key == "data_options":
        if not isinstance(value, Mapping):
            raise ParamsError(f"parameter 'data_options' = {value!r}: expected a mapping")
        return dict(value)
    if want is bool:
        if not isinstance(value, bool):
            bad = "true or false"
    elif want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            bad = "an integer"
    elif want is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad = "a number"
        else:
            value = float(value)
    elif want is str and not isinstance(value, str):
        bad = "a string"
    if bad:
        raise ParamsError(f"parameter '{key}' = {value!r}: expected {bad}")
    meta = f.metadata
    if "allowed" in meta and value not in meta["allowed"]:
        allowed = ", ".join(map(str, meta["allowed"]))
        raise ParamsError(f"parameter '{key}' = {value!r}: allowed values are {allowed}")
    if "pattern" in meta and not meta["pattern"].fullmatch(value):
        raise ParamsError(
            f"parameter '{key}' = {value!r}: not allowed; a folder name of letters, digits, "
            f"'_' and '-' (built-in: {', '.join(PROFILES)}; any params/<name>/ is a profile)"
        )
    if "range" in meta:
        _check_range(key, value, *meta["range"])
    return value


def _check_range(
    key: str, value: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool
) -> None:
    """Raise unless ``value`` is finite and in the interval. No field allows NaN or infinity:
    NaN compares false with every bound and would pass the bounds checks below."""
    interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if not math.isfinite(value):
        raise ParamsError(f"parameter '{key}' = {value!r}: must be a finite number in {interval}")
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if low_bad or high_bad:
        raise ParamsError(f"parameter '{key}' = {value!r}: allowed range is {interval}")


def validate(params: Mapping[str, Any]) -> Settings:
    """Validate a mapping of parameters into frozen :class:`Settings` (unknown keys are errors)."""
    if not isinstance(params, Mapping):
        raise ParamsError(
            f"parameters must be a mapping of name to value, got {type(params).__name__}"
        )
    unknown = sorted(set(params) - set(FIELDS))
    if unknown:
        raise ParamsError(
            f"unknown parameter '{unknown[0]}'; allowed parameters are {', '.join(sorted(FIELDS))}"
        )
    return Settings(**{k: _coerce(k, v) for k, v in params.items()})


def settings_from(namespace: Mapping[str, Any]) -> Settings:
    """Collect the :class:`Settings` fields defined in a notebook's namespace and validate them.

    Use in a notebook's setup cell as ``settings = wemem.params.settings_from(globals())``: every
    variable of the ``parameters`` cell whose name is a settings field is taken, the rest ignored
    (the runner has already rejected unknown keys in params files).
    """
    return validate({k: namespace[k] for k in FIELDS if k in namespace})


def settings_table(settings: Settings):
    """The effective settings as a two-column table (for the notebooks' setup cell)."""
    import pandas as pd

    d = settings.to_dict()
    return pd.DataFrame({"parameter": list(d), "value": [repr(v) for v in d.values()]}).set_index(
        "parameter"
    )


class _DuplicateKeyError(Exception):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key written twice in one mapping (PyYAML keeps the last one
    silently). Keys brought in by a merge (``<<: *anchor``) may still be overridden."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise _DuplicateKeyError(key, first, line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: its problem and line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


EMPTY_PARAMS = "empty params file; write `{}` to run the notebook's defaults"


def load_params_file(
    path: str | Path,
    *,
    expected: str = "a mapping of parameter: value",
    empty: str = EMPTY_PARAMS,
) -> dict[str, Any]:
    """Read a YAML file of parameters strictly: the one loader of ``params/`` files (params files,
    ``manifest.yaml``, ``smoke.yaml``).

    Raises:
        ParamsError, one line naming ``path``: not valid YAML; a key written twice in one mapping
        (at any depth; both lines named); a file that is empty or only comments (``empty``
        says what to write instead); a top level that is not a mapping (``expected`` says what is
        allowed).
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except _DuplicateKeyError as e:
        raise ParamsError(
            f"{path}: key {e.key!r} appears twice (lines {e.first} and {e.second}); "
            "a key may appear once per mapping"
        ) from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    if data is None:
        raise ParamsError(f"{path}: {empty}")
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected {expected}, got {type(data).__name__}: {data!r:.60}")
    return data
