"""Seeded symmetric label noise (the CPU profile's way to create samples worth memorising)."""

from __future__ import annotations

import numpy as np

from wemem.errors import ParamsError


def apply_label_noise(
    y: np.ndarray, *, fraction: float, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Move a seeded ``fraction`` of the labels to a uniformly drawn *other* class.

    Exactly ``round(fraction * N)`` (Python rounding) distinct positions are drawn without
    replacement with ``np.random.default_rng(seed)``; each gets ``(y + k) mod C`` with ``k`` uniform
    in ``1..C-1``, i.e. a uniform class different from the original.

    Args:
        y: (N,) integer labels in ``0..num_classes-1``; not modified.
        fraction: share of labels to flip, in [0, 1).
        num_classes: C, at least 2 when anything is flipped.
        seed: seed of the generator; the same inputs always give the same output.

    Returns:
        (y_noisy, flipped): (N,) int64 labels and (N,) bool mask, True where the label changed.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ParamsError(f"y: expected a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if not 0.0 <= fraction < 1.0:
        raise ParamsError(f"label_noise: {fraction!r} is outside the allowed range [0, 1)")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ParamsError(
            f"y: labels span {y.min()}..{y.max()}; allowed 0..{num_classes - 1} "
            f"(num_classes={num_classes})"
        )
    n_flip = round(fraction * y.size)
    if n_flip and num_classes < 2:
        raise ParamsError(f"num_classes: {num_classes} leaves no other class to flip to; need >= 2")
    rng = np.random.default_rng(seed)
    noisy = y.astype(np.int64, copy=True)
    flipped = np.zeros(y.size, dtype=bool)
    if n_flip:
        idx = rng.choice(y.size, size=n_flip, replace=False)
        noisy[idx] = (noisy[idx] + rng.integers(1, num_classes, size=n_flip)) % num_classes
        flipped[idx] = True
    return noisy, flipped
