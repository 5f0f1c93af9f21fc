"""Every legal parameter value of notebooks 03 (RSW), 04 (RMR), 05 (SWMR) and 07 (DP-SGD) gets
through the checks and summaries that run after training, and an illegal one is refused while the
configs are built, before anything trains (issue 14, item 4). Hand-made tables, no training."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from wemem.defenses.config import DefenseConfig, Window, headline_window, window_grid
from wemem.errors import ParamsError
from wemem.io import to_jsonable
from wemem.studies import comparison, rmr, sweeps, windows

N_C = 200.0
#: (widths, steps) of the explicit grids: 1×1, 2×1, 4×3.
GRIDS = {"1x1": ([50], [5]), "2x1": ([80, 50], [5]), "4x3": ([120, 100, 80, 50], [9, 3, 5])}
ORDERS = (["L2H"], ["H2L"], ["H2L", "L2H"])


def _table(configs: list[DefenseConfig], *, attacks=("conf", "nn", "hconf"), n=500, seed=0):
    """One row per (config, attack) as :func:`wemem.studies.sweeps.sweep` writes it: a different
    test accuracy and attack accuracy per setting."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in configs:
        acc = 0.8 - 0.05 * rng.random()
        for a in attacks:
            v = 0.55 + 0.1 * rng.random()
            rows.append(
                {"attack": a, "paper_metric": v, "auc": v, "n_in": n, "n_out": n}
                | {"defense": c.name, "test_acc": acc, "finetune_seconds": 1.0}
                | {k: val for k, val in c.settings.items() if np.isscalar(val)}
                | c.labels
            )
    return pd.DataFrame(rows)


def _metrics(obj) -> dict:
    """``obj`` as metrics.json holds it (strict JSON: NaN and ∞ become null)."""
    return json.loads(json.dumps(to_jsonable(obj), allow_nan=False))


@pytest.mark.parametrize("shape", GRIDS)
def test_explicit_grid_has_widths_times_steps_windows_and_a_headline(shape):
    widths, steps = GRIDS[shape]
    grid = window_grid(N_C, widths=widths, steps=steps)
    assert len(grid) == len(widths) * len(steps)
    assert [w.width for w in grid] == sorted((w for w in widths for _ in steps), reverse=True)
    head = headline_window(grid)
    assert (head.width, head.step, head.step_size) == (min(widths), min(steps), "small")


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("shape", GRIDS)
@pytest.mark.parametrize("mode", ["per_class", "faithful"])
def test_rsw_checks_and_summary_on_any_grid(shape, orders, mode):
    widths, steps = GRIDS[shape]
    grid = window_grid(N_C, widths=widths, steps=steps)
    configs = windows.rsw_configs(grid, orders=orders, mode=mode)
    # Base + widths × steps × orders (+ the per-class row beside a faithful grid)
    assert len(configs) == 1 + len(widths) * len(steps) * len(orders) + (mode == "faithful")
    table = _table(configs)
    means = sweeps.mean_attack(table)
    assert sweeps.every_setting_ran(means, configs)
    assert not sweeps.every_setting_ran(means.iloc[:-1], configs)  # a lost setting is caught
    assert sweeps.defended_rows_differ(means)
    claims = windows.window_claims(table)
    assert claims["windows_total"] == len(widths) * len(steps) * len(orders)
    assert len(claims["test_acc_by_width_fraction"]) == len(widths)
    if len(widths) * len(steps) * len(orders) == 1:  # nothing to compare the headline with
        assert claims["lowest_attack_is_small_width_small_step"]["status"] == "unresolved"
    text = windows.window_text(_metrics(claims), "RSW")
    assert f"of {claims['windows_total']} window settings" in text


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("shape", GRIDS)
def test_swmr_checks_ablation_and_summary_on_any_grid(shape, orders):
    widths, steps = GRIDS[shape]
    grid = window_grid(N_C, widths=widths, steps=steps)
    configs = windows.swmr_configs(grid, orders=orders, tau=0.5, lambda_r=0.1)
    cells = len(widths) * len(steps) * len(orders)
    assert len(configs) == 1 + 2 * cells + 1  # Base, SWMR and RSW per cell, the random order
    table = _table(configs)
    means = sweeps.mean_attack(table)
    assert sweeps.every_setting_ran(means, configs)
    assert windows.swmr_differs_from_rsw(means) is True
    sel = windows.order_rows(means, headline_window(grid))
    assert sorted(sel.order) == sorted([*orders, "random"])
    vs = windows.swmr_vs_rsw(table)
    assert vs["pairs"] == cells
    swmr = table[table.method.isin(["Base", "SWMR"])]
    summary = windows.swmr_summary(
        _metrics({"claims": windows.window_claims(swmr), "swmr_vs_rsw": vs})
    )
    assert f"of {cells} settings" in summary


