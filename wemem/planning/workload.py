"""What one run trains, counted before it runs: the plans behind ``wemem reproduce --dry-run``.

:func:`plan_run` reads a notebook's ``parameters`` cell, merges a run's params over it and lists the
model trainings the notebook's code path makes, as :class:`Job` rows (how many models, on how many
samples, for how many epochs). Each plan builds its defense settings with the notebook's own config
builders (:mod:`wemem.studies`, :mod:`wemem.defenses.config`), called on a
:class:`~wemem.planning.replicate.PlanReplicate` (the run's geometry, no data) where the notebook
passes its experiment. Counts follow the code, not the paper:

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
  chosen setting as the first candidate (:func:`wemem.studies.autotune.victim_configs` drops a
  hand-picked setting of the same name; conservative: the real choice is often a hand-picked one,
  and then the real run trains one configuration fewer).

Cache sharing: every cached model is an :class:`~wemem.planning.entries.Entry` keyed by its real
cache-key spec with placeholders for the data (e.g. τ as "quantile 0.1"), so a batch estimate can
count each model once (:func:`wemem.planning.costing.estimate_runs`); :func:`planned_entries` lists
them for a comparison with the entries a real run logged (:mod:`wemem.planning.verify`).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from wemem.batch.parameters_cell import read_parameters_cell
from wemem.defenses.config import BASE, DefenseConfig
from wemem.errors import ParamsError
from wemem.planning import jobs as _jobs
from wemem.planning.entries import Entry
from wemem.planning.geometry import Ctx, make_ctx, role_names
from wemem.planning.jobs import Job, attack_jobs, dense_jobs, memscore_jobs
from wemem.planning.replicate import PlanReplicate
from wemem.studies import autotune, comparison, pruning_choices, rmr, sweeps, windows

__all__ = [
    "PLANNERS",
    "Job",
    "notebook_defaults",
    "plan_run",
    "planned_configs",
    "planned_entries",
]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"

#: The defenses of :func:`wemem.studies.pruning_choices.setting_sweep` when not given (rates).
_SETTING_SWEEP_DEFENSES = (
    inspect.signature(pruning_choices.setting_sweep).parameters["defenses"].default
)


# ----------------------------------------------------------------------------- notebook params


@functools.lru_cache(maxsize=64)
def _cell_defaults(path: str) -> dict[str, Any]:
    cell = read_parameters_cell(Path(path))
    if cell is None:
        raise ParamsError(f"{path}: no cell tagged 'parameters'")
    return dict(cell.defaults)


def notebook_defaults(stem: str, *, notebooks_dir: Path | None = None) -> dict[str, Any]:
    """The literal defaults of ``notebooks/<stem>.ipynb``'s ``parameters`` cell."""
    path = Path(notebooks_dir or NOTEBOOKS_DIR) / f"{stem}.ipynb"
    if not path.exists():
        raise ParamsError(f"notebook {stem!r}: no file {path}")
    return dict(_cell_defaults(str(path)))


# ----------------------------------------------------------------------------- seen configs

#: While :func:`planned_configs` runs: every defense config the plan prunes with, in order.
_PRUNED_WITH: ContextVar[list[DefenseConfig] | None] = ContextVar("pruned_with", default=None)


def _seen(configs: list[DefenseConfig]) -> list[DefenseConfig]:
    seen = _PRUNED_WITH.get()
    if seen is not None:
        seen.extend(configs)
    return configs


def sweep_jobs(c: Ctx, configs: list[DefenseConfig]) -> list[Job]:
    """:func:`wemem.planning.jobs.sweep_jobs`, its configs seen by :func:`planned_configs`."""
    return _jobs.sweep_jobs(c, _seen(list(configs)))


def pruned_jobs(c: Ctx, roles: list[str], config: DefenseConfig = BASE, **kw: Any) -> list[Job]:
    """:func:`wemem.planning.jobs.pruned_jobs`, its config seen by :func:`planned_configs`."""
    return _jobs.pruned_jobs(c, roles, *_seen([config]), **kw)


