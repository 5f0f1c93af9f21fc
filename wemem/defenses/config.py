"""Typed defense configurations: which defense, with which settings, shown under which labels.

A :class:`DefenseConfig` is one point of a defense sweep: the defense's official name, its own
settings (they enter the cache key: window ``width``/``step``, ``tau``, ``lambda_r``, a baseline's
β/θ/α/σ) and the labels a table shows for it (``setting``, ``method``, ``order``,
``width_fraction``, ``step_size``, ``pruning`` …). :data:`BASE` is the undefended Base.

The window grid of RSW and SWMR (Fig. 5/6) is a pure function of the class size n_c
(:func:`window_grid`), so a planner with no data computes the same grid as a notebook with data.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wemem.defenses.primitives import window_rule
from wemem.errors import ParamsError


@dataclass(frozen=True)
class DefenseConfig:
    """One defense setting of a sweep.

    Attributes:
        name: the defense's official name (``base``, ``rsw_l2h``, ``rmr``, ``swmr_h2l``, ``ppb`` …).
        settings: the defense's own settings, passed to it as keywords (they enter the cache key).
        labels: table columns for this setting; ``setting`` (its display name) is always there.
    """

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    labels: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # copies, in their given order (the order of a table's columns)
        object.__setattr__(self, "settings", dict(self.settings))
        object.__setattr__(self, "labels", dict(self.labels))

    @property
    def setting(self) -> str:
        """The display name of this setting (``labels["setting"]``), e.g. ``RSW(L→H) w=9 s=1``."""
        return self.labels["setting"]

    @property
    def method(self) -> str:
        """The method column (``RSW``, ``RMR``, ``SWMR``, ``PPB`` …; ``""`` when unlabelled)."""
        return self.labels.get("method", "")

    @property
    def one_shot(self) -> bool:
        """Pruned once to the final rate instead of iteratively (``labels["pruning"]``)."""
        return self.labels.get("pruning") == "one-shot"

    def relabel(self, **labels: Any) -> DefenseConfig:
        """The same defense and settings with ``labels`` added or replaced (order kept)."""
        return replace(self, labels={**self.labels, **labels})


#: Base: early stopping + L2, no defense.
BASE = DefenseConfig(
    "base", {}, {"setting": "Base", "method": "Base", "order": "", "width": 0, "step": 0}
)


@dataclass(frozen=True)
class Window:
    """One sliding window of RSW/SWMR: ``width`` w and ``step`` s (samples per class),
    ``width_fraction`` w/n_c and ``step_size`` ``"small"`` or ``"large"``."""

    width: int
    step: int
    width_fraction: float
    step_size: str


def window_grid(
    n_c: float,
    *,
    widths: Sequence[int] = (),
    steps: Sequence[int] = (),
    fractions: Sequence[float] = (2 / 3, 4 / 9, 2 / 9),
) -> list[Window]:
    """The window grid for class size ``n_c`` (members per class, averaged over classes).

    Explicit ``widths`` × ``steps`` (the paper's settings table, spec §2.4): widths from the widest,
    each with its steps from the smallest (the smallest step is ``small``, the others ``large``);
    any number of distinct widths and steps, integers >= 1, both given or both empty (else
    :class:`ParamsError`, before anything trains). When ``widths`` is empty, the paper's rule (spec
    §2.2, :func:`~wemem.defenses.primitives.window_rule` on round(n_c)): w ≈ fraction·n_c for each
    of ``fractions``, each with the small step s ≈ (n_c − w_min)/40 and then the large one
    s ≈ (n_c − w_min)/20; a window the rounding repeats (a small class: both steps 1) is kept once.
    """
    if widths or steps:
        _check_explicit(widths, steps)
        ordered = sorted(steps)
        return [
            Window(int(w), int(s), w / n_c, "small" if s == ordered[0] else "large")
            for w in sorted(widths, reverse=True)
            for s in ordered
        ]
    grid, seen = [], set()
    for f in fractions:
        width, s_large, s_small = window_rule(round(n_c), fraction=f)
        for step, size in ((s_small, "small"), (s_large, "large")):
            if (width, step) not in seen:
                seen.add((width, step))
                grid.append(Window(width, step, f, size))
    return grid


def _check_explicit(widths: Sequence[int], steps: Sequence[int]) -> None:
    """Refuse an explicit window grid that is empty on one side, repeats a value or holds a value
    that is not an integer >= 1 (windows are counted in samples per class)."""
    for name, values, other in (("widths", widths, steps), ("steps", steps, widths)):
        if not values:
            raise ParamsError(
                f"window grid: {name} = [] but {'steps' if name == 'widths' else 'widths'} = "
                f"{list(other)!r}; give both (the settings table) or neither (the paper's rule)"
            )
        bad = [
            v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
        ]
        if bad:
            raise ParamsError(f"window grid: {name} = {list(values)!r}; integers >= 1 only")
        if len(set(values)) != len(values):
            raise ParamsError(f"window grid: {name} = {list(values)!r} repeats a value")


def headline_window(grid: Sequence[Window]) -> Window:
    """The paper's headline window: the smallest width with the small step (spec §1, §8.2: RSW(L→H)
    and SWMR(H→L) of Fig. 7–9 and the random-order ablation use it). Among equal widths, the last in
    grid order, i.e. the smallest fraction. A grid of :func:`window_grid` always has one (every
    width has a small step); any other raises :class:`ParamsError`, naming the windows, so a
    notebook calls it while building its configs, before anything trains."""
    narrowest = min((w.width for w in grid), default=None)
    pick = [w for w in grid if w.width == narrowest and w.step_size == "small"]
    if not pick:
        found = ", ".join(f"w={w.width} s={w.step} ({w.step_size})" for w in grid) or "none"
        raise ParamsError(
            f"window grid: no window of the smallest width with the small step (the headline "
            f"window); windows: {found}"
        )
    return pick[-1]


#: The settings table's window grid per dataset (spec §2.4 "Sliding Windows and Mem-score Threshold
#: Settings"): (widths, steps) in samples per class.
PAPER_WINDOW_GRID: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "cifar10": ((1500, 1000, 500), (50, 100)),
    "cifar100": ((150, 100, 50), (5, 10)),
    "cinic10": ((2700, 1800, 900), (100, 200)),
    "texas100": ((160, 110, 55), (5, 10)),
    "location30": ((40, 30, 15), (1, 3)),
    "purchase100": ((474, 316, 158), (25, 35)),
}

#: The authors' best windows, (w, s) of RSW(L→H) and SWMR(H→L), from their demo script
#: (spec §1, ``run_shell.sh``, pruning rate 0.6).
AUTHORS_BEST_WINDOWS: dict[tuple[str, str], dict[str, tuple[int, int]]] = {
    ("cifar10", "resnet18"): {"rsw": (500, 50), "swmr": (500, 100)},
    ("location30", "fc"): {"rsw": (15, 1), "swmr": (15, 1)},
}


def paper_windows(dataset: str, arch: str) -> dict[str, tuple[int, int]]:
    """The windows of RSW(L→H) and SWMR(H→L) for a paper comparison on ``(dataset, arch)``: the
    authors' best (:data:`AUTHORS_BEST_WINDOWS`) where the spec gives them, else this project's
    documented choice from the settings table's own grid (:data:`PAPER_WINDOW_GRID`): the smallest
    width with the small step for both (the headline setting of Fig. 5/6, and the authors' RSW
    choice on both datasets where they give one)."""
    if (dataset, arch) in AUTHORS_BEST_WINDOWS:
        return dict(AUTHORS_BEST_WINDOWS[(dataset, arch)])
    if dataset not in PAPER_WINDOW_GRID:
        raise ParamsError(
            f"dataset {dataset!r} has no window grid in spec §2.4; allowed: {sorted(PAPER_WINDOW_GRID)}"
        )
    widths, steps = PAPER_WINDOW_GRID[dataset]
    w = (min(widths), min(steps))
    return {"rsw": w, "swmr": w}