def _same_as_rsw(orders):
    """An SWMR sweep on the 1×1 grid whose SWMR rows trained exactly as RSW."""
    grid = window_grid(N_C, widths=[50], steps=[5])
    configs = windows.swmr_configs(grid, orders=orders, tau=0.5, lambda_r=0.1)
    table = _table(configs)
    rsw = table[table.method == "RSW"].set_index(["order", "attack"])
    for col in ("test_acc", "paper_metric"):
        swmr = table.method == "SWMR"
        keys = pd.MultiIndex.from_frame(table.loc[swmr, ["order", "attack"]])
        table.loc[swmr, col] = rsw.loc[keys, col].to_numpy()
    return sweeps.mean_attack(table)


def test_swmr_equal_to_rsw_fails_unless_only_l2h_windows_ran():
    # an H→L window starts at the highest mem-scores: SWMR equal to RSW there is a no-op split
    assert windows.swmr_differs_from_rsw(_same_as_rsw(["H2L", "L2H"])) is False
    assert windows.swmr_differs_from_rsw(_same_as_rsw(["H2L"])) is False
    # a narrow L→H window may never reach the high-risk samples: legitimately the same
    only_l2h = windows.swmr_differs_from_rsw(_same_as_rsw(["L2H"]))
    assert isinstance(only_l2h, str) and only_l2h.startswith("not applicable")


def test_headline_window_of_a_one_window_grid_and_an_impossible_one():
    (only,) = window_grid(N_C, widths=[50], steps=[5])
    assert headline_window([only]) == only
    with pytest.raises(ParamsError, match="no window of the smallest width with the small step"):
        headline_window([Window(50, 10, 0.25, "large"), Window(80, 5, 0.4, "small")])
    with pytest.raises(ParamsError, match="windows: none"):
        windows.random_configs(headline_window([]))


def test_rule_grid_keeps_a_rounded_repeat_once():
    # n_c = 10: widths 7, 4, 2; both steps round to 1, so each width has one window (small)
    grid = window_grid(10.0)
    assert [(w.width, w.step, w.step_size) for w in grid] == [
        (7, 1, "small"),
        (4, 1, "small"),
        (2, 1, "small"),
    ]
    assert headline_window(grid).width == 2
    configs = windows.swmr_configs(grid, orders=["H2L"], tau=0.5, lambda_r=0.1)
    assert len({c.setting for c in configs}) == len(configs)  # no two rows share a label


@pytest.mark.parametrize(
    ("widths", "steps", "match"),
    [
        ([50, 80], [], "steps = \\[\\] but widths"),
        ([], [5], "widths = \\[\\] but steps"),
        ([50, 50], [5], "repeats a value"),
        ([50], [0], "integers >= 1"),
        ([50.5], [5], "integers >= 1"),
    ],
)
def test_explicit_grid_refuses_what_would_crash_after_training(widths, steps, match):
    with pytest.raises(ParamsError, match=match):
        window_grid(N_C, widths=widths, steps=steps)


@pytest.mark.parametrize("orders", [[], ["L2H", "L2H"], ["up"]])
def test_orders_are_refused_before_training(orders):
    grid = window_grid(N_C, widths=[50], steps=[5])
    with pytest.raises(ParamsError, match="orders"):
        windows.rsw_configs(grid, orders=orders)
    with pytest.raises(ParamsError, match="orders"):
        windows.swmr_configs(grid, orders=orders, tau=0.5, lambda_r=0.1)


def test_sweep_refuses_attacks_without_a_paper_attack():
    sweeps.check_attacks(["hconf", "conf"])
    with pytest.raises(ParamsError, match="at least one of the paper's attacks"):
        sweeps.check_attacks(["hconf", "lira"])


