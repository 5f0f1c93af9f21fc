"""Checked conversion of the array arguments of the mem-score functions.

Every function raises :class:`~wemem.errors.ParamsError` naming the argument (``name``) when the
array does not have the shape, dtype or range asked for.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wemem.errors import ParamsError

__all__ = ["as_mask", "as_outputs", "as_scores", "check_int"]


def as_outputs(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """``(K, n)`` float64 model outputs (0/1 correctness or probability) in [0, 1]."""
    a = np.asarray(x)
    if a.ndim != 2 or a.size == 0:
        raise ParamsError(f"{name} must be a non-empty (K, n) array; got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ParamsError(f"{name} must be bool or numeric; got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ParamsError(f"{name} must hold finite values in [0, 1] (correctness or probability)")
    return a


def as_mask(x: ArrayLike, name: str, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """A bool array of ``shape`` (0/1 integers accepted), e.g. ``included`` ``(K, n)``."""
    a = np.asarray(x)
    if a.shape != shape:
        raise ParamsError(f"{name} must have shape {shape} like the model outputs; got {a.shape}")
    if a.dtype.kind in "iu" and np.isin(a, (0, 1)).all():
        a = a.astype(bool)
    if a.dtype != np.bool_:
        raise ParamsError(f"{name} must be a bool array (or 0/1 integers); got dtype {a.dtype}")
    return a


def as_scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """``(n,)`` float64 scores, finite or NaN."""
    a = np.asarray(x)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise ParamsError(f"{name} must be a numeric (n,) array; got shape {a.shape}, {a.dtype}")
    a = a.astype(np.float64)
    if np.isinf(a).any():
        raise ParamsError(f"{name} contains ±inf; scores must be finite or NaN")
    return a


def check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (no upper bound when ``high`` is ``None``)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParamsError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ParamsError(f"{name} must be {allowed}; got {value}")
    return int(value)
