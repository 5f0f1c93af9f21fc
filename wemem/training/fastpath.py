"""``optimizer.step()`` for small models on the CPU, without torch.optim's per-step bookkeeping.

On the CPU ``torch.optim.Adam`` and ``torch.optim.SGD`` run their single-tensor path: a handful of
elementwise ops per parameter. For the models of the cpu profile (a few hundred thousand
parameters) the machinery around those ops (hooks, profiler scopes, regrouping the state every
step) costs about as much as the ops themselves. :func:`optimizer_step` performs exactly the ops of
the single-tensor path, in the same order with the same scalars, on the same state tensors, so
parameters, state and ``state_dict()`` are bit-identical to ``opt.step()`` (tested against it). It
falls back to ``opt.step()`` for anything else: another optimizer class, a non-CPU or non-real
parameter, a sparse gradient, a missing state (the first step initialises it), hooks, a patched
``step`` (an LR scheduler), or an option the fast path does not implement (AMSGrad, maximize,
Nesterov, dampening, foreach/fused/capturable/differentiable, decoupled weight decay, tensor
hyper-parameters).
"""

from __future__ import annotations

import torch
from torch.optim import optimizer as _optimizer

__all__ = ["optimizer_step", "zero_grad"]

_SCALARS = (float, int)


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
