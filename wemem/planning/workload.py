"""What one run trains, counted before it runs: the plans behind ``wemem reproduce --dry-run``.

:func:`plan_run` reads a notebook's ``parameters`` cell, merges a run's params over it and lists the
model trainings the notebook's code path makes, as :class:`Job` rows (how many models, on how many
samples, for how many epochs). Counts follow the code, not the paper:

* victim and shadows (:mod:`wemem.experiment.replicate`): dense up to ``max_epochs``; pruning
  ``pruning_rounds`` × up to ``finetune_epochs`` (one round for one-shot). Early stopping cuts both,
  so every epoch count is an **upper bound**; ``Job.early_stopping`` says which kind applies.
* mem-scores (:mod:`wemem.memorization.memscores`): K models for exactly ``memscore_epochs`` on round(r·|P|)
  rows (k-fold: |P|/K rows each); no early stopping.
* windows (RSW, SWMR, random order): epoch e of a round trains ranks [e·s, e·s + w) of each class
  until the window leaves the class. Approximation: every class has the victim's mean size n_c.
* ADV adds ``k_attack`` inference-model steps per classifier step (2 forward passes of the classifier
  and one step of a 2C-input attack MLP on 2B rows each); DP-SGD's ghost clipping costs ≈2× (fc) and
  ≈2.6× (CNN) a Base step (``benchmarks/dp_overhead.py``).
* attacks (:mod:`wemem.experiment.adaptive`): one attack model per classifier attack and evaluated setting
  (never cached); metric attacks are negligible; SAMIA/NN-Sens add 11 forward passes per sample of
  every model (sensitivity, cached per model); LiRA one forward pass per shadow and victim sample.
* autotune (notebook 11): the survivors of each rung are counted as the first candidates, and the
  chosen setting as a victim configuration of its own, never one of the three hand-picked ones
  (conservative: when it is one, the real run trains one configuration fewer).

Cache sharing: every cached model carries a key built from exactly the settings its cache entry
depends on (symbolic, e.g. τ as "quantile 0.1 of these mem-scores"), so a batch estimate can count
each model once (:func:`wemem.planning.costing.estimate_runs`).
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from wemem.defenses.baseline_catalog import PAPER_SETTINGS
from wemem.errors import ParamsError
from wemem.names import label
from wemem.planning.jobs import (
    Ctx,
    Job,
    attack_jobs,
    dense_jobs,
    fmt_settings,
    make_ctx,
    memscore_jobs,
    pruned_jobs,
    role_names,
    stage_jobs,
    sweep_jobs,
    tau_key,
    window_grid,
)

__all__ = ["PLANNERS", "Job", "notebook_defaults", "plan_run"]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


# ----------------------------------------------------------------------------- notebook params


@functools.lru_cache(maxsize=64)
def _cell_defaults(path: str) -> dict[str, Any]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParamsError(f"{path}: no cell tagged 'parameters'")
    out = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0], ast.Name):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def notebook_defaults(stem: str, *, notebooks_dir: Path | None = None) -> dict[str, Any]:
    """The literal defaults of ``notebooks/<stem>.ipynb``'s ``parameters`` cell."""
    path = Path(notebooks_dir or NOTEBOOKS_DIR) / f"{stem}.ipynb"
    if not path.exists():
        raise ParamsError(f"notebook {stem!r}: no file {path}")
    return dict(_cell_defaults(str(path)))


# ----------------------------------------------------------------------------- configs


def comparison(c: Ctx, adv: dict | None = None) -> list[tuple[str, dict, str]]:
    """``defense_grids.comparison_configs``: Fig. 7's eight defenses at their chosen settings."""
    g, tau = window_grid(c)[-2], tau_key(c, fraction=0.1)
    ws = {"width": g["width"], "step": g["step"]}
    out = [("base", {}, "Base")]
    out += [
        (n, {**PAPER_SETTINGS[n], **((adv or {}) if n == "adv" else {})}, label(n))
        for n in ("ppb", "adv", "dp", "relaxloss")
    ]
    return out + [
        ("rsw_l2h", ws, "RSW"),
        ("rmr", {"tau": tau, "lambda_r": 0.1}, "RMR"),
        ("swmr_h2l", {**ws, "tau": tau, "lambda_r": 0.1}, "SWMR"),
    ]


