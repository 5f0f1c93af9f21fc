"""One dataset as one tensor: the training pool P and the test pool T, with optional label noise.

Every later split (victim, shadows; spec §5.2) is an index array into the rows of a :class:`Pool`,
so training never loads samples one by one.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wemem.data.files import fixture_digest
from wemem.data.images import load_cifar, load_cinic, load_digits_pool
from wemem.data.noise import apply_label_noise
from wemem.data.registry import RawPool, dataset_dir, dataset_info
from wemem.data.tabular import (
    SYNTHETIC_DEFAULTS,
    load_location,
    load_purchase,
    load_synthetic,
    load_texas,
)
from wemem.errors import ParamsError
from wemem.io import digest as digest_of

log = logging.getLogger(__name__)

_POOL_VERSION = 1
#: Datasets whose P/T split is drawn with ``pool_seed`` (the others have fixed pools).
SEEDED_POOLS = frozenset({"texas100", "location30", "purchase100", "digits", "synthetic"})
#: Options each dataset accepts in ``load_pool(name, **options)``, with their defaults.
OPTIONS: dict[str, dict[str, Any]] = {"synthetic": SYNTHETIC_DEFAULTS}


@dataclass(frozen=True, eq=False)
class Pool:
    """A dataset's training pool P (rows ``[0, n_train)``) and test pool T (rows after it).

    Attributes:
        name: registry name.
        x: (N, *input_shape) float32 on the pool's device; images normalised (spec §5.1),
            tabular raw 0/1.
        y: (N,) int64 labels in 0..num_classes-1 after label noise (what models train on).
        y_clean: (N,) int64 original labels.
        flipped: (N,) bool numpy mask, True where label noise changed the label.
        n_train: |P|; rows ``[n_train, N)`` are T.
        num_classes: C.
        digest: sha256 hex of exactly the settings that define the pool (for a fixture also
            its marker, so a fixture never shares a digest with the real dataset).
        fixture: True when the files are a synthetic stand-in written by ``wemem data fixtures``.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    y_clean: torch.Tensor
    flipped: np.ndarray
    n_train: int
    num_classes: int
    digest: str
    fixture: bool = False

    @property
    def n_test(self) -> int:
        """|T|, the number of rows after the training pool."""
        return len(self.y) - self.n_train

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (3, 32, 32) or (600,)."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Pool(name={self.name!r}, P={self.n_train}, T={self.n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"flipped={int(self.flipped.sum())}, device={self.x.device}, digest={self.digest[:12]}"
            f"{', fixture=True' if self.fixture else ''})"
        )


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise :class:`ParamsError` unless every key of ``options`` is an option of dataset ``name``
    (before a batch runs: a typo would otherwise fail in the kernel)."""
    try:
        _resolve_options(name, dict(options))
    except ParamsError as e:
        raise ParamsError(f"parameter 'data_options' = {dict(options)!r}: {e}") from None


def _resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = OPTIONS.get(name, {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listing = ", ".join(sorted(allowed)) if allowed else "none"
        raise ParamsError(
            f"load_pool({name!r}): unknown option(s) {', '.join(unknown)}; allowed: {listing}"
        )
    resolved = {**allowed, **options}
    # Plain Python numbers so the digest does not depend on numpy scalar types.
    return {
        k: int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
        for k, v in sorted(resolved.items())
    }


def _check_int(field: str, value: object) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ParamsError(f"{field}: {value!r} is not allowed; must be an int >= 0")
    return int(value)


def _load_raw(name: str, root: str | Path | None, pool_seed: int, opts: dict[str, Any]) -> RawPool:
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root)
    if name == "cinic10":
        return load_cinic(root)
    if name == "texas100":
        return load_texas(root, pool_seed=pool_seed)
    if name == "location30":
        return load_location(root, pool_seed=pool_seed)
    if name == "purchase100":
        return load_purchase(root, pool_seed=pool_seed)
    if name == "digits":
        return load_digits_pool(pool_seed=pool_seed)
    return load_synthetic(pool_seed=pool_seed, **opts)


def load_pool(
    name: str,
    *,
    root: str | Path | None = None,
    label_noise: float = 0.0,
    noise_seed: int = 0,
    pool_seed: int = 7,
    device: str | torch.device = "cpu",
    **options: Any,
) -> Pool:
    """Load dataset ``name`` as one :class:`Pool` on ``device``.

    Args:
        name: a key of :data:`~wemem.data.DATASETS`.
        root: data root holding ``<name>/`` (default :func:`~wemem.data.data_root`).
        label_noise: fraction in [0, 1) of ALL labels (P and T) moved to another class before any
            split, so flipped members and flipped non-members both exist.
        noise_seed: seed of the label noise (ignored, and left out of the digest, when label_noise
            is 0).
        pool_seed: seed of the 80/20 P/T split of the tabular sets, digits and synthetic (the
            official code did not seed it); unused by CIFAR/CINIC, whose pools are fixed.
        device: where ``x``, ``y`` and ``y_clean`` live.
        **options: dataset options; only ``synthetic`` has some (``SYNTHETIC_DEFAULTS``).

    Raises:
        ParamsError: unknown name/option or a value out of range.
        DatasetMissingError: the dataset's files are absent (the message says how to get them).
        DataFormatError: a file is malformed or fails its checksum.
    """
    info = dataset_info(name)
    opts = _resolve_options(name, options)
    if not isinstance(label_noise, numbers.Real) or not 0.0 <= label_noise < 1.0:
        raise ParamsError(f"label_noise: {label_noise!r} is not allowed; must be in [0, 1)")
    noise_seed = _check_int("noise_seed", noise_seed)
    pool_seed = _check_int("pool_seed", pool_seed)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParamsError(
            f"device: {device!r} is not a torch device ('cpu', 'cuda:0', ...)"
        ) from exc

    raw = _load_raw(name, root, pool_seed, opts)
    num_classes = int(opts.get("n_classes", info.num_classes))
    y, flipped = apply_label_noise(
        raw.y, fraction=float(label_noise), num_classes=num_classes, seed=noise_seed
    )
    defining: dict[str, Any] = {
        "version": _POOL_VERSION,
        "name": name,
        "options": opts,
        "label_noise": float(label_noise),
        "noise_seed": noise_seed if label_noise > 0 else None,
        "pool_seed": pool_seed if name in SEEDED_POOLS else None,
        "n_train": raw.n_train,
        "n_test": len(raw.y) - raw.n_train,
    }
    # Only a fixture adds a key, so the digests of real and offline data stay as they were.
    fixture = None if info.offline else fixture_digest(dataset_dir(name, root))
    if fixture is not None:
        defining["fixture"] = fixture
        if name not in ("cifar10", "cifar100"):  # load_cifar has said so already
            log.warning("%s: fixture data (synthetic stand-in), not the real dataset", name)
    digest = digest_of(defining)
    pool = Pool(
        name=name,
        x=raw.x.to(dev),
        y=torch.from_numpy(y).to(dev),
        y_clean=torch.from_numpy(np.ascontiguousarray(raw.y, dtype=np.int64)).to(dev),
        flipped=flipped,
        n_train=raw.n_train,
        num_classes=num_classes,
        digest=digest,
        fixture=fixture is not None,
    )
    log.info("loaded %r", pool)
    return pool
