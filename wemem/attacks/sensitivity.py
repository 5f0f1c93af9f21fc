"""Posterior sensitivity to small input perturbations: the ``sens`` feature of SAMIA (spec §6.2).

For an input x with posterior p(x) (softmax over C classes) and m Gaussian directions
u_j ~ N(0, I) of the input's shape,

$$ \\mathrm{sens}_c(x) = \\frac{1}{m} \\sum_{j=1}^{m} \\frac{|p_c(x + \\varepsilon u_j) - p_c(x)|}{\\varepsilon} $$

with m = 10 and ε = 1e-3, for images and tabular vectors alike (Yuan & Zhang, "Membership Inference
Attacks and Defenses in Neural Network Pruning", USENIX Security 2022; the official
``predict_target_sensitivity``). Members tend to sit in flatter regions of the loss, so their
posteriors move less.

Precision. Differences of size ≈ ε·‖∇p‖ must survive rounding, so the whole computation runs in
IEEE float32: no autocast (bf16 keeps ≈3 significant digits) and, on CUDA, TF32 switched off for
convolutions and matrix products for the duration of the call (TF32 keeps a 10-bit mantissa, which
rounds an input of size ≈1 to steps of ≈5e-4, i.e. half of ε). The official code ran with cuDNN's
default TF32 convolutions on Ampere-class GPUs; its image sensitivities were therefore partly
rounding noise. This implementation does not reproduce that. The precision context is
:func:`wemem.training.device.fp32_outputs` (``full_fp32`` is re-exported from there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wemem.errors import ParamsError
from wemem.training.device import fp32_outputs, full_fp32, to_device

__all__ = ["full_fp32", "sensitivity"]


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else fallback


def _keep_mask(positions, n: int, device: torch.device) -> torch.Tensor:
    """(n,) bool: the positions of ``rows`` to compute (all when ``positions`` is None)."""
    keep = torch.ones(n, dtype=torch.bool, device=device)
    if positions is None:
        return keep
    pos = torch.as_tensor(positions, dtype=torch.long, device=device)
    if pos.numel() and (pos.min() < 0 or pos.max() >= n or (pos.diff() <= 0).any()):
        raise ParamsError(
            f"positions: allowed values are sorted, unique indices into rows (0..{n - 1})"
        )
    keep[:] = False
    keep[pos] = True
    return keep


def _check(m: int, eps: float, batch_size: int) -> None:
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ParamsError(f"m: got {m!r}; allowed values are integers >= 1")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ParamsError(f"eps: got {eps!r}; allowed values are finite numbers > 0")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParamsError(f"batch_size: got {batch_size!r}; allowed values are integers >= 1")


@torch.no_grad()
def sensitivity(
    model: nn.Module,
    x: torch.Tensor,
    rows: torch.Tensor | np.ndarray,
    *,
    m: int = 10,
    eps: float = 1e-3,
    seed: int = 0,
    batch_size: int = 512,
    return_probs: bool = False,
    positions: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sensitivity of ``model``'s posterior on ``x[rows]`` (formula in the module docstring).

    Each batch of B inputs makes one forward pass of ``(m + 1)·B`` samples: the clean batch
    followed by its m perturbed copies (copy-major, like the official ``inputs.repeat``). The model
    runs in eval mode (restored afterwards), so batch composition does not change any output.

    Args:
        model: classifier returning logits ``(n, C)``.
        x: ``(N, ...)`` inputs (the pool); any device — batches move to the model's device.
        rows: ``(n,)`` int indices into ``x``.
        m: number of Gaussian directions; eps: step size ε.
        seed: seeds a private generator on the model's device; the noise depends on ``seed``,
            ``batch_size`` and the order of ``rows``, and nothing else (global RNG untouched).
        batch_size: clean inputs per forward pass (memory scales with ``(m + 1)·batch_size``).
        return_probs: also return the clean float32 posteriors.
        positions: only these (sorted, unique) positions of ``rows``, with the noise they get
            when all of ``rows`` are computed: the noise of every batch is still drawn, only the
            selected inputs are forwarded (in eval mode a row's output does not depend on the
            rest of its batch, so the values equal the full computation's at those positions).

    Returns:
        ``sens``: ``(n, C)`` float32 tensor on the model's device, ≥ 0 (n: ``len(positions)``
        when given); with ``return_probs``, ``(probs, sens)`` where ``probs`` is ``(n, C)`` float32.
    """
    _check(m, eps, batch_size)
    device = _model_device(model, x.device)
    rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
    keep = _keep_mask(positions, len(rows), x.device)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    sens_parts, prob_parts = [], []
    try:
        with fp32_outputs(device):
            for chunk, kept in zip(rows.split(batch_size), keep.split(batch_size), strict=True):
                shape = (m, len(chunk), *x.shape[1:])
                u = torch.randn(shape, generator=generator, device=device)  # every row's noise
                if not kept.all():
                    chunk, u = chunk[kept], u[:, kept.to(device)]
                if len(chunk) == 0:
                    continue
                xb = to_device(x[chunk], device).float()
                b = xb.shape[0]
                batch = torch.cat([xb.unsqueeze(0), xb.unsqueeze(0) + eps * u])
                logits = model(batch.reshape((m + 1) * b, *xb.shape[1:]))
                p = torch.softmax(logits.float(), dim=1).reshape(m + 1, b, -1)
                sens_parts.append((p[1:] - p[0]).abs().mean(0) / eps)
                prob_parts.append(p[0])
    finally:
        model.train(was_training)
    if not sens_parts:
        empty = torch.empty(0, 0, device=device)
        return (empty, empty) if return_probs else empty
    sens = torch.cat(sens_parts)
    return (torch.cat(prob_parts), sens) if return_probs else sens
