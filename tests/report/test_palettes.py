"""The palettes drawn without seaborn are seaborn's, and notebook kernels import neither seaborn
nor scikit-learn (nor scipy.stats) until a figure or dataset needs them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wemem.report.palettes import palette


@pytest.mark.parametrize("name", ["tab10", "tab20", "viridis", "Set2"])
@pytest.mark.parametrize("n", [1, 3, 10, 11, 25])
def test_palette_equals_seaborns_color_palette(name: str, n: int) -> None:
    import seaborn as sns

    assert palette(name, n) == [tuple(c) for c in sns.color_palette(name, n_colors=n)]


def test_the_notebooks_imports_leave_heavy_libraries_unloaded() -> None:
    code = (
        "import sys, wemem\n"
        "from wemem.report import plots, plots_defenses, plots_strongest, run_folder\n"
        "from wemem.studies import comparison, strongest, sweeps, verdicts, pruning_choices\n"
        "from wemem.experiment import adaptive\n"
        "from wemem.memorization import memscores\n"
        "print(sorted(m for m in ('seaborn', 'sklearn', 'scipy.stats') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