@pytest.mark.parametrize("lambdas", [[0.1], [1.0, 0.01]])
def test_rmr_claims_and_text_with_one_or_two_lambdas(lambdas):
    configs = rmr.table_configs(tau=0.5, lambdas=lambdas)
    claims = rmr.rmr_claims(_table(configs))
    assert list(claims["attack_by_lambda"]) == sorted(f"{v:g}" for v in lambdas)
    assert claims["best_tradeoff_lambda"] in lambdas
    text = rmr.rmr_text(_metrics(claims))
    assert all(f"λr={v:g}" in text for v in lambdas)


@pytest.mark.parametrize("lambdas", [[], [0.1, 0.1]])
def test_rmr_refuses_no_or_repeated_lambdas(lambdas):
    with pytest.raises(ParamsError, match="lambdas"):
        rmr.table_configs(tau=0.5, lambdas=lambdas)


def _dp_table(eps_by_sigma: dict, eps_by_target: dict | None = None) -> pd.DataFrame:
    configs = comparison.dp_configs(
        [], sigmas=list(eps_by_sigma), target_epsilons=list(eps_by_target or {})
    )
    table = _table(configs)
    eps = {**{f"DP noise_multiplier={k:g}": v for k, v in eps_by_sigma.items()}}
    eps |= {f"DP target_epsilon={k:g}": v for k, v in (eps_by_target or {}).items()}
    dp = table.defense == "dp"
    table.loc[dp, "dp_epsilon"] = table.loc[dp, "setting"].map(eps)
    table.loc[dp, "dp_delta"] = 1e-5
    return table


@pytest.mark.parametrize(
    "eps_by_sigma", [{0.0: math.inf}, {0.0: math.inf, 1.0: 2.5}, {0.0: math.inf, 0.1: 40.0}]
)
def test_dp_sigma_zero_runs_its_checks_and_reads_infinity(eps_by_sigma):
    table = _dp_table(eps_by_sigma, {8.0: 7.9})
    means = sweeps.mean_attack(table)
    assert means.loc[means.setting == "DP noise_multiplier=0", "dp_epsilon"].item() == math.inf
    checks = comparison.dp_checks(table, means)
    assert all(checks.values()), checks
    if len(eps_by_sigma) == 1:
        assert checks["more_noise_no_higher_attack"] == "not applicable (one σ)"
    rows = _metrics(means.to_dict("records"))  # metrics.json: ε = ∞ is null
    assert next(r for r in rows if r["setting"] == "DP noise_multiplier=0")["dp_epsilon"] is None
    text = comparison.dp_text(rows)
    assert "DP noise_multiplier=0: ε = ∞ at δ = 1.0e-05" in text
    assert "DP target_epsilon=8: ε = 7.9 at" in text and "guarantees no privacy" in text


def test_dp_checks_can_fail():
    table = _dp_table({0.0: math.inf, 1.0: 2.5}, {8.0: 9.0})  # the target ε is missed
    checks = comparison.dp_checks(table, sweeps.mean_attack(table))
    assert checks["each_target_met"] is False and checks["more_noise_less_epsilon"] is True
    table = _dp_table({0.5: 3.0, 1.0: 4.0})  # more noise, more ε: wrong
    assert (
        comparison.dp_checks(table, sweeps.mean_attack(table))["more_noise_less_epsilon"] is False
    )


def test_epsilon_text():
    assert comparison.epsilon_text(None) == "∞"
    assert comparison.epsilon_text(math.inf) == "∞"
    assert comparison.epsilon_text(2.345678) == "2.35"


@pytest.mark.parametrize(
    ("sigmas", "targets", "match"),
    [
        ([], [], "no DP-SGD row"),
        ([-0.1], [], "sigmas"),
        ([0.1, 0.1], [], "sigmas"),
        ([], [0.0], "target_epsilons"),
        ([], [math.inf], "target_epsilons"),
    ],
)
def test_dp_configs_refuse_before_training(sigmas, targets, match):
    with pytest.raises(ParamsError, match=match):
        comparison.dp_configs([], sigmas=sigmas, target_epsilons=targets)
