"""Adam over stacked (K, ...) tensors with one step count per member, for :mod:`.ensemble`.

``torch.optim.Adam`` keeps one step count for all its parameters. The ensemble pads members with
fewer rows, and a member whose batch is all padding must sit the step out (parameters, moments and
step count unchanged), so each member needs its own step count and its own bias correction.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["StackedAdam"]


class StackedAdam:
    """``torch.optim.Adam`` (coupled weight decay) over (K, ...) tensors, one step count per member.

    ``step(grads, active)`` updates member k only where ``active[k]``; the others keep parameters,
    moments and step count, so each member follows exactly the Adam trajectory of its own steps.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: list[torch.Tensor], *, lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = np.zeros(params[0].shape[0], dtype=np.int64)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: np.ndarray) -> None:
        """One Adam step with ``grads`` (consumed) for the members where ``active`` ((K,) bool)."""
        beta1, beta2 = self.betas
        self.steps += active
        t = np.maximum(self.steps, 1)
        step_size = self.lr / (1 - beta1**t)
        bc2_sqrt = np.sqrt(1 - beta2**t)
        # vmap may hand back expanded (stride-0) gradients, which in-place ops refuse.
        g = [x if x.is_contiguous() else x.contiguous() for x in grads]
        if self.weight_decay:
            torch._foreach_add_(g, self.params, alpha=self.weight_decay)
        if active.all() and (self.steps == self.steps[0]).all():
            # torch.optim.Adam's arithmetic (multi-tensor: few kernel launches), the gradient
            # storage reused for the denominator (fresh (K, ...) temporaries are costly).
            torch._foreach_lerp_(self.exp_avg, g, 1 - beta1)
            torch._foreach_mul_(self.exp_avg_sq, beta2)
            torch._foreach_addcmul_(self.exp_avg_sq, g, g, value=1 - beta2)
            torch._foreach_copy_(g, self.exp_avg_sq)
            torch._foreach_sqrt_(g)
            torch._foreach_div_(g, float(bc2_sqrt[0]))
            torch._foreach_add_(g, self.eps)
            torch._foreach_addcdiv_(self.params, self.exp_avg, g, value=-float(step_size[0]))
            return
        device = self.params[0].device
        keep = torch.as_tensor(active, device=device)
        a = torch.as_tensor(step_size, dtype=torch.float32, device=device)
        c = torch.as_tensor(bc2_sqrt, dtype=torch.float32, device=device)
        for p, m, v, gp in zip(self.params, self.exp_avg, self.exp_avg_sq, g, strict=True):
            shape = (-1,) + (1,) * (p.dim() - 1)
            k = keep.view(shape)
            m.copy_(torch.where(k, m.lerp(gp, 1 - beta1), m))
            v.copy_(torch.where(k, v * beta2 + (1 - beta2) * gp * gp, v))
            denom = v.sqrt() / c.view(shape) + self.eps
            p.copy_(torch.where(k, p - a.view(shape) * m / denom, p))
