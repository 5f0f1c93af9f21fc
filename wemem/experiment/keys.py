"""Cache-key specs of the victim's, shadows' and LiRA references' models, as pure functions of
plain values.

A spec is exactly what a model depends on; :meth:`wemem.cache.Cache.key` digests it. The functions
take settings, digests and indices (never a dataset), so a planner without data can call them with
placeholder digests. Their output is the cache key's content: changing a spec's shape or values
retrains every model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

from wemem.models import norm_key_part
from wemem.params import Settings
from wemem.training import dropout, fastpath
from wemem.training.loop import TrainConfig

#: What a pruning run's entry holds, part of its key. Revision 1 (no ``revision`` field): per-sample
#: outputs under CUDA bf16 autocast, summary ``seconds`` including the per-round output passes and
#: the resume-point writes. Revision 2: outputs in IEEE float32 (:mod:`wemem.experiment.outputs`),
#: ``seconds`` the training rounds only, ``output_seconds``/``checkpoint_seconds`` beside it
#: (:class:`wemem.pruning.PruneResult`).
PRUNED_REVISION = 2

#: Architectures with dropout layers. Their models' keys name the CPU dropout masks they train
#: under (:data:`wemem.training.dropout.MASKS`); entries made under torch's Bernoulli masks had no
#: such part, so they are never read for models of the new masks.
DROPOUT_ARCHS = ("fc", "vgg16bn")


def defense_settings(settings: Settings, defense: str) -> Settings:
    """The settings of the models a ``defense``'s rows train: the run's own, except DP-SGD on a
    CNN with BatchNorm, whose models (dense training included) are built with ``dp_norm``
    (GroupNorm): BatchNorm has no per-example gradients. The FC model has no norm layer."""
    s = settings
    if defense == "dp" and s.arch != "fc" and s.norm == "batch":
        return dataclasses.replace(s, norm=s.dp_norm)
    return s


@dataclasses.dataclass(frozen=True)
class Reference:
    """The identity of online-LiRA reference model ``k`` of ``n_refs`` (role ``ref{k}of{n_refs}``,
    :mod:`wemem.experiment.references`), in place of a victim/shadow role index.

    ``keep_seed`` seeds the keep matrix that picks its training rows (:func:`keep_seed`). A
    reference's dense spec carries all three under ``"reference"``, a key no victim or shadow
    spec has, so no reference entry can take a victim's or shadow's key.
    """

    k: int
    n_refs: int
    keep_seed: int

    @property
    def role(self) -> str:
        return reference_role(self.k, self.n_refs)


_REFERENCE_ROLE = re.compile(r"ref(0|[1-9][0-9]*)of([1-9][0-9]*)")


def reference_role(k: int, n_refs: int) -> str:
    """The role string of reference ``k`` of ``n_refs``: ``ref{k}of{n_refs}``."""
    return f"ref{k}of{n_refs}"


def is_reference_role(role: str) -> bool:
    """Whether ``role`` names a reference (starts with ``ref``; :func:`parse_reference_role` checks
    the rest)."""
    return role.startswith("ref")


def parse_reference_role(role: str) -> tuple[int, int]:
    """``(k, n_refs)`` of a role string ``ref{k}of{n_refs}`` (no leading zeros, 0 <= k < n_refs).

    Raises:
        ValueError: ``role`` is not such a string.
    """
    m = _REFERENCE_ROLE.fullmatch(role)
    if m is None or int(m.group(1)) >= int(m.group(2)):
        raise ValueError(
            f"role {role!r}: a reference role is 'ref<k>of<n_refs>' with 0 <= k < n_refs"
        )
    return int(m.group(1)), int(m.group(2))


def reference_of(role: str, *, split_seed: int, seed: int) -> Reference:
    """The :class:`Reference` of role ``ref{k}of{n_refs}`` in replicate ``seed`` of a run with
    ``split_seed`` (the experiment and the planner both know a reference by it)."""
    k, n_refs = parse_reference_role(role)
    return Reference(k, n_refs, keep_seed(split_seed, seed))


def _sha_int(text: str, n_bytes: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:n_bytes], "big")


def keep_seed(split_seed: int, seed: int) -> int:
    """The seed of a replicate's reference keep matrix (:func:`wemem.data.reference_keep`): a
    sha256-derived int of the run's ``split_seed`` and the replicate ``seed``, in [0, 2**63), so
    every replicate has its own references while the victim's split stays the run's."""
    return _sha_int(f"wemem.lira.keep|{split_seed}|{seed}", 8) >> 1


#: Reference model seeds lie in [2**40, 2**41): far above every victim/shadow seed
#: ``seed * 100 + role_index`` of a replicate seed below 10**10, and, times 1000 plus a round
#: (:func:`wemem.pruning.prune_and_finetune`), still a valid torch seed.
REFERENCE_SEED_BASE = 2**40


def reference_seed(seed: int, k: int, n_refs: int) -> int:
    """The seed of reference ``k`` of ``n_refs``'s initialisation and training in replicate
    ``seed``: :data:`REFERENCE_SEED_BASE` plus 40 bits of a sha256 of the three."""
    return REFERENCE_SEED_BASE + _sha_int(f"wemem.lira.reference|{seed}|{k}|{n_refs}", 5)


def model_seed(seed: int, role_index: int | Reference) -> int:
    """The seed of a model's initialisation and training: replicate ``seed``, role ``role_index``
    (0 = victim, i + 1 = shadow i: ``seed * 100 + role_index``; a :class:`Reference`:
    :func:`reference_seed`)."""
    if isinstance(role_index, Reference):
        return reference_seed(seed, role_index.k, role_index.n_refs)
    return seed * 100 + role_index


def train_config(
    settings: Settings, *, max_epochs: int, seed: int, role_index: int | Reference
) -> TrainConfig:
    """The training settings of one model (dense: ``max_epochs``; pruning rounds: fine-tuning)."""
    s = settings
    return TrainConfig(
        lr=s.lr,
        weight_decay=s.weight_decay,
        batch_size=s.batch_size,
        max_epochs=max_epochs,
        patience=s.patience,
        seed=model_seed(seed, role_index),
    )


def rows_digest(*arrays: np.ndarray) -> str:
    """sha256 hex of row-index arrays (as int64, each followed by ``|``)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def dense_spec(
    settings: Settings, *, pool_digest: str, rows: str, seed: int, role_index: int | Reference
) -> dict:
    """Key spec of a dense model. Its ``"optimizer"`` part names the optimizer kernel of the
    training code (:data:`wemem.training.fastpath.KERNEL`; pruned specs inherit it): entries of the
    single-tensor Adam had none, so they are never read.

    Args:
        pool_digest: the pool's digest (:attr:`wemem.data.Pool.digest`).
        rows: :func:`rows_digest` of the model's train and dev rows.
        seed, role_index: the replicate seed and the role (see :func:`model_seed`); a
            :class:`Reference` adds a ``"reference"`` part (victim and shadow specs have none).
    """
    s = settings
    config = train_config(s, max_epochs=s.max_epochs, seed=seed, role_index=role_index)
    spec = {
        "pool": pool_digest,
        "rows": rows,
        "arch": s.arch,
        "width": s.width,
        "stem_maxpool": s.stem_maxpool,
        "train": config.__dict__,
        **norm_key_part(s.arch, s.norm),
        **({"dropout": dropout.MASKS} if s.arch in DROPOUT_ARCHS else {}),
        "optimizer": fastpath.KERNEL,
    }
    if isinstance(role_index, Reference):
        spec["reference"] = dataclasses.asdict(role_index)
    return spec