# ----------------------------------------------------------------------------- plans


def _common(c: Ctx) -> list[Job]:
    return dense_jobs(c, role_names(c.s.n_shadows)) + memscore_jobs(c)


def _grid(c: Ctx):
    return sweeps.window_grid_for(PlanReplicate(c), widths=c.p["widths"], steps=c.p["steps"])


def _plan_01(c: Ctx) -> list[Job]:
    return memscore_jobs(c, method="fz") + memscore_jobs(
        c, method="kfold", models=c.p["kfold_models"]
    )


def _plan_02(c: Ctx) -> list[Job]:
    roles, jobs = role_names(c.s.n_shadows), memscore_jobs(c)
    for seed in c.s.seeds:  # motivation.run: dense, one-shot, iterative (Base)
        jobs += dense_jobs(c, roles, seed=seed) + pruned_jobs(c, roles, seed=seed)
        jobs += pruned_jobs(c, roles, one_shot=True, seed=seed)
    for e in c.p.get("reuse_epochs", ()):  # motivation.reuse_sweep: other finetune_epochs
        ce = replace(c, s=replace(c.s, finetune_epochs=int(e)))
        jobs += pruned_jobs(ce, roles, seed=c.seed, what=f"Base (≤{e} epochs/round)")
    return jobs


def _tau(c: Ctx) -> float:
    """τ as the notebook computes it (its rule at ``tau_share``), on the stand-in's ramp."""
    return sweeps.tau_for(PlanReplicate(c), sweeps.run_tau_rule(c.s, c.p["tau_share"]))


def _plan_03(c: Ctx) -> list[Job]:
    configs = windows.rsw_configs(_grid(c), orders=c.p["orders"], mode=c.p["window_mode"])
    return _common(c) + sweep_jobs(c, configs)


def _plan_04(c: Ctx) -> list[Job]:
    configs = rmr.table_configs(tau=_tau(c), lambdas=c.p["lambdas"])
    return _common(c) + sweep_jobs(c, configs)


def _plan_05(c: Ctx) -> list[Job]:
    p = c.p
    configs = windows.swmr_configs(
        _grid(c), orders=p["orders"], tau=_tau(c), lambda_r=p["lambda_r"], mode=p["window_mode"]
    )
    return _common(c) + sweep_jobs(c, configs)


def _plan_06(c: Ctx) -> list[Job]:
    p = c.p
    baselines = comparison.baseline_sweep_configs(
        betas=p["betas"],
        alphas=p["alphas"],
        thetas=p["thetas"],
        adv_attack_every=p["adv_attack_every"],
        adv_mode=p["adv_modes"][0],
    )
    chosen = comparison.comparison_configs_for(PlanReplicate(c), comparison.choice_from(p))
    bars = sweeps.select(chosen, comparison.PAPER_BARS)  # the strongest attacks' references
    return (
        _common(c)
        + sweep_jobs(c, baselines)
        + sweep_jobs(c, chosen)
        + _jobs.reference_jobs(c, bars)
    )


def _plan_07(c: Ctx) -> list[Job]:
    configs = comparison.dp_configs(
        comparison.comparison_configs_for(PlanReplicate(c), comparison.choice_from(c.p)),
        sigmas=c.p["sigmas"],
        target_epsilons=c.p["target_epsilons"],
    )
    return _common(c) + sweep_jobs(c, configs)


def _plan_08(c: Ctx) -> list[Job]:
    p, roles, jobs = c.p, role_names(c.s.n_shadows), _common(c)
    for stage in p["stages"]:  # adaptive.evaluate_stages
        models = (
            dense_jobs(c, roles)
            if stage == "dense"
            else pruned_jobs(c, roles, one_shot=stage == "one-shot")
        )
        jobs += models + attack_jobs(
            c,
            p["attacks"],
            roles,
            models[0],
            epochs=p["attack_epochs"],
            train_max=p.get("attack_train_max"),
            epochs_by={"samia": p["samia_epochs"]},
            what=stage,
        )
    return jobs + _jobs.reference_jobs(c, [BASE], stages=p["stages"])


