"""Notebook 07's privacy-utility figure with DP rows of unbounded ε (σ = 0)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from wemem.report import plots_defenses  # noqa: E402


def _rows(eps: list[float]) -> pd.DataFrame:
    dp = [{"method": "DP", "setting": f"σ{i}", "epsilon": e, "test_acc": 0.5, "auc": 0.6,
           "dp_delta": 1e-5} for i, e in enumerate(eps)]  # fmt: skip
    base = {"method": "Base", "setting": "Base", "epsilon": math.nan, "test_acc": 0.7, "auc": 0.8}
    return pd.DataFrame([*dp, base])


@pytest.mark.parametrize("eps", [[math.inf], [math.inf, 2.0, 8.0], [1.0, 8.0]])
def test_privacy_utility_draws_finite_epsilons_and_counts_the_rest(eps):
    fig = plots_defenses.privacy_utility(_rows(eps))
    fig.canvas.draw()  # a log axis with no finite point raised here
    (ax,) = fig.axes
    finite = [e for e in eps if math.isfinite(e)]
    assert len(ax.lines[0].get_xdata()) == len(finite)
    assert ax.get_xscale() == ("log" if finite else "linear")
    assert ("not shown" in ax.get_title()) == (len(finite) < len(eps))
