"""The time table (notebook 10; spec §8.1 T-time, the slide table *Time Cost Comparison in
Iterative Pruning*): each defense's fine-tuning wall-clock, its ratio to Base beside the paper's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.defenses.config import DefenseConfig
from wemem.errors import ParamsError
from wemem.experiment import executor
from wemem.experiment.replicate import Experiment
from wemem.studies.sweeps import check_configs, said
from wemem.studies.verdicts import decide, standard_error_of_mean, statistical_check

#: The paper's time-table row of each defense's official name.
_TIME_KEY = {
    "base": "base",
    "rsw_l2h": "rsw",
    "rmr": "rmr",
    "swmr_h2l": "swmr",
    "ppb": "ppb",
    "adv": "adv",
    "relaxloss": "relaxloss",
    "dp": "dp",
}


def time_cost(
    exp: Experiment, configs: list[DefenseConfig], *, repeats: int = 3, warmup: bool = True
) -> pd.DataFrame:
    """Controlled wall-clock of the victim's fine-tuning over the pruning rounds per defense.

    Every run is retrained (never read from the cache). Each of the ``repeats`` repeats is one task
    of the executor (:func:`wemem.experiment.executor.submit_calls`): a warm-up run of its first
    config (not timed: first-call allocations, thread pools), then all configs one at a time,
    interleaved (repeat r starts at config r, so no defense always runs first or right after a
    heavy one). Under ``local`` the repeats run one after the other in this process (one warm-up
    before the first); under the pool (``make reproduce``'s executor) they run at once, one per
    worker, each with its own warm-up: on a 2-core machine the two repeats of the cpu profile
    share it, each timed run beside another defense's fine-tuning, and 10 takes about half the
    time (``benchmarks/time_cost_parallel.py`` measures what such a neighbour does to a timed
    run). Per defense: the median seconds, their spread
    (``seconds_min``/``seconds_max``), the ratio of medians to Base, and the per-repeat times.
    Seconds count the training rounds only (the per-round output pass and checkpoint writes are
    timed apart, ``output_seconds``/``checkpoint_seconds`` where the summary has them); per-epoch
    dev evaluation is included, window precomputation excluded, as the official log line (spec
    §8.1 T-time)."""
    if repeats < 1:
        raise ParamsError(f"time_repeats = {repeats!r}: must be an integer >= 1")
    check_configs(exp, configs)
    if executor.name() == "local":  # one process: warm once, then the repeats in turn
        done = [_repeat(exp, configs, r % len(configs), warmup and r == 0) for r in range(repeats)]
    else:
        calls = [
            {
                "experiment": type(exp),
                "settings": exp.settings,
                "seed": exp.seed,
                "cache_dir": str(exp.cache.root),
                "configs": configs,
                "first": r % len(configs),
                "warmup": warmup,
            }
            for r in range(repeats)
        ]
        done = executor.submit_calls(timed_repeat, calls).results()
    times: dict[int, list[float]] = {
        i: [t[i]["seconds"] for t in done] for i in range(len(configs))
    }
    last = done[-1]
    rows = []
    for i, c in enumerate(configs):
        t, run = np.asarray(times[i]), last[i]
        rows.append(
            {
                **c.labels,
                "defense": c.name,
                "seconds": float(np.median(t)),
                "seconds_min": float(t.min()),
                "seconds_max": float(t.max()),
                "repeats": len(t),
                "round_seconds": [float(x) for x in t],
                "output_seconds": run["output_seconds"],
                "checkpoint_seconds": run["checkpoint_seconds"],
                "epochs": run["epochs"],
                "test_acc": run["test_acc"],
            }
        )
    df = pd.DataFrame(rows)
    base = df.loc[df.defense == "base", "seconds"].iloc[0]
    df["ratio_to_base"] = df.seconds / base
    return df


def timed_repeat(
    *,
    experiment: type,
    settings,
    seed: int,
    cache_dir: str,
    configs: list[DefenseConfig],
    first: int,
    warmup: bool,
) -> list[dict]:
    """One repeat of :func:`time_cost` (a task of the executor): rebuild the experiment (its class,
    settings, seed and cache), warm up on config ``first`` (untimed) when ``warmup``, then fine-tune
    the victim under every config, starting at ``first``; per config (in ``configs`` order) its
    seconds and what the table shows of the run."""
    import dataclasses

    exp = experiment(dataclasses.replace(settings, cache_dir=cache_dir), seed=seed)
    return _repeat(exp, configs, first, warmup)


def _repeat(exp: Experiment, configs: list[DefenseConfig], first: int, warmup: bool) -> list[dict]:
    if warmup:
        c = configs[first]
        exp.defended("victim", c.name, use_cache=False, **c.settings)
    out: dict[int, dict] = {}
    for j in range(len(configs)):
        i = (first + j) % len(configs)
        c = configs[i]
        run = exp.defended("victim", c.name, use_cache=False, **c.settings)
        out[i] = {
            "seconds": float(run.summary["seconds"]),
            "output_seconds": float(run.summary.get("output_seconds", np.nan)),
            "checkpoint_seconds": float(run.summary.get("checkpoint_seconds", np.nan)),
            "epochs": run.summary["epochs"],
            "test_acc": float(run.final.test_acc),
        }
    return [out[i] for i in range(len(configs))]


def window_time_claims(costs: pd.DataFrame) -> dict:
    """ "Sliding window sampling … speeding up the iterative fine-tuning" (spec §8.1 T-time), judged
    on the controlled timing: RSW's and SWMR's median seconds below Base's, each a verdict whose
    resolution is the standard error of the paired per-round differences (interleaved rounds)."""
    by = costs.set_index("setting")
    out = {}
    for name in ("RSW", "SWMR"):
        if name not in by.index or "Base" not in by.index:
            continue
        base, win = (
            np.asarray(by.at["Base", "round_seconds"]),
            np.asarray(by.at[name, "round_seconds"]),
        )
        diff = base - win
        out[f"{name.lower()}_faster_than_base"] = decide(
            float(np.mean(diff)), standard_error_of_mean(diff)
        )
    return out


def time_comparison(costs: pd.DataFrame, paper: pd.DataFrame, *, dataset: str, arch: str):
    """Our seconds and ratio to Base beside the paper's: its row for the same dataset and
    architecture when it has one, else the mean of its ratios over its four rows."""
    cols = ["setting", "defense", "seconds", "seconds_min", "seconds_max", "epochs"]
    out = costs[[*cols, "ratio_to_base"]].copy()
    key = out.defense.map(_TIME_KEY)
    same = paper[(paper.dataset == dataset) & (paper.arch == arch)].set_index("defense")
    if len(same):
        out["paper_ratio"] = key.map(same.paper_ratio).to_numpy()
        out["paper_source"] = f"{dataset}/{arch}"
    else:
        mean = paper.groupby("defense").paper_ratio.mean()
        out["paper_ratio"] = key.map(mean).to_numpy()
        out["paper_source"] = "mean of the paper's 4 rows"
    return out


def time_text(rows: list[dict], claims: dict | None = None) -> str:
    """Sentences for the time table (10) from its rows and timing claims in metrics.json."""
    r = {x["setting"]: x for x in rows}
    parts = ", ".join(
        f"{k} {v['ratio_to_base']:.2f}× (paper {v['paper_ratio']:.2f}×)"
        for k, v in r.items()
        if k != "Base"
    )
    b = r["Base"]
    text = (
        f"Base fine-tuned the victim in {b['seconds']:.1f} s over the pruning rounds (median of "
        f"interleaved repeats, range {b['seconds_min']:.1f}–{b['seconds_max']:.1f} s). Ratios of "
        f"medians to Base: {parts}. Paper ratios: {rows[0]['paper_source']}."
    )
    for key, d in (claims or {}).items():
        name = key.split("_")[0].upper()
        text += f" That {name} fine-tunes faster than Base {said(d)} (paired per-repeat seconds)."
    return text


def time_checks(costs: pd.DataFrame, *, profile: str) -> dict:
    """Checks of notebook 10 that can fail: every median finite and positive; where ADV ran in both
    modes, the official one (one classifier step per epoch) faster than Nasr's (not applicable in
    the ``tiny`` profile, whose few-batch epochs are all evaluation overhead)."""
    ok = bool(np.isfinite(costs.seconds).all() and (costs.seconds > 0).all())
    checks: dict = {"times_finite_positive": ok}
    if "adv_mode" in costs.columns:
        adv = costs[costs.defense == "adv"].groupby("adv_mode").seconds.first()
        if {"official", "nasr"} <= set(adv.index):
            checks["official_adv_faster_than_nasr"] = statistical_check(
                adv["official"] < adv["nasr"], profile=profile
            )
    return checks
