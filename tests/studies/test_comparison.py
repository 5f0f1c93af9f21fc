"""The comparison's chosen settings, the paper's attack mean and the three-valued claims of the
defense notebooks (03–06, 10), on hand-made tables (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wemem.defenses.config import PAPER_WINDOW_GRID, paper_windows
from wemem.errors import ParamsError
from wemem.memorization.tau import PAPER_TAU, TauRule, paper_share, tau_rule
from wemem.names import PAPER_ATTACKS
from wemem.studies import comparison, rmr, sweeps, time_cost, windows

PARAMS = Path(__file__).resolve().parents[2] / "params" / "paper"


def _rows(setting, accs, *, test_acc=0.8, n=2000, method=None, **labels):
    return [
        {
            "setting": setting,
            "attack": a,
            "paper_metric": v,
            "auc": v,
            "n_in": n,
            "n_out": n,
            "test_acc": test_acc,
            "finetune_seconds": 1.0,
            "method": method or setting,
            **labels,
        }
        for a, v in accs.items()
    ]


def test_mean_attack_averages_the_paper_attacks_only():
    t = pd.DataFrame(_rows("Base", {"conf": 0.6, "hconf_official": 0.7, "lira": 0.99}))
    m = sweeps.mean_attack(t).iloc[0]
    assert m.attack == pytest.approx(0.65)
    assert m.attack_all == pytest.approx((0.6 + 0.7 + 0.99) / 3)
    assert m.paper_attacks == 2
    # binomial SE of a balanced accuracy on 2000 + 2000 rows, averaged over the two attacks
    se = [0.5 * np.sqrt(a * (1 - a) * (2 / 2000)) for a in (0.6, 0.7)]
    assert m.attack_se == pytest.approx(np.mean(se))
    assert "hconf" not in PAPER_ATTACKS and "hconf_official" in PAPER_ATTACKS


def _comparison_table(wemem_attack, other_attack, *, n=2000):
    rows = []
    for s, a in {
        "Base": 0.7,
        "PPB": other_attack,
        "ADV": 0.69,
        "DP": 0.69,
        "RelaxLoss": 0.69,
    }.items():
        rows += _rows(s, {"conf": a, "nn": a}, n=n)
    for s in ("RSW", "RMR", "SWMR"):
        rows += _rows(s, {"conf": wemem_attack, "nn": wemem_attack}, n=n)
    rows += _rows("ADV (Nasr)", {"conf": 0.1, "nn": 0.1}, n=n, method="ADV")  # beside: ignored
    return pd.DataFrame(rows)


def test_comparison_claim_is_three_valued_and_ignores_rows_beside_the_bars():
    holds = comparison.comparison_claims(_comparison_table(0.55, 0.65))
    assert holds["wemem_lowest_attack"]["status"] == "holds"
    assert holds["best_other"] == "PPB"  # the Nasr row (0.1) is beside the bars, not a bar
    fails = comparison.comparison_claims(_comparison_table(0.65, 0.55))
    assert fails["wemem_lowest_attack"]["status"] == "does not hold"
    within = comparison.comparison_claims(_comparison_table(0.600, 0.605))
    assert within["wemem_lowest_attack"]["status"] == "unresolved"
    assert within["wemem_lowest_attack"]["resolution"] > 0.005


def test_choice_builds_the_paper_bars_and_labels_the_modes_beside():
    c = comparison.Choice(
        rsw_window=(500, 50),
        swmr_window=(500, 100),
        window_mode="faithful",
        adv_modes=("official", "nasr"),
        dp_passes_per_epoch=(100.0, 1.0),
    )
    rsw, swmr = comparison.chosen_windows(2250.0, c)
    configs = comparison.comparison_configs(rsw, swmr, tau=0.7, choice=c)
    by = {x.setting: x for x in configs}
    assert [x.setting for x in configs[:8]] == list(comparison.PAPER_BARS)
    assert by["ADV"].settings["mode"] == "official" and by["ADV (Nasr)"].settings["mode"] == "nasr"
    assert by["DP"].settings["passes_per_epoch"] == 100.0
    assert "passes_per_epoch" not in by["DP (1 pass/epoch)"].settings
    assert by["RSW"].settings == {"width": 500, "step": 50, "mode": "faithful"}
    assert by["SWMR"].settings["step"] == 100 and by["SWMR"].settings["tau"] == 0.7
    assert by["RMR"].settings == {"tau": 0.7, "lambda_r": 0.1}


@pytest.mark.parametrize(
    "kw",
    [
        {"rsw_window": (500,)},
        {"window_mode": "clipped"},
        {"adv_modes": ("fast",)},
        {"dp_passes_per_epoch": (0.0,)},
    ],
)
def test_choice_rejects_bad_values(kw):
    with pytest.raises(ParamsError):
        comparison.Choice(**kw)


def test_tau_rule_is_quantile_on_computed_and_raw_on_released_scores():
    r = tau_rule(share=0.176, memscore_method="fz", dataset="cifar10", arch="resnet18")
    assert r.to_json() == {"kind": "quantile", "share": 0.176}
    scores = np.linspace(0, 1, 1001)
    assert np.mean(scores >= r.tau(scores)) == pytest.approx(0.176, abs=1e-3)
    raw = tau_rule(share=0.176, memscore_method="released", dataset="cifar10", arch="resnet18")
    assert raw.to_json() == {"kind": "raw", "value": 0.5}
    assert raw.tau(scores) == 0.5
    with pytest.raises(ParamsError):
        TauRule("quantile", share=1.5)


def _load(name):
    return yaml.safe_load((PARAMS / name).read_text())


@pytest.mark.parametrize(
    "path",
    sorted(PARAMS.glob("0[4-6]_*.yaml"))
    + sorted(PARAMS.glob("09_*.yaml"))
    + sorted(PARAMS.glob("1[01]_*.yaml")),
)
def test_paper_params_use_the_spec_share_and_windows(path):
    p = yaml.safe_load(path.read_text())
    if path.name.startswith("11_"):
        assert p["tau_shares"] == [paper_share(p["dataset"], p["arch"])]
        assert [p["widths"], p["steps"]] == list(map(list, PAPER_WINDOW_GRID[p["dataset"]]))
    else:
        assert p["tau_share"] == paper_share(p["dataset"], p["arch"]), path.name
    if path.name.startswith(("06_", "09_", "10_", "11_")):
        best = paper_windows(p["dataset"], p["arch"])
        assert tuple(p["rsw_window"]) == best["rsw"] and tuple(p["swmr_window"]) == best["swmr"]
        widths, steps = PAPER_WINDOW_GRID[p["dataset"]]
        assert p["rsw_window"][0] in widths and p["rsw_window"][1] in steps
    if not path.name.startswith("04_"):
        assert p["window_mode"] == "faithful", path.name


def test_paper_shares_are_the_spec_table():
    assert paper_share("cifar10", "resnet18") == 0.176
    assert paper_share("cinic10", "densenet121") == PAPER_TAU[("cinic10", "densenet121")][1]
    assert paper_windows("cifar10", "resnet18") == {"rsw": (500, 50), "swmr": (500, 100)}
    assert paper_windows("location30", "fc") == {"rsw": (15, 1), "swmr": (15, 1)}


def _window_table(swmr_better: bool, *, n=5000):
    rows = _rows("Base", {"conf": 0.70}, n=n, test_acc=0.80)
    for order in ("H2L", "L2H"):
        for w, frac, acc in ((30, 0.6, 0.79), (10, 0.2, 0.70)):
            for step, size in ((1, "small"), (2, "large")):
                a = 0.60 if (frac == 0.2 and size == "small") else 0.66
                lab = {"order": order, "width": w, "step": step, "width_fraction": frac}
                lab |= {"step_size": size}
                rows += _rows(
                    f"RSW {order} {w} {step}", {"conf": a}, n=n, test_acc=acc, method="RSW", **lab
                )
                sa = a - 0.05 if swmr_better else a + 0.05
                rows += _rows(
                    f"SWMR {order} {w} {step}",
                    {"conf": sa},
                    n=n,
                    test_acc=acc - 0.01,
                    method="SWMR",
                    **lab,
                )
    return pd.DataFrame(rows)


def test_window_claims_and_swmr_share_test():
    t = _window_table(True)
    rsw = t[t.method.isin(["Base", "RSW"])]
    c = windows.window_claims(rsw)
    assert c["smaller_width_lowers_test_acc"]["status"] == "holds"
    assert c["lowest_attack_is_small_width_small_step"]["status"] == "holds"
    assert c["windows_attack_below_base"]["status"] == "holds"
    better = windows.swmr_vs_rsw(t)
    assert better["pairs"] == 8 and better["swmr_below_rsw_attack"]["status"] == "holds"
    assert better["swmr_test_acc_below_rsw"]["share"] == 1.0
    worse = windows.swmr_vs_rsw(_window_table(False))
    assert worse["swmr_below_rsw_attack"]["status"] == "does not hold"
    assert windows.swmr_differs_from_rsw(sweeps.mean_attack(t))


def test_rmr_claims_verdicts():
    rows = _rows("Base", {"conf": 0.70}, test_acc=0.80, n=5000)
    for lr, a, acc in ((0.01, 0.69, 0.80), (0.1, 0.60, 0.79), (1.0, 0.59, 0.70)):
        rows += _rows(f"RMR {lr}", {"conf": a}, test_acc=acc, n=5000, method="RMR", lambda_r=lr)
    c = rmr.rmr_claims(pd.DataFrame(rows))
    assert c["larger_lambda_lowers_attack"]["status"] == "holds"
    assert c["best_tradeoff_is_0_1"]["status"] == "holds"
    assert c["best_tradeoff_lambda"] == 0.1


def test_window_time_claim_uses_paired_repeats():
    costs = pd.DataFrame(
        [
            {"setting": "Base", "round_seconds": [10.0, 10.2, 9.9]},
            {"setting": "RSW", "round_seconds": [5.0, 5.1, 4.9]},
            {"setting": "SWMR", "round_seconds": [10.1, 9.9, 10.0]},
        ]
    )
    c = time_cost.window_time_claims(costs)
    assert c["rsw_faster_than_base"]["status"] == "holds"
    assert c["swmr_faster_than_base"]["status"] == "unresolved"


def test_defended_rows_differ_catches_a_no_op_defense():
    rows = _rows("Base", {"conf": 0.7}) + _rows("RSW", {"conf": 0.6}, test_acc=0.7)
    assert sweeps.defended_rows_differ(sweeps.mean_attack(pd.DataFrame(rows)))
    rows += _rows("RMR", {"conf": 0.7})  # identical to Base: trained as Base
    assert not sweeps.defended_rows_differ(sweeps.mean_attack(pd.DataFrame(rows)))