def _windows(c: Ctx, method: str, **extra) -> list[tuple[str, dict, str]]:
    p = c.p
    return [
        (
            f"{method}_{o.lower()}",
            {"width": g["width"], "step": g["step"], **extra},
            f"{label(f'{method}_{o.lower()}')} w={g['width']} s={g['step']}",
        )
        for o in p.get("orders", ("H2L", "L2H"))
        for g in window_grid(c, p.get("widths", ()), p.get("steps", ()))
    ]


def _baselines(name: str, key: str, values, **fixed) -> list[tuple[str, dict, str]]:
    return [(name, {key: float(v), **fixed}, f"{label(name)} {key}={v:g}") for v in values]


def _common(c: Ctx) -> list[Job]:
    return dense_jobs(c, role_names(c.s.n_shadows)) + memscore_jobs(c)


def _plan_01(c: Ctx) -> list[Job]:
    return memscore_jobs(c, method="fz") + memscore_jobs(
        c, method="kfold", models=c.p["kfold_models"]
    )


def _plan_02(c: Ctx) -> list[Job]:
    roles, jobs = role_names(c.s.n_shadows), memscore_jobs(c)
    for seed in c.s.seeds:
        jobs += stage_jobs(c, roles, seed=seed) + pruned_jobs(c, roles, one_shot=True, seed=seed)
    for e in c.p.get("reuse_epochs", ()):  # data-reuse sweep: other finetune_epochs, seed 0
        ce = replace(c, s=replace(c.s, finetune_epochs=int(e)))
        jobs += pruned_jobs(ce, roles, seed=c.s.seeds[0], what=f"Base (≤{e} epochs/round)")
    return jobs


def _plan_03(c: Ctx) -> list[Job]:
    return _common(c) + sweep_jobs(c, [("base", {}, "Base"), *_windows(c, "rsw")])


def _plan_04(c: Ctx) -> list[Job]:
    p = c.p
    tau = tau_key(c, tau=p.get("tau"), fraction=p.get("tau_fraction", 0.1))
    rmr = [("rmr", {"tau": tau, "lambda_r": lr}, f"RMR λr={lr:g}") for lr in p.get("lambdas", ())]
    return _common(c) + sweep_jobs(c, [("base", {}, "Base"), *rmr])


def _plan_05(c: Ctx) -> list[Job]:
    tau = tau_key(c, fraction=c.p.get("tau_fraction", 0.1))
    g = window_grid(c, c.p.get("widths", ()), c.p.get("steps", ()))[-2]
    configs = [("base", {}, "Base"), *_windows(c, "swmr", tau=tau, lambda_r=c.p["lambda_r"])]
    configs += _windows(c, "rsw") + [
        ("random_window", {"width": g["width"], "step": g["step"]}, "RSW(random)")
    ]
    return _common(c) + sweep_jobs(c, configs)


def _plan_06(c: Ctx) -> list[Job]:
    p, every = c.p, {"attack_every": c.p["adv_attack_every"]}
    configs = [
        ("base", {}, "Base"),
        *_baselines("ppb", "beta", p["betas"]),
        *_baselines("relaxloss", "alpha", p["alphas"]),
        *_baselines("adv", "theta", p["thetas"], **every),
    ]
    return _common(c) + sweep_jobs(c, configs) + sweep_jobs(c, comparison(c, adv=every))


def _plan_07(c: Ctx) -> list[Job]:
    p = c.p
    configs = [
        ("base", {}, "Base"),
        *_baselines("dp", "noise_multiplier", p["sigmas"]),
        *_baselines("dp", "target_epsilon", p["target_epsilons"]),
    ]
    configs += [x for x in comparison(c) if x[2] in ("RSW", "SWMR")]
    return _common(c) + sweep_jobs(c, configs)


def _plan_08(c: Ctx) -> list[Job]:
    p, roles, jobs = c.p, role_names(c.s.n_shadows), _common(c)
    for stage in p.get("stages", ("dense", "iterative")):
        models = (
            dense_jobs(c, roles)
            if stage == "dense"
            else pruned_jobs(c, roles, one_shot=stage == "one-shot")
        )
        jobs += models + attack_jobs(
            c,
            p["attacks"],
            roles,
            models[0].cache_keys,
            epochs=p["attack_epochs"],
            train_max=p.get("attack_train_max"),
            epochs_by={"samia": p.get("samia_epochs", p["attack_epochs"])},
            what=stage,
        )
    return jobs


