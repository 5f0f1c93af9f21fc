"""Posteriors for the attacks: softmax outputs of a model in IEEE float32.

Every per-sample output that feeds an attack (the victim's and shadows' stored outputs, LiRA's
shadow statistics) comes from :func:`posteriors`, so no attack compares fp32 outputs with bf16 ones
(training itself may run under autocast on CUDA).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wemem.training.device import fp32_outputs

__all__ = ["posteriors"]


def posteriors(
    model: nn.Module, x: torch.Tensor, rows: torch.Tensor | np.ndarray, *, batch_size: int = 2048
) -> torch.Tensor:
    """Softmax posteriors of ``model`` (in eval mode) on ``x[rows]``: (len(rows), C) float32 on
    x's device, computed in IEEE float32: autocast off (also inside a caller's autocast), TF32
    off on CUDA (:func:`wemem.training.device.fp32_outputs`)."""
    rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad(), fp32_outputs(x.device):
            for chunk in rows.split(batch_size):
                logits = model(x[chunk].float())
                out.append(torch.softmax(logits.float(), dim=1))
    finally:
        model.train(was_training)
    if not out:
        return torch.empty(0, 0, device=x.device)
    return torch.cat(out)
