"""Defenses against membership inference, as hooks of the one training loop.

WeMem (spec §2): the primitives in :mod:`wemem.defenses.primitives`, the methods RSW, RMR and
SWMR in :mod:`wemem.defenses.methods`. The baselines (spec §7): PPB, ADV and RelaxLoss in
:mod:`wemem.defenses.baselines`, DP-SGD with Opacus in :mod:`wemem.defenses.dp`. Every name → hooks
in :mod:`wemem.defenses.catalog` (:func:`defense_parts`, the entry point)::

    factory = make_hooks_factory("rsw_l2h", scores=mem, labels=y, width=500, step=50)
    prune_and_finetune(model, x, y, train, dev, ..., hooks_factory=factory)
"""

from wemem.defenses.baselines import ADVHooks, PPBHooks, RelaxLossHooks, ppb_loss, relaxloss_loss
from wemem.defenses.catalog import (
    BASELINES,
    PAPER_SETTINGS,
    WEMEM_DEFENSES,
    DefenseContext,
    DefenseParts,
    baseline_factory,
    defense_parts,
    defense_spec,
    make_hooks_factory,
    needs_memscores,
    resolved_settings,
)
from wemem.defenses.dp import (
    DELTA_RULE,
    DPSGDHooks,
    default_delta,
    dp_epsilon,
    make_private_compatible,
)
from wemem.defenses.methods import RMRHooks, RSWHooks, SWMRHooks
from wemem.defenses.primitives import (
    exposure_counts,
    rank_by_memscore,
    sliding_window_indices,
    split_by_tau,
    window_rule,
)

__all__ = [
    "ADVHooks",
    "BASELINES",
    "DefenseContext",
    "DefenseParts",
    "PAPER_SETTINGS",
    "DELTA_RULE",
    "DPSGDHooks",
    "PPBHooks",
    "RelaxLossHooks",
    "WEMEM_DEFENSES",
    "baseline_factory",
    "defense_parts",
    "dp_epsilon",
    "make_private_compatible",
    "ppb_loss",
    "relaxloss_loss",
    "RMRHooks",
    "RSWHooks",
    "SWMRHooks",
    "default_delta",
    "defense_spec",
    "exposure_counts",
    "make_hooks_factory",
    "needs_memscores",
    "resolved_settings",
    "rank_by_memscore",
    "sliding_window_indices",
    "split_by_tau",
    "window_rule",
]
