"""wemem: a reproducible companion to WeMem (Shang et al., NDSS 2025).

Defending against membership inference attacks on iteratively pruned deep neural networks.
Subpackages load on first use (``wemem.params``, ``wemem.experiment``, ...), so ``import wemem`` is
cheap. The package map is in the README's architecture section.
"""

from __future__ import annotations

import importlib

from wemem.errors import DatasetMissingError, ParamsError, WememError

__version__ = "0.1.0"

_SUBMODULES = {
    "attacks",
    "batch",
    "cache",
    "cli",
    "data",
    "defenses",
    "errors",
    "experiment",
    "io",
    "memorization",
    "models",
    "names",
    "params",
    "planning",
    "progress",
    "pruning",
    "report",
    "studies",
    "training",
}

__all__ = ["DatasetMissingError", "ParamsError", "WememError", "__version__", *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"wemem.{name}")
    raise AttributeError(f"module 'wemem' has no attribute {name!r}")
