"""Victim and shadow splits of a pool (spec §5.2, official ``pretrain_modi.py``).

With P = rows ``0..n_train-1`` and T = rows ``n_train..n_train+n_test-1`` of a
:class:`~wemem.data.Pool`:

1. P is split 50/50 (``seed``) into the victim half V (first part) and the shadow half A.
2. V is split 90/10 (``seed``): the 90% part are the victim's members; the 10% part plus all of T
   is split 34/66 (``seed``) into victim dev and victim test (the non-members).
3. Shadow i repeats step 2 on A with ``seed + i``.

Online LiRA's reference models (:func:`reference_keep`, :func:`reference_split`) train on random
halves of P instead, balanced so that every P row is IN for exactly half of them.

Every split is ``sklearn.model_selection.train_test_split`` (:func:`shuffle_split`: the same
permutation, without importing scikit-learn). Its test part has
``ceil(test_share * n)`` rows; we compute that count in exact rational arithmetic (so ``1 - 0.9``
cannot round to a different count) and pass it as an integer, which draws the very same
permutation as the float the official code passed. The sizes of the spec's table come out exactly.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from wemem.errors import DataFormatError, ParamsError
from wemem.io import atomic_path


@dataclass(frozen=True, eq=False)
class ModelSplit:
    """The rows one model (victim or shadow) uses, as int64 indices into the pool.

    Attributes:
        train: (n_members,) members, always rows of P.
        dev: (n_dev,) model-selection rows, from the held-out 10% of the half and T.
        test: (n_nonmembers,) non-members, from the same source as ``dev`` and disjoint from it.
        seed: the ``random_state`` of this model's 90/10 and 34/66 splits.
    """

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    seed: int


@dataclass(frozen=True, eq=False)
class Splits:
    """The victim's split, the shadows' splits and a digest of all their index arrays."""

    victim: ModelSplit
    shadows: tuple[ModelSplit, ...]
    digest: str

    @property
    def models(self) -> tuple[ModelSplit, ...]:
        """(victim, shadow 0, shadow 1, ...)."""
        return (self.victim, *self.shadows)

    def to_npz(self, path: str | Path) -> Path:
        """Write all index arrays and the digest to ``path`` (atomically); return the path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "digest": np.array(self.digest),
            "n_models": np.array(len(self.models)),
        }
        for i, m in enumerate(self.models):
            arrays.update({f"m{i}_train": m.train, f"m{i}_dev": m.dev, f"m{i}_test": m.test})
            arrays[f"m{i}_seed"] = np.array(m.seed)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def from_npz(cls, path: str | Path) -> Splits:
        """Read splits written by :meth:`to_npz`; DataFormatError if keys or digest disagree."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                models = [
                    ModelSplit(
                        train=f[f"m{i}_train"].astype(np.int64),
                        dev=f[f"m{i}_dev"].astype(np.int64),
                        test=f[f"m{i}_test"].astype(np.int64),
                        seed=int(f[f"m{i}_seed"]),
                    )
                    for i in range(int(f["n_models"]))
                ]
                stored = str(f["digest"])
        except (KeyError, ValueError) as exc:
            raise DataFormatError(
                f"{path}: not a splits file written by Splits.to_npz ({exc})"
            ) from exc
        if not models:
            raise DataFormatError(f"{path}: holds no victim split")
        digest = _digest(models)
        if digest != stored:
            raise DataFormatError(f"{path}: stored digest {stored} but the arrays hash to {digest}")
        return cls(victim=models[0], shadows=tuple(models[1:]), digest=digest)


def _digest(models: list[ModelSplit]) -> str:
    h = hashlib.sha256(b"wemem.splits.v1")
    for i, m in enumerate(models):
        h.update(f"|{i}:{m.seed}".encode())
        for part in (m.train, m.dev, m.test):
            arr = np.ascontiguousarray(part, dtype="<i8")
            h.update(f"|{arr.size}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _exact(x: float) -> Fraction:
    """The decimal the user wrote (0.9 → 9/10), not the nearest binary float."""
    return Fraction(repr(float(x)))


def _split(idx: np.ndarray, test_share: Fraction, seed: int, what: str) -> tuple[np.ndarray, ...]:
    n = len(idx)
    n_test = math.ceil(test_share * n)
    if not 0 < n_test < n:
        raise ParamsError(
            f"{what}: splitting {n} rows with test share {float(test_share):g} gives {n_test} test "
            f"rows; both parts must be non-empty (use larger pools or other fractions)"
        )
    a, b = shuffle_split(idx, n_test, seed)
    return a.astype(np.int64), b.astype(np.int64)


def shuffle_split(arr: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.model_selection.train_test_split(arr, test_size=n_test, random_state=seed)``
    without stratification, as scikit-learn computes it (its ``ShuffleSplit``): one permutation
    from NumPy's legacy ``RandomState(seed)``, whose first ``n_test`` entries index the test part
    and the rest the training part, each in permutation order. The very rows of scikit-learn
    (tests/data/test_data_splits.py compares the two), without importing it: scikit-learn's
    import costs every notebook kernel and worker about 2.5 s."""
    n_test = operator.index(n_test)
    perm = np.random.RandomState(operator.index(seed)).permutation(len(arr))
    return arr[perm[n_test:]], arr[perm[:n_test]]


