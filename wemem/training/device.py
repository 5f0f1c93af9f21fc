"""Every device decision in one place: where models and tensors live and at what precision.

The functions take the device (or its type) as input and are called on *every* device, so a CPU
run goes through the same code as a CUDA run and only the branch taken differs. The decisions:

* which device a setting names (:func:`resolve_device`: ``auto`` → CUDA when available; ``cuda``
  without a CUDA device is a :class:`~wemem.errors.ParamsError` naming the field ``device``);
* the precision of *training* forward passes (:func:`training_autocast`, via
  :func:`autocast_dtype`): bf16 autocast on CUDA (faster, same accuracy for these models), nothing
  elsewhere. Only the forward pass runs under it; the loss and the gradients are float32;
* the precision of *outputs* that feed an attack (:func:`fp32_outputs`): IEEE float32, autocast
  off even inside a caller's autocast, TF32 off on CUDA (:func:`full_fp32`);
* the memory format of a model (:func:`memory_format_for`, :func:`prepare_model`): channels_last
  for the CNNs on CUDA (the layout cuDNN's tensor-core convolutions prefer), contiguous for the FC
  model and on the CPU;
* how a tensor moves (:func:`transfer_plan`, :func:`to_device`): host → CUDA through pinned memory
  with ``non_blocking=True`` (the copy overlaps the host's work; the caching host allocator keeps the
  pinned block alive until the copy is done); any other move is a plain ``.to``.

On the CPU every function here is the identity of what the code did before it existed (a plain
``.to``, no autocast, contiguous models), so CPU results are bit-identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from wemem.errors import ParamsError
from wemem.names import ARCH_NAMES
from wemem.params import DEVICES

__all__ = [
    "CNN_ARCHS",
    "DEVICES",
    "TransferPlan",
    "autocast_dtype",
    "fp32_outputs",
    "full_fp32",
    "is_cuda",
    "memory_format_for",
    "prepare_model",
    "resolve_device",
    "to_device",
    "training_autocast",
    "transfer_plan",
]

#: The convolutional architectures (every architecture but the FC model): channels_last on CUDA.
CNN_ARCHS: tuple[str, ...] = tuple(a for a in ARCH_NAMES if a != "fc")

DeviceLike = str | torch.device


def _type(device: DeviceLike) -> str:
    """``device``'s type (``cpu``, ``cuda``, ...); a bare type string is accepted as is."""
    return device.type if isinstance(device, torch.device) else torch.device(device).type


def is_cuda(device: DeviceLike) -> bool:
    """Whether ``device`` (a torch.device, ``"cuda"``, ``"cuda:1"``, ...) is a CUDA device."""
    return _type(device) == "cuda"


def resolve_device(name: DeviceLike) -> torch.device:
    """The torch device a setting names: ``auto`` → CUDA when available, else CPU; ``cpu``;
    ``cuda`` / ``cuda:N`` (a torch.device of those types is accepted too).

    Raises:
        ParamsError: an unknown name, or CUDA asked for where no CUDA device is visible (one line
            naming the field ``device`` and the values allowed here), instead of torch's error at
            the first tensor moved there.
    """
    allowed = ", ".join(DEVICES)
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = name if isinstance(name, torch.device) else torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ParamsError(
            f"device: got {name!r}; allowed values are {allowed} (or cuda:N)"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise ParamsError(f"device: got {name!r}; allowed values are {allowed} (or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(
                f"device: got {name!r} but no CUDA device is available "
                "(torch.cuda.is_available() is False); allowed values here are auto, cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ParamsError(
                f"device: got {name!r} but only {count} CUDA device(s) are visible; allowed "
                f"values here are auto, cpu, cuda, cuda:0..cuda:{count - 1}"
            )
    return device


# ---- precision -------------------------------------------------------------------------------
def autocast_dtype(device: DeviceLike) -> torch.dtype | None:
    """The dtype of training forward passes on ``device``: bf16 on CUDA, ``None`` (float32)
    elsewhere."""
    return torch.bfloat16 if is_cuda(device) else None


def training_autocast(device: DeviceLike) -> contextlib.AbstractContextManager:
    """The context of a training forward pass: bf16 autocast on CUDA; a no-op elsewhere."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(_type(device), dtype=dtype)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Run CUDA float32 convolutions and matrix products in IEEE float32 (no TF32) inside.

    Uses only the ``fp32_precision`` API of torch ≥ 2.9 (mixing it with the legacy ``allow_tf32``
    flags raises in current torch); restores the caller's settings on exit. No effect on CPU.
    """
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    matmul.fp32_precision = "ieee"
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


@contextlib.contextmanager
def fp32_outputs(device: DeviceLike) -> Iterator[None]:
    """The context of outputs that feed an attack: IEEE float32 on ``device``, also inside a
    caller's autocast (switched off for ``device``'s type) and without TF32 (:func:`full_fp32`)."""
    with full_fp32(), torch.autocast(_type(device), enabled=False):
        yield


# ---- models ----------------------------------------------------------------------------------
def memory_format_for(arch: str, device: DeviceLike) -> torch.memory_format:
    """The memory format of an ``arch`` model on ``device``: channels_last for a CNN
    (:data:`CNN_ARCHS`) on CUDA, contiguous for the FC model, unknown names and on the CPU."""
    if is_cuda(device) and arch in CNN_ARCHS:
        return torch.channels_last
    return torch.contiguous_format


def prepare_model(model: nn.Module, arch: str, device: DeviceLike) -> nn.Module:
    """``model`` moved to ``device`` in :func:`memory_format_for` ``(arch, device)`` (in place, as
    ``nn.Module.to`` does; returned for chaining)."""
    model = model.to(device)
    fmt = memory_format_for(arch, device)
    if fmt is not torch.contiguous_format:
        model = model.to(memory_format=fmt)
    return model


# ---- tensors ---------------------------------------------------------------------------------
class TransferPlan(NamedTuple):
    """How a tensor moves: pin the host memory first, copy with ``non_blocking``."""

    pin: bool
    non_blocking: bool


def transfer_plan(source: DeviceLike, target: DeviceLike) -> TransferPlan:
    """Host → CUDA: pinned and non-blocking; everything else (CPU → CPU, CUDA → CPU, CUDA → CUDA):
    a plain blocking ``.to`` (a non-blocking copy into pageable host memory could be read early)."""
    fast = _type(source) == "cpu" and is_cuda(target)
    return TransferPlan(pin=fast, non_blocking=fast)


def to_device(tensor: torch.Tensor, device: DeviceLike) -> torch.Tensor:
    """``tensor`` on ``device`` as :func:`transfer_plan` says (the same values; on the CPU exactly
    ``tensor.to(device)``, which returns ``tensor`` itself when it is there already)."""
    plan = transfer_plan(tensor.device, device)
    if plan.pin and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=plan.non_blocking)