def pruned_spec(
    settings: Settings,
    *,
    dense: dict,
    eval_rows: str,
    seed: int,
    role_index: int | Reference,
    one_shot: bool = False,
    approach: str | None = None,
    rate: float | None = None,
    defense: str = "base",
    defense_spec: dict | None = None,
) -> dict:
    """Key spec of a pruning run (iterative, or one-shot) of the ``dense`` model with a defense.

    Args:
        dense: the dense model's :func:`dense_spec`.
        eval_rows: :func:`rows_digest` of the model's non-member (test) rows.
        approach, rate: default to the settings' pruning approach and rate.
        defense, defense_spec: the defense's name and exactly its settings
            (:func:`wemem.defenses.catalog.defense_parts`).
    """
    s = settings
    return {
        "dense": dense,
        "approach": approach or s.pruning_approach,
        "rate": s.pruning_rate if rate is None else rate,
        "rounds": 1 if one_shot else s.pruning_rounds,
        "finetune": train_config(
            s, max_epochs=s.finetune_epochs, seed=seed, role_index=role_index
        ).__dict__,
        "defense": defense,
        "defense_spec": defense_spec or {},
        "eval_rows": eval_rows,
        "revision": PRUNED_REVISION,
    }


def sensitivity_spec(
    *,
    model: str,
    rows_in: str,
    rows_out: str,
    m: int,
    eps: float,
    seed: int,
    picked: str | None = None,
) -> dict:
    """Key spec of a model's posterior sensitivity (:func:`wemem.experiment.adaptive.add_sensitivity`):
    the digests of the model's weights and of its member and non-member rows, ``m`` perturbed
    copies at scale ``eps``, the ``seed`` of the perturbations; ``picked``, the digest of the
    positions computed when not all of them are (absent otherwise: the keys of whole
    computations are those they always had)."""
    spec = {
        "model": model,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "m": m,
        "eps": eps,
        "seed": seed,
    }
    return spec if picked is None else {**spec, "picked": picked}
