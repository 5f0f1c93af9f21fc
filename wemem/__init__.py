"""wemem: a reproducible companion to WeMem (Shang et al., NDSS 2025).

Defending against membership inference attacks on iteratively pruned deep neural networks.
Submodules load on first use (``wemem.params``, ``wemem.experiment``, ...), so ``import wemem`` is
cheap and notebooks can write ``wemem.memorization.spearman(...)`` without importing each module.
"""

from __future__ import annotations

import importlib

from wemem.errors import DatasetMissingError, ParamsError, WememError

__version__ = "0.1.0"

_SUBMODULES = {
    "adaptive",
    "attack_report",
    "attacks",
    "autotune",
    "cache",
    "cli",
    "data",
    "defense_eval",
    "defense_grids",
    "discovery",
    "defenses",
    "ensemble",
    "costing",
    "dry_run",
    "fingerprint",
    "workload",
    "executor",
    "manifest",
    "errors",
    "experiment",
    "memorization",
    "memscores",
    "models",
    "motivation",
    "overview",
    "paper_tables",
    "paper_values",
    "params",
    "plots",
    "plots_defenses",
    "preflight",
    "progress",
    "pruning",
    "registry",
    "reporting",
    "reports",
    "runner",
    "training",
}

__all__ = ["DatasetMissingError", "ParamsError", "WememError", "__version__", *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"wemem.{name}")
    raise AttributeError(f"module 'wemem' has no attribute {name!r}")
