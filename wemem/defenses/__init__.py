"""Defenses against membership inference, as hooks of the one training loop.

WeMem (spec §2): the primitives in :mod:`wemem.defenses.wemem_primitives`, the methods RSW, RMR and
SWMR in :mod:`wemem.defenses.wemem_methods`, and name → hooks in :mod:`wemem.defenses.registry`::

    factory = make_hooks_factory("rsw_l2h", scores=mem, labels=y, width=500, step=50)
    prune_and_finetune(model, x, y, train, dev, ..., hooks_factory=factory)
"""

from wemem.defenses.registry import WEMEM_DEFENSES, defense_spec, make_hooks_factory
from wemem.defenses.wemem_methods import RMRHooks, RSWHooks, SWMRHooks
from wemem.defenses.wemem_primitives import (
    exposure_counts,
    rank_by_memscore,
    sliding_window_indices,
    split_by_tau,
    window_rule,
)

__all__ = [
    "WEMEM_DEFENSES",
    "RMRHooks",
    "RSWHooks",
    "SWMRHooks",
    "defense_spec",
    "exposure_counts",
    "make_hooks_factory",
    "rank_by_memscore",
    "sliding_window_indices",
    "split_by_tau",
    "window_rule",
]
