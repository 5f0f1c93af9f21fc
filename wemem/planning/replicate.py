"""A replicate with a run's geometry and no data, for the config builders that read one.

Some builders of :mod:`wemem.studies` take an :class:`~wemem.experiment.replicate.Experiment` but
read only two things from it: the victim's class size n_c (:func:`wemem.studies.sweeps.class_size`,
for the window grid) and τ (:func:`wemem.studies.sweeps.tau_for`, from the mem-scores).
:class:`PlanReplicate` answers both without data, so the planner calls those builders exactly as
the notebooks do: its victim has the planned number of members, spread so that n_c is exact (the
mean of a bincount is members / classes whatever the labels), and its mem-scores are the ramp of
:func:`wemem.planning.entries.ramp`, from which :func:`wemem.planning.entries.tau_placeholder`
reads back which high-risk fraction a τ selects.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from wemem.planning.entries import ramp
from wemem.planning.geometry import Ctx


class PlanReplicate:
    """What the config builders read of a replicate: ``settings``, the victim's split and labels
    (class size), the mem-scores (τ)."""

    def __init__(self, c: Ctx) -> None:
        members = c.sizes["victim"][0]
        self.settings = c.s
        self.pool = SimpleNamespace(
            y=torch.zeros(members, dtype=torch.long), num_classes=c.num_classes
        )
        self._victim = SimpleNamespace(train=np.arange(members))

    def split(self, role: str) -> SimpleNamespace:
        if role != "victim":
            raise ValueError(f"a PlanReplicate knows the victim's split only; asked for {role!r}")
        return self._victim

    def memscores(self) -> SimpleNamespace:
        return SimpleNamespace(score=ramp())