def _plan_09(c: Ctx) -> list[Job]:
    p, jobs = c.p, _common(c)
    if "one_shot" in p["sections"]:
        chosen = comparison.comparison_configs_for(PlanReplicate(c), comparison.choice_from(p))
        jobs += sweep_jobs(c, pruning_choices.pruning_configs(chosen))
    fields = []  # pruning_choices.setting_sweep: one experiment per value
    if "rates" in p["sections"]:
        fields += [("pruning_rate", v, _SETTING_SWEEP_DEFENSES) for v in p["rates"]]
    if "structured" in p["sections"] and c.s.arch != "fc":
        fields += [("pruning_approach", v, p["approach_defenses"]) for v in p["approaches"]]
    for field, v, defenses in fields:
        cv = replace(c, s=replace(c.s, **{field: v}))
        chosen = comparison.comparison_configs_for(PlanReplicate(cv), comparison.choice_from(p))
        jobs += sweep_jobs(cv, sweeps.select(chosen, tuple(defenses)))
    return jobs


def _plan_10(c: Ctx) -> list[Job]:
    jobs = dense_jobs(c, ["victim"]) + memscore_jobs(c)
    configs = comparison.comparison_configs_for(PlanReplicate(c), comparison.choice_from(c.p))
    runs = [configs[0]] + configs * c.p["time_repeats"]  # time_cost.time_cost: warm-up, repeats
    for config in runs:
        what = f"{config.setting} (timed, uncached)"
        jobs += pruned_jobs(c, ["victim"], config, fresh=True, what=what)
    return jobs


def _plan_11(c: Ctx) -> list[Job]:
    p, replicate = c.p, PlanReplicate(c)
    cands = autotune.candidates(
        replicate,
        orders=p["orders"],
        lambdas=p["lambdas"],
        tau_shares=p["tau_shares"],
        rmr_lambdas=p["rmr_lambdas"],
        widths=p["widths"],
        steps=p["steps"],
        mode=p["window_mode"],
    )
    jobs, alive = _common(c), len(cands)
    for i, n in enumerate(p["rungs"]):  # autotune.successive_halving, the first survive
        for cand in cands[:alive]:
            config = DefenseConfig(cand.defense, cand.settings, {"setting": cand.name})
            jobs += pruned_jobs(
                c, role_names(n, victim=False), config, what=f"rung {i}: {cand.name}"
            )
        alive = max(1, math.ceil(alive / p["eta"]))
    configs = autotune.victim_configs(
        cands[0],
        autotune.hand_picked(
            replicate,
            tau_share=p["tau_shares"][0],
            rsw_window=p["rsw_window"],
            swmr_window=p["swmr_window"],
            mode=p["window_mode"],
        ),
    )
    return jobs + sweep_jobs(c, configs)


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


def planned_entries(
    stem: str, params: dict[str, Any], *, notebooks_dir: Path | None = None
) -> dict[str, Entry]:
    """The cache entries one run's plan reads or writes, by key (each once)."""
    jobs = plan_run(stem, params, notebooks_dir=notebooks_dir)
    return {e.key: e for job in jobs for e in job.entries}


def planned_configs(
    stem: str, params: dict[str, Any], *, notebooks_dir: Path | None = None
) -> tuple[Ctx | None, list[DefenseConfig]]:
    """The run's context and every defense config its plan prunes with (exactly what
    :func:`plan_run` counts), in order, repeats kept; ``(None, [])`` for a notebook that trains
    nothing. No data is loaded.

    Raises:
        ParamsError: as :func:`plan_run`.
    """
    if PLANNERS.get(stem) is None:
        plan_run(stem, params, notebooks_dir=notebooks_dir)  # raises for an unplanned notebook
        return None, []
    c = make_ctx({**notebook_defaults(stem, notebooks_dir=notebooks_dir), **params})
    token = _PRUNED_WITH.set([])
    try:
        PLANNERS[stem](c)
        return c, list(_PRUNED_WITH.get() or ())
    finally:
        _PRUNED_WITH.reset(token)
