"""A run's data geometry without its data: settings, notebook parameters, pool and split sizes.

Sizes come from the dataset registry (:func:`wemem.data.registry.dataset_info`) and the split
arithmetic of :mod:`wemem.data.splits`, in exact rational arithmetic as there, so the planner knows
every model's members, dev and non-member counts without loading a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from wemem.data.files import read_fixture_marker
from wemem.data.registry import dataset_dir, dataset_info
from wemem.experiment.keys import Reference, is_reference_role, reference_of, reference_role
from wemem.params import FIELDS, Settings, validate


def _frac(x: float) -> Fraction:
    return Fraction(repr(float(x)))


@dataclass(frozen=True)
class Ctx:
    """A run's settings, the extra notebook parameters and the data geometry they imply."""

    s: Settings
    p: dict[str, Any]
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    num_classes: int
    sizes: dict[str, tuple[int, int, int]]  # "victim"/"shadow" -> (members, dev, non-members)

    def role_sizes(self, role: str) -> tuple[int, int, int]:
        """(members, dev, non-members) of a role; an online-LiRA reference trains on half of P
        (the other half are its non-members) and stops early on the victim's dev rows in T."""
        if is_reference_role(role):
            members, dev, _ = self.sizes["victim"]
            held = self.n_train - math.ceil(self.n_train / 2) - members  # the victim half's rest
            dev_t = math.ceil(Fraction(dev * self.n_test, self.n_test + held))  # its share in T
            return self.n_train // 2, dev_t, self.n_train - self.n_train // 2
        return self.sizes["victim" if role == "victim" else "shadow"]

    @property
    def seed(self) -> int:
        """The replicate seed of the notebooks' experiment (``settings.seeds[0]``)."""
        return self.s.seeds[0]


def make_ctx(params: dict[str, Any]) -> Ctx:
    s = validate({k: v for k, v in params.items() if k in FIELDS})
    info, opts = dataset_info(s.dataset), dict(s.data_options)
    if s.dataset == "synthetic":
        from wemem.data.tabular import SYNTHETIC_DEFAULTS

        opts = {**SYNTHETIC_DEFAULTS, **opts}
        n, shape, classes = opts["n_samples"], (opts["n_features"],), opts["n_classes"]
    elif s.dataset == "digits":
        n, shape, classes = 1797, info.input_shape, info.num_classes
    if info.pool_sizes is None:  # seeded 80/20 split (wemem.data.tabular.split_pool)
        n_test = math.ceil(Fraction(1, 5) * n)
        n_train = n - n_test
    else:
        (n_train, n_test), shape, classes = info.pool_sizes, info.input_shape, info.num_classes
        marker = None if info.offline else read_fixture_marker(dataset_dir(s.dataset))
        if marker is not None:  # `wemem data fixtures`: the stand-in's own (small) pools
            n_train, n_test = marker["rows"]["train_pool"], marker["rows"]["test_pool"]

    def split(half: int) -> tuple[int, int, int]:  # wemem.data.splits._model_split
        held = math.ceil((1 - _frac(s.member_fraction)) * half)
        rest = held + n_test
        test = math.ceil((1 - _frac(s.dev_fraction)) * rest)
        return half - held, rest - test, test

    # P is halved by train_test_split(test_size=ceil(n/2)): the victim's half is the train part
    sizes = {
        "victim": split(n_train - math.ceil(n_train / 2)),
        "shadow": split(math.ceil(n_train / 2)),
    }
    return Ctx(s, params, n_train, n_test, tuple(shape), int(classes), sizes)


def role_index(role: str, s: Settings | None = None, seed: int = 0) -> int | Reference:
    """0 for the victim, i + 1 for shadow i; for an online-LiRA reference ``ref<k>of<K>`` its
    :class:`~wemem.experiment.keys.Reference` (needs the settings' split seed and the replicate
    seed) (:meth:`wemem.experiment.replicate.Experiment._role_index`)."""
    if is_reference_role(role):
        if s is None:
            raise ValueError(f"role {role!r}: a reference's identity needs the settings")
        return reference_of(role, split_seed=s.split_seed, seed=seed)
    return 0 if role == "victim" else int(role.removeprefix("shadow")) + 1


def reference_names(n_refs: int) -> list[str]:
    """The role strings of ``n_refs`` online-LiRA references (:mod:`wemem.experiment.references`)."""
    return [reference_role(k, n_refs) for k in range(n_refs)]


def role_names(n_shadows: int, victim: bool = True) -> list[str]:
    return (["victim"] if victim else []) + [f"shadow{i}" for i in range(n_shadows)]
