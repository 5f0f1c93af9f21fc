"""Numbers the paper reports, as data (never typed into prose), with their source.

The values live in ``wemem/paper_values.yaml`` (package data), one block per slide table with a
``source`` field: the NDSS 2025 talk slides (``shared/spec/slides.txt``) as transcribed in the
project's spec (``shared/spec/paper.md`` §8.1). This module loads that file and keeps the shapes
the notebooks use: :data:`T_RMR`, :data:`T_TIME`, :func:`rmr_table`, :func:`time_table` and
:func:`base_attack_accuracy`. Attack accuracy in the tables is in %; the metric attacks report
balanced accuracy, the classifier attacks plain accuracy on the imbalanced victim set (spec §9.10).
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd
import yaml

__all__ = [
    "SOURCE",
    "T_RMR",
    "T_TIME",
    "base_attack_accuracy",
    "claims",
    "load",
    "rmr_table",
    "settings_table",
    "time_table",
]

_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600}


@functools.cache
def load() -> dict:
    """The parsed ``paper_values.yaml``: blocks ``t_setup``, ``t_settings``, ``t_rmr``,
    ``t_time`` (each with ``title`` and ``source``), ``claims`` and ``artefacts`` (each table or
    figure of the paper, where it is given and the notebook and files that reproduce it). Treat
    it as read-only."""
    text = (
        resources.files("wemem.studies").joinpath("paper_values.yaml").read_text(encoding="utf-8")
    )
    return yaml.safe_load(text)


def _seconds(cell: str | float) -> float:
    """A slide time cell ("630s", "7h") in seconds."""
    if isinstance(cell, int | float):
        return float(cell)
    for unit in sorted(_UNIT_SECONDS, key=len, reverse=True):
        if cell.endswith(unit):
            return float(cell[: -len(unit)]) * _UNIT_SECONDS[unit]
    raise ValueError(f"paper_values.yaml: time {cell!r} has no unit; allowed: s, min, h")


_DATA = load()
_ATTACKS: list[str] = _DATA["t_rmr"]["attacks"]

SOURCE = f"NDSS 2025 talk {_DATA['t_rmr']['source']}"

#: T-RMR: (dataset, arch, setting, test acc %, attack accuracy % per attack in T-RMR's order).
T_RMR = [
    (r["dataset"], r["arch"], r["setting"], r["test_acc"], list(r["attack"]))
    for r in _DATA["t_rmr"]["rows"]
]

#: T-time: victim fine-tuning wall-clock over the 5 rounds, seconds (DP in hours on the slide).
T_TIME = {
    (r["dataset"], r["arch"]): {
        k: int(_seconds(v)) for k, v in r.items() if k not in ("dataset", "arch")
    }
    for r in _DATA["t_time"]["rows"]
}


def rmr_table() -> pd.DataFrame:
    """T-RMR as a long table: dataset, arch, setting, test_acc, attack, paper (fractions)."""
    rows = []
    for dataset, arch, setting, test_acc, values in T_RMR:
        for attack, v in zip(_ATTACKS, values, strict=True):
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "setting": setting,
                    "test_acc": test_acc / 100,
                    "attack": attack,
                    "paper": None if v is None else v / 100,
                }
            )
    return pd.DataFrame(rows)


def base_attack_accuracy(dataset: str, arch: str) -> pd.Series | None:
    """The paper's Base attack accuracy per attack for (dataset, arch), or None if not reported."""
    t = rmr_table()
    t = t[(t.dataset == dataset) & (t.arch == arch) & (t.setting == "base")]
    return None if t.empty else t.set_index("attack")["paper"]


def time_table() -> pd.DataFrame:
    """T-time as a table: one row per (dataset, arch), seconds per defense, and ratios to Base."""
    rows = []
    for (dataset, arch), t in T_TIME.items():
        for defense, sec in t.items():
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "defense": defense,
                    "paper_seconds": sec,
                    "paper_ratio": sec / t["base"],
                }
            )
    return pd.DataFrame(rows)


def settings_table() -> pd.DataFrame:
    """T-settings: per dataset (and architectures) the class count h, window widths, steps and τ."""
    rows = [
        {**r, **{k: ", ".join(map(str, r[k])) for k in ("widths", "steps", "archs")}}
        for r in _DATA["t_settings"]["rows"]
    ]
    return pd.DataFrame(rows)


def claims() -> pd.DataFrame:
    """The paper's statements (id, statement, source) and the run claims that test each
    (``tested_by``: list of ``"<notebook stem>:<dotted key in metrics.json>"``)."""
    return pd.DataFrame([{**c, "tested_by": list(c["tested_by"])} for c in _DATA["claims"]])
