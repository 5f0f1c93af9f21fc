"""The optimizers the training code builds (:func:`adam`, :func:`sgd`: torch's fused kernels), and
``optimizer.step()`` for small single-tensor optimizers on the CPU without torch.optim's per-step
bookkeeping.

The training loop's, the defenses' and the attack models' optimizers are built by :func:`adam` and
:func:`sgd`: ``torch.optim.Adam``/``SGD`` with ``fused=True`` where torch has a fused kernel for
the parameters (float CPU or CUDA tensors). On the CPU the fused kernel does the whole update of a
tensor in one vectorised pass, where the single-tensor path runs a handful of elementwise ops per
parameter (Base's 5-round pruning of the cpu profile's FC victim: about 0.75× the CPU time of the
single-tensor fast path, ``benchmarks/optimizer_step.py``). It is the same algorithm in another order of float operations,
so its numbers differ from the single-tensor path's in the last bits (the model cache keys name
it, :data:`KERNEL`).

:func:`optimizer_step` is ``opt.step()``. For a single-tensor Adam or SGD on the CPU (an optimizer
built elsewhere, e.g. with ``fused=False``) it performs exactly the ops of torch's single-tensor
path, in the same order with the same scalars, on the same state tensors, without the machinery
around them (hooks, profiler scopes, regrouping the state every step), which for models of a few
hundred thousand parameters costs about as much as the ops; parameters, state and ``state_dict()``
are bit-identical to ``opt.step()`` (tested against it). Everything else goes to ``opt.step()``:
fused optimizers (torch's fused ``step()`` was measured no slower than calling its kernel
directly), another optimizer class, a non-CPU or non-real parameter, a sparse gradient, a missing
state (the first step initialises it), hooks, a patched ``step`` (an LR scheduler), or an option
the fast path does not implement (AMSGrad, maximize, Nesterov, dampening,
foreach/capturable/differentiable, decoupled weight decay, tensor hyper-parameters).
"""

from __future__ import annotations

import torch
from torch.optim import optimizer as _optimizer

__all__ = ["KERNEL", "adam", "optimizer_step", "sgd", "zero_grad"]

_SCALARS = (float, int)

#: The optimizer kernel of the models the training code builds, part of their cache keys: entries
#: trained under the single-tensor path had no such part, so they are never read for fused ones.
KERNEL = "fused"

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float32, torch.float64)


def _fusable(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam/SGD kernels take ``params``: float32/float64 tensors on the CPU
    or one CUDA device (torch's own condition for ``fused=True``, narrowed to the dtypes used)."""
    return bool(params) and all(
        p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in params
    )


def adam(params, *, lr: float, weight_decay: float) -> torch.optim.Adam:
    """``torch.optim.Adam`` (coupled weight decay, torch's defaults otherwise), fused where
    :func:`_fusable`."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=_fusable(params))


def sgd(params, *, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """``torch.optim.SGD`` (no dampening, no Nesterov), fused where :func:`_fusable`."""
    params = list(params)
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=_fusable(params)
    )


def _hooked(opt: torch.optim.Optimizer) -> bool:
    """Whether anything besides the plain update would run inside ``opt.step()``."""
    return bool(
        "step" in vars(opt)  # patched, e.g. by an LR scheduler counting calls
        or opt._optimizer_step_pre_hooks
        or opt._optimizer_step_post_hooks
        or _optimizer._global_optimizer_pre_hooks
        or _optimizer._global_optimizer_post_hooks
    )


def _plain_params(opt: torch.optim.Optimizer, group: dict, *, state_key: str | None) -> bool:
    """Every parameter with a gradient: a real CPU tensor with a dense gradient and, when
    ``state_key`` is given, that state already initialised by an earlier ``opt.step()``."""
    for p in group["params"]:
        g = p.grad
        if g is None:
            continue
        if p.device.type != "cpu" or not p.is_floating_point() or g.is_sparse:
            return False
        if state_key is not None and state_key not in opt.state.get(p, {}):
            return False
    return True


def _plain_group(group: dict) -> bool:
    return (
        not group.get("foreach")
        and not group.get("fused")
        and not group.get("capturable")
        and not group.get("differentiable")
        and not group.get("maximize")
        and isinstance(group["lr"], _SCALARS)
        and isinstance(group["weight_decay"], _SCALARS)
    )


def _adam_ready(opt: torch.optim.Optimizer) -> bool:
    return all(
        _plain_group(g)
        and not g.get("amsgrad")
        and not g.get("decoupled_weight_decay")
        and all(isinstance(b, _SCALARS) for b in g["betas"])
        and _plain_params(opt, g, state_key="exp_avg")
        for g in opt.param_groups
    )


def _sgd_ready(opt: torch.optim.Optimizer) -> bool:
    return all(
        _plain_group(g)
        and not g.get("nesterov")
        and g.get("dampening", 0) == 0
        and isinstance(g["momentum"], _SCALARS)
        and _plain_params(opt, g, state_key="momentum_buffer" if g["momentum"] != 0 else None)
        for g in opt.param_groups
    )


def _adam(opt: torch.optim.Optimizer) -> None:
    """``torch.optim.adam._single_tensor_adam`` (coupled weight decay), parameter by parameter."""
    for group in opt.param_groups:
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = opt.state[p]
            step_t = state["step"]
            step_t += 1
            step = step_t.item()
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


def _sgd(opt: torch.optim.Optimizer) -> None:
    """``torch.optim.sgd._single_tensor_sgd`` without dampening and Nesterov."""
    for group in opt.param_groups:
        lr, weight_decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            if momentum != 0:
                grad = opt.state[p]["momentum_buffer"].mul_(momentum).add_(grad, alpha=1)
            p.add_(grad, alpha=-lr)


_FAST = {torch.optim.Adam: (_adam_ready, _adam), torch.optim.SGD: (_sgd_ready, _sgd)}


@torch.no_grad()
def optimizer_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()``, bit-identical, on the fast path where it applies (module docstring)."""
    fast = _FAST.get(type(opt))
    if fast is None or _hooked(opt) or not fast[0](opt):
        opt.step()
        return
    fast[1](opt)


def zero_grad(opt: torch.optim.Optimizer) -> None:
    """``opt.zero_grad(set_to_none=True)``: drop every gradient (without the profiler scope) for
    the optimizers of the fast path; any other optimizer's own ``zero_grad`` (e.g. a DP optimizer
    that also clears per-sample gradients)."""
    if type(opt) not in _FAST:
        opt.zero_grad(set_to_none=True)
        return
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = None
