"""Discrete colours from matplotlib's colormaps, equal to seaborn's ``color_palette(name, n)``.

Importing seaborn imports scipy.stats (about 2 s per notebook kernel); the figures that only need
a palette take it from here, and seaborn is imported by the figures that draw with it."""

from __future__ import annotations

from itertools import cycle, islice

import matplotlib
import numpy as np

#: matplotlib's qualitative colormaps and their numbers of colours (seaborn indexes these exactly
#: instead of sampling them)
QUALITATIVE = {
    "tab10": 10, "tab20": 20, "tab20b": 20, "tab20c": 20, "Set1": 9, "Set2": 8, "Set3": 12,
    "Accent": 8, "Paired": 12, "Pastel1": 9, "Pastel2": 8, "Dark2": 8,
}  # fmt: skip


def palette(name: str, n: int) -> list[tuple[float, float, float]]:
    """``n`` RGB colours of the matplotlib colormap ``name``: a qualitative map's first colours,
    repeated in turn beyond its size; a continuous map sampled evenly without its two ends."""
    cmap = matplotlib.colormaps[name]
    if name in QUALITATIVE:
        bins = np.linspace(0, 1, QUALITATIVE[name])[:n]
    else:
        bins = np.linspace(0, 1, n + 2)[1:-1]
    colours = [tuple(float(v) for v in c) for c in cmap(bins)[:, :3]]
    return list(islice(cycle(colours), n))
