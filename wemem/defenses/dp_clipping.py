"""Per-example gradient clipping of pruned layers for DP-SGD: Opacus hooks that know
``torch.nn.utils.prune`` (spec §7, §9.11).

Pruned layers (parameter ``weight_orig``, buffer ``weight_mask``) are refused by Opacus' strict
check, and its samplers key the gradient on the computed ``weight``. The hooks here carry
instance-level samplers that key a pruned layer's per-sample gradient on ``weight_orig`` and mask it
(the gradient of the pruned parametrisation itself), and ghost norms that include the mask, so
pruned coordinates do not count towards the clipping norm. :class:`PerSampleHooks` materialise
every layer's per-sample gradients (mode ``hooks``); :class:`GhostHooks` compute per-sample norms
only, for ghost clipping (mode ``ghost``, Li et al., 2022). :mod:`wemem.defenses.dp` drives them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from opacus.grad_sample import GradSampleHooks, GradSampleHooksFastGradientClipping
from opacus.grad_sample.linear import compute_linear_norm_sample
from torch import nn

__all__ = ["GhostHooks", "PerSampleHooks"]


def _prune_aware(sampler: Callable) -> Callable:
    """Wrap an Opacus grad sampler so a pruned layer's per-sample weight gradient is keyed on
    ``weight_orig`` (the parameter) and masked, as autograd would give for ``weight_orig ⊙ mask``."""

    def wrapped(layer: nn.Module, activations: list, backprops: torch.Tensor) -> dict:
        out = {p: g.float() for p, g in sampler(layer, activations, backprops).items()}
        if hasattr(layer, "weight_orig"):
            for key in list(out):
                if key is layer.weight:  # a fresh per-sample tensor: mask it in place
                    out[layer.weight_orig] = out.pop(key).mul_(layer.weight_mask)
        return out

    return wrapped


def _pruned_linear_norm(layer: nn.Module, activations: list, backprops: torch.Tensor) -> dict:
    """Ghost norms of a Linear layer; for a pruned one, of the masked per-sample gradient."""
    a, backprops = activations[0].float(), backprops.float()
    if not hasattr(layer, "weight_orig"):
        return compute_linear_norm_sample(layer, [a], backprops)
    mask = layer.weight_mask.float()
    if backprops.dim() == 2:  # ‖(b aᵀ) ⊙ M‖² = Σ_k a_k² ((b²)ᵀ M)_k, no (n, out, in) tensor
        sq = ((backprops * backprops) @ mask * (a * a)).sum(1)
    else:
        gs = torch.einsum("n...i,n...j->nij", backprops, a) * mask
        sq = gs.flatten(1).pow(2).sum(1)
    out = {layer.weight_orig: sq.clamp(min=0).sqrt()}
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = backprops.flatten(1).norm(dim=1)
    return out


def _conv2d_norm(layer: nn.Conv2d, activations: list, backprops: torch.Tensor) -> dict:
    """Per-sample gradient norms of a Conv2d layer (masked when pruned), by the cheapest exact route.

    With unfolded inputs A_i (D × T) and output gradients B_i (out × T) the per-sample weight
    gradient is G_i = B_i A_iᵀ. T = 1 (1×1 maps): G_i is rank one, so ‖G_i ⊙ M‖² has the Linear
    closed form. Unpruned, T² ≤ out·D: ghost clipping's ‖G_i‖² = ⟨A_iᵀA_i, B_iᵀB_i⟩ (Li et al.,
    2022). Otherwise G_i is formed by one batched matmul and reduced at once.
    """
    pruned = hasattr(layer, "weight_orig")
    if layer.groups != 1 or isinstance(layer.padding, str):
        grads = _prune_aware(GradSampleHooks.GRAD_SAMPLERS[type(layer)])(
            layer, activations, backprops
        )
        return {p: g.flatten(1).norm(dim=1) for p, g in grads.items()}
    x = activations[0].float()
    a = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # (n, D, T)
    b = backprops.float().flatten(2)  # (n, out, T)
    _, d, t = a.shape
    if pruned:
        mask = layer.weight_mask.flatten(1).float()  # (out, D)
    if t == 1:
        a2, b2 = a[..., 0].square(), b[..., 0].square()
        sq = (b2 @ mask * a2).sum(1) if pruned else b2.sum(1) * a2.sum(1)
    elif not pruned and t * t <= b.shape[1] * d:
        sq = (a.transpose(1, 2) @ a * (b.transpose(1, 2) @ b)).sum((1, 2))
    else:
        g = torch.bmm(b, a.transpose(1, 2)).square_()
        sq = (g.mul_(mask) if pruned else g).sum((1, 2))
    out = {layer.weight_orig if pruned else layer.weight: sq.clamp(min=0).sqrt()}
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = b.sum(2).norm(dim=1)
    return out


class PerSampleHooks(GradSampleHooks):
    """Opacus per-sample-gradient hooks that understand ``torch.nn.utils.prune`` layers."""

    def __init__(self, model: nn.Module) -> None:
        self.GRAD_SAMPLERS = {t: _prune_aware(f) for t, f in GradSampleHooks.GRAD_SAMPLERS.items()}
        super().__init__(model, loss_reduction="mean", strict=False)


class GhostHooks(GradSampleHooksFastGradientClipping):
    """Opacus ghost-clipping hooks that understand ``torch.nn.utils.prune`` layers."""

    def __init__(self, model: nn.Module, max_grad_norm: float) -> None:
        base = GradSampleHooksFastGradientClipping
        self.GRAD_SAMPLERS = {t: _prune_aware(f) for t, f in base.GRAD_SAMPLERS.items()}
        norms = {nn.Linear: _pruned_linear_norm, nn.Conv2d: _conv2d_norm}
        self.NORM_SAMPLERS = {**base.NORM_SAMPLERS, **norms}
        # "sum": the first backward pass back-propagates the sum of per-sample losses.
        super().__init__(model, loss_reduction="sum", strict=False, max_grad_norm=max_grad_norm)
