"""Notebook 02's sparsity check: every pruned layer at its target sparsity, up to granularity."""

from __future__ import annotations

import numpy as np


def layer_sizes(state: dict) -> dict[str, float]:
    """Weights per layer (``<layer>.weight`` of a state dict), by layer name."""
    return {
        k[: -len(".weight")]: float(v.numel()) for k, v in state.items() if k.endswith(".weight")
    }


def sparsity_reached(sparsity, target, weights, rounds) -> bool:
    """Every layer's sparsity at its target within 1 %, or within its granularity: each round prunes
    a whole number of a layer's weights (one weight per round; a width-1/16 DenseNet layer has 16)."""
    tolerance = np.fmax(0.01, np.asarray(rounds) / np.asarray(weights, dtype=float) + 1e-9)
    return bool((np.abs(np.asarray(sparsity) - np.asarray(target)) < tolerance).all())