def _model_split(
    half: np.ndarray, t_rows: np.ndarray, *, seed: int, member: Fraction, dev: Fraction, what: str
) -> ModelSplit:
    train, rest = _split(half, 1 - member, seed, f"{what} members")
    dev_rows, test_rows = _split(np.concatenate([rest, t_rows]), 1 - dev, seed, f"{what} dev/test")
    return ModelSplit(train=train, dev=dev_rows, test=test_rows, seed=seed)


def make_splits(
    n_train: int,
    n_test: int,
    *,
    n_shadows: int = 5,
    seed: int = 7,
    member_fraction: float = 0.9,
    dev_fraction: float = 0.34,
) -> Splits:
    """The victim and ``n_shadows`` shadow splits of a pool with |P| = n_train and |T| = n_test.

    Args:
        n_train: rows of the training pool P (pool rows ``0..n_train-1``).
        n_test: rows of the test pool T (pool rows ``n_train..n_train+n_test-1``).
        n_shadows: number of shadow models; shadow i uses seed ``seed + i``.
        seed: the official code's 7.
        member_fraction: share of each half that becomes members (0.9).
        dev_fraction: share of the held-out rows plus T that becomes dev (0.34).

    Returns:
        Splits with int64 index arrays; e.g. CIFAR10 (50,000 / 10,000) gives 22,500 members,
        4,250 dev and 8,250 non-members per model (spec §5.2 table).
    """
    for field, value in (
        ("n_train", n_train),
        ("n_test", n_test),
        ("n_shadows", n_shadows),
        ("seed", seed),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
            raise ParamsError(f"{field}: {value!r} is not allowed; must be an int >= 0")
    for field, value in (("member_fraction", member_fraction), ("dev_fraction", dev_fraction)):
        if not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise ParamsError(f"{field}: {value!r} is not allowed; must be in (0, 1)")
    member, dev = _exact(member_fraction), _exact(dev_fraction)
    victim_half, shadow_half = _split(np.arange(n_train), Fraction(1, 2), seed, "P victim/shadow")
    t_rows = np.arange(n_train, n_train + n_test, dtype=np.int64)
    victim = _model_split(victim_half, t_rows, seed=seed, member=member, dev=dev, what="victim")
    shadows = tuple(
        _model_split(shadow_half, t_rows, seed=seed + i, member=member, dev=dev, what=f"shadow {i}")
        for i in range(n_shadows)
    )
    return Splits(victim=victim, shadows=shadows, digest=_digest([victim, *shadows]))


def reference_keep(n_rows: int, n_refs: int, seed: int) -> np.ndarray:
    """The keep matrix of ``n_refs`` online-LiRA reference models over ``n_rows`` target rows.

    Carlini et al.'s balanced construction (S&P 2022, ``train.py``): draw a uniform
    ``(n_refs, n_rows)`` matrix from ``numpy.random.default_rng(seed)``, argsort it along axis 0
    (each column becomes a random permutation of ``0..n_refs-1``) and keep the entries below
    ``n_refs / 2``. Every row is therefore IN for exactly ``n_refs / 2`` references and OUT for
    the others, and each reference keeps about half of the rows.

    Args:
        n_rows: target rows (the training pool P: pool rows ``0..n_rows-1``).
        n_refs: reference models; even and >= 2.
        seed: the seed of the draw (deterministic).

    Returns:
        ``(n_refs, n_rows)`` bool; ``keep[k, i]``: reference ``k`` trains on row ``i``.

    Raises:
        ParamsError: ``n_refs`` odd or below 2, ``n_rows`` negative.
    """
    if not isinstance(n_refs, numbers.Integral) or isinstance(n_refs, bool):
        raise ParamsError(f"n_refs: {n_refs!r} is not allowed; must be an even int >= 2")
    if n_refs < 2 or n_refs % 2:
        raise ParamsError(f"n_refs: {n_refs!r} is not allowed; must be an even int >= 2")
    if not isinstance(n_rows, numbers.Integral) or n_rows < 0:
        raise ParamsError(f"n_rows: {n_rows!r} is not allowed; must be an int >= 0")
    order = np.random.default_rng(seed).random((n_refs, n_rows)).argsort(axis=0)
    return order < n_refs // 2


def reference_split(keep: np.ndarray, victim: ModelSplit, n_train: int, seed: int) -> ModelSplit:
    """The split of one reference model of an online-LiRA attack on the victim.

    Args:
        keep: ``(n_train,)`` bool, the reference's row of :func:`reference_keep` over P.
        victim: the victim's split; its dev rows in T (never trained on by any reference) are
            the reference's early-stopping rows.
        n_train: |P| (T starts at row ``n_train``).
        seed: recorded as the split's ``seed`` (the keep matrix's seed).

    Returns:
        ``train`` = the kept P rows, ``dev`` = the victim's dev rows in T, ``test`` = the P rows
        not kept (so ``train`` and ``test`` partition P), all ascending int64.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (n_train,):
        raise ValueError(f"keep must have shape ({n_train},); got {keep.shape}")
    dev = np.sort(victim.dev[victim.dev >= n_train]).astype(np.int64)
    return ModelSplit(
        train=np.flatnonzero(keep).astype(np.int64),
        dev=dev,
        test=np.flatnonzero(~keep).astype(np.int64),
        seed=int(seed),
    )
