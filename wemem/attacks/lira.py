"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First
Principles", S&P 2022), offline and online.

Statistic. For a model with posterior p on a sample of label y, the logit-scaled true-class
confidence

$$ \\varphi = \\log \\frac{p_y}{1 - p_y} = \\log p_y - \\log \\sum_{c \\ne y} p_c , $$

computed from probabilities with both terms clamped below at :data:`PROB_FLOOR` (1e-7), so φ lies
in about [−16.1, 16.1]. The denominator is summed over the other classes rather than taken as
1 − p_y, which float32 rounds to 0 as soon as p_y > 1 − 6e-8. φ is roughly Gaussian across models
for a fixed sample, which is what the test below assumes.

Offline (only OUT models, which never trained on the sample): for each target sample i,
μ_i = mean of φ over the OUT models and the one-sided score z_i = (φ_i − μ_i) / σ, higher =
member. With ``global_variance`` σ is one pooled within-sample standard deviation,
σ² = Σ_i Σ_s (φ_si − μ_i)² / (n (S − 1)); otherwise σ_i is sample i's own (ddof 1). Any monotone
map of z (e.g. the Gaussian CDF, Carlini et al.'s p-value) ranks identically, so z is returned.
Carlini et al.'s code pools σ as ``np.std`` of all OUT values around their grand mean, which adds
the spread of the μ_i; this uses the within-sample spread, the variance the Gaussian model has.

In this project the shadows are trained on the shadow half of the data only (spec §5.2), so every
shadow model is an OUT model for every victim sample, and offline LiRA applies directly; its inputs
come from :func:`shadow_phi_on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from wemem.attacks.posteriors import posteriors
from wemem.errors import ParamsError
from wemem.training.device import to_device

__all__ = ["PROB_FLOOR", "lira_offline", "lira_online", "phi", "shadow_phi_on"]

PROB_FLOOR = 1e-7
"""Lower clamp of p_y and of Σ_{c≠y} p_c before taking logs in :func:`phi`."""

_SIGMA_FLOOR = 1e-12


def phi(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """``(n,)`` float64 φ = log p_y − log Σ_{c≠y} p_c of posteriors ``(n, C)`` and labels ``(n,)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (n, C) and labels (n,); got {p.shape} and {y.shape}")
    p_y = p[np.arange(len(y)), y]
    rest = p.sum(axis=1) - p_y
    return np.log(np.maximum(p_y, PROB_FLOOR)) - np.log(np.maximum(rest, PROB_FLOOR))


def _as_matrix(a: ArrayLike, n: int, name: str) -> NDArray[np.float64]:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != n or m.shape[0] < 2:
        raise ParamsError(f"{name}: got shape {m.shape}; allowed is (S, {n}) with S >= 2 models")
    return m


def _gauss(
    m: NDArray[np.float64], *, global_variance: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-sample mean ``(n,)`` and standard deviation (pooled, or per sample) of ``(S, n)``."""
    mu = m.mean(axis=0)
    if global_variance:
        sigma = np.full_like(mu, np.sqrt(((m - mu) ** 2).sum() / (m.size - m.shape[1])))
    else:
        sigma = m.std(axis=0, ddof=1)
    return mu, np.maximum(sigma, _SIGMA_FLOOR)


def lira_offline(
    phi_target: ArrayLike, phi_shadow_out: ArrayLike, *, global_variance: bool = True
) -> NDArray[np.float64]:
    """Offline LiRA score (module docstring).

    Args:
        phi_target: ``(n,)`` φ of the attacked model on its target samples.
        phi_shadow_out: ``(S, n)`` φ of S ≥ 2 OUT models on the same samples.
        global_variance: one pooled σ for all samples (recommended for few models) or one each.

    Returns:
        ``(n,)`` float64 z-scores ``(φ − μ_out) / σ_out``; higher = more likely a member.
    """
    t = np.asarray(phi_target, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"phi_target must be (n,); got shape {t.shape}")
    mu, sigma = _gauss(
        _as_matrix(phi_shadow_out, t.size, "phi_shadow_out"), global_variance=global_variance
    )
    return (t - mu) / sigma


def lira_online(
    phi_target: ArrayLike,
    phi_in: ArrayLike,
    phi_out: ArrayLike,
    *,
    global_variance: bool = True,
) -> NDArray[np.float64]:
    """Online LiRA: log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²), higher = member.

    Args:
        phi_target: ``(n,)``; phi_in: ``(S_in, n)`` φ of models trained on each sample;
        phi_out: ``(S_out, n)`` φ of models not trained on it; both S ≥ 2.
        global_variance: pool σ_in and σ_out each over all samples, or one per sample.
    """
    t = np.asarray(phi_target, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"phi_target must be (n,); got shape {t.shape}")
    mu_in, s_in = _gauss(_as_matrix(phi_in, t.size, "phi_in"), global_variance=global_variance)
    mu_out, s_out = _gauss(_as_matrix(phi_out, t.size, "phi_out"), global_variance=global_variance)
    log_in = -0.5 * ((t - mu_in) / s_in) ** 2 - np.log(s_in)
    log_out = -0.5 * ((t - mu_out) / s_out) ** 2 - np.log(s_out)
    return log_in - log_out


def shadow_phi_on(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    rows: Any,
    labels: ArrayLike,
    *,
    batch_size: int = 2048,
) -> NDArray[np.float64]:
    """φ of each model on ``x[rows]`` with ``labels``: ``(S, n)`` float64.

    Posteriors come from :func:`wemem.attacks.posteriors.posteriors` (IEEE float32), the function
    that produced the victim's and shadows' stored outputs, so that the victim's φ and the shadows'
    φ are computed alike. Inputs move to each model's device.
    """
    rows_t = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=x.device)
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (len(rows_t),):
        raise ValueError(f"labels must have shape ({len(rows_t)},); got {y.shape}")
    out = np.empty((len(models), len(y)), dtype=np.float64)
    inputs: dict[torch.device, torch.Tensor] = {}  # x[rows] once per device
    for s, model in enumerate(models):
        dev = next(model.parameters()).device
        if dev not in inputs:
            inputs[dev] = to_device(x[rows_t], dev)
        xs = inputs[dev]
        probs = posteriors(model, xs, torch.arange(len(y), device=dev), batch_size=batch_size)
        out[s] = phi(probs.float().cpu().numpy(), y)
    return out