def _plan_09(c: Ctx) -> list[Job]:
    sections = c.p.get("sections", ("one_shot", "rates", "structured"))
    jobs = _common(c)
    if "one_shot" in sections:
        chosen = [x for x in comparison(c) if x[2] in ("Base", "RSW", "RMR", "SWMR")]
        configs = [
            (d, st, f"{tag} ({pr})") for pr in ("iterative", "one-shot") for d, st, tag in chosen
        ]
        jobs += sweep_jobs(c, configs, one_shot_of=lambda tag: tag.endswith("(one-shot)"))
    fields = []
    if "rates" in sections:
        fields += [("pruning_rate", v, ("Base", "SWMR")) for v in c.p.get("rates", ())]
    if "structured" in sections and c.s.arch != "fc":
        chosen = tuple(c.p.get("approach_defenses", ("Base", "RSW", "RMR", "SWMR")))
        fields += [("pruning_approach", v, chosen) for v in c.p.get("approaches", ())]
    for field, v, tags in fields:
        cv = replace(c, s=replace(c.s, **{field: v}))
        jobs += sweep_jobs(cv, [x for x in comparison(cv) if x[2] in tags])
    return jobs


def _plan_10(c: Ctx) -> list[Job]:
    jobs = dense_jobs(c, ["victim"]) + memscore_jobs(c)
    for defense, st, tag in comparison(c):
        jobs += pruned_jobs(c, ["victim"], defense, st, fresh=True, what=f"{tag} (timed, uncached)")
    return jobs


def _plan_11(c: Ctx) -> list[Job]:
    p, grid, tau = c.p, window_grid(c), tau_key(c, fraction=0.1)
    cands = []
    for order in p.get("orders", ("H2L", "L2H")):
        for g in grid:
            ws = {"width": g["width"], "step": g["step"]}
            cands.append((f"rsw_{order.lower()}", ws))
            cands += [
                (f"swmr_{order.lower()}", {**ws, "tau": tau_key(c, fraction=tf), "lambda_r": lr})
                for lr in p["lambdas"]
                for tf in p["tau_fractions"]
            ]
    cands += [
        ("rmr", {"tau": tau_key(c, fraction=tf), "lambda_r": lr})
        for lr in p["rmr_lambdas"]
        for tf in p["tau_fractions"]
    ]
    jobs, alive = _common(c), len(cands)
    for i, n in enumerate(p["rungs"]):
        for d, st in cands[:alive]:
            jobs += pruned_jobs(
                c,
                role_names(n, victim=False),
                d,
                st,
                what=f"rung {i}: {label(d)} {fmt_settings(st)}",
            )
        alive = max(1, math.ceil(alive / p["eta"]))
    g = grid[-2]
    ws = {"width": g["width"], "step": g["step"]}
    picks = [
        ("rsw_l2h", ws, "RSW(L→H)"),
        ("swmr_h2l", {**ws, "tau": tau, "lambda_r": 0.1}, "SWMR(H→L)"),
        ("rmr", {"tau": tau, "lambda_r": 0.1}, "RMR"),
    ]
    return jobs + sweep_jobs(c, [("base", {}, "Base"), (*cands[0], "chosen"), *picks])


PLANNERS: dict[str, Callable[[Ctx], list[Job]] | None] = {
    "00_overview": None,  # split sizes and names only: trains nothing
    "01_memorization_scores": _plan_01,
    "02_motivation": _plan_02,
    "03_defense_rsw": _plan_03,
    "04_defense_rmr": _plan_04,
    "05_defense_swmr": _plan_05,
    "06_baselines": _plan_06,
    "07_dpsgd_opacus": _plan_07,
    "08_attacks": _plan_08,
    "09_pruning_approaches": _plan_09,
    "10_time_cost": _plan_10,
    "11_autotune": _plan_11,
    "12_paper_tables": None,  # reads the other runs' outputs: trains nothing
}


def plan_run(stem: str, params: dict[str, Any], *, notebooks_dir: Path | None = None) -> list[Job]:
    """The trainings of one run: ``params`` (a params file's mapping, ``{}`` for the defaults)
    merged over the notebook's ``parameters`` cell. ``[]`` for a notebook that trains nothing.

    Raises:
        ParamsError: a notebook without a plan, or parameters that do not validate.
    """
    if stem not in PLANNERS:
        raise ParamsError(f"notebook {stem!r} has no cost plan; planned: {', '.join(PLANNERS)}")
    planner = PLANNERS[stem]
    if planner is None:
        return []
    merged = {**notebook_defaults(stem, notebooks_dir=notebooks_dir), **params}
    return planner(make_ctx(merged))
