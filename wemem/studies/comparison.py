"""Fig. 7 (notebook 06) and the DP-SGD runs (notebook 07): the baselines' settings sweeps, every
defense at its chosen setting, the paper's comparison claim, computed, and their sentences.

The chosen settings (:class:`Choice`) are the paper's (spec §8.2): β = 4, θ = 2, σ = 0.1, α = 1
for PPB, ADV, DP and RelaxLoss, ADV and DP-SGD in the official code's modes where the params ask
for them (the proper ones shown beside, labelled); RSW(L→H) and SWMR(H→L) at the authors' best
windows where the spec gives them (CIFAR10-ResNet18, Location-FC), else at a window of the settings
table's own grid (params), else at the headline window of the paper's rule (the cpu profile); RMR
and SWMR with λr = 0.1 and τ by the run's rule. The builders take plain values (windows, τ), so a
planner with no data builds the same configs; :func:`comparison_configs_for` computes them from an
experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from wemem.defenses.catalog import PAPER_SETTINGS
from wemem.defenses.config import BASE, DefenseConfig, Window, headline_window, window_grid
from wemem.defenses.primitives import MODES
from wemem.errors import ParamsError
from wemem.experiment.replicate import Experiment
from wemem.names import label
from wemem.studies.sweeps import (
    class_size,
    mean_attack,
    run_tau_rule,
    said,
    select,
    tau_for,
    tau_summary,
    test_acc_resolution,
)
from wemem.studies.verdicts import FAILS, decide, difference_se, verdict

#: ADV's modes (:class:`wemem.defenses.baselines.ADVHooks`) and how a table names them.
ADV_MODES = ("official", "nasr")
ADV_MODE_LABEL = {"official": "official", "nasr": "Nasr"}
#: The paper's eight bars of Fig. 7, in its order.
PAPER_BARS = ("Base", "PPB", "ADV", "DP", "RelaxLoss", "RSW", "RMR", "SWMR")


def baseline_configs(name: str, key: str, values, **fixed) -> list[DefenseConfig]:
    """A sweep of one baseline over one setting (PPB β, ADV θ, RelaxLoss α, DP σ); ``fixed``
    settings are added to every point (e.g. ADV's ``attack_every``)."""
    return [
        DefenseConfig(
            name,
            {key: float(v), **fixed},
            {"setting": f"{label(name)} {key}={v:g}", "method": label(name), key: float(v)},
        )
        for v in values
    ]


def baseline_sweep_configs(
    *, betas, alphas, thetas, adv_attack_every: int, adv_mode: str = "nasr"
) -> list[DefenseConfig]:
    """Notebook 06, section 1: Base, then PPB over β, RelaxLoss over α, ADV over θ (in
    ``adv_mode``; ``attack_every`` applies to the ``nasr`` mode only)."""
    adv = {"mode": adv_mode} | ({"attack_every": adv_attack_every} if adv_mode == "nasr" else {})
    return [
        BASE,
        *baseline_configs("ppb", "beta", betas),
        *baseline_configs("relaxloss", "alpha", alphas),
        *baseline_configs("adv", "theta", thetas, **adv),
    ]


@dataclass(frozen=True)
class Choice:
    """The chosen setting of every defense of a comparison (Fig. 7 in 06; 07, 09, 10 reuse it).

    Attributes:
        rsw_window: ``(w, s)`` of RSW(L→H), e.g. the authors' best (500, 50) for CIFAR10-ResNet18
            (spec §1, ``run_shell.sh``); ``()``: the headline window of the paper's rule on n_c.
        swmr_window: ``(w, s)`` of SWMR(H→L) (CIFAR10-ResNet18: (500, 100)); ``()`` as above.
        window_mode: window clipping, ``per_class`` (corrected) or ``faithful`` (the official
            code's in-place clipping across classes, spec §9.4; the paper's numbers come from it).
        tau_share: high-risk share of the τ rule (:func:`wemem.studies.sweeps.run_tau_rule`).
        lambda_r: λr of RMR and SWMR (0.1, the paper's best).
        adv_modes: ADV's modes; the first is the bar labelled ``ADV``, the others are shown beside
            it, labelled (``official``: one classifier step per epoch, spec §9.12; ``nasr``: k
            inference steps before every ``adv_attack_every``-th classifier step).
        adv_attack_every: ``attack_every`` of the ``nasr`` mode (1 = Nasr's algorithm).
        dp_passes_per_epoch: DP-SGD's passes over the data per fine-tuning epoch; the first is the
            bar labelled ``DP`` (official code: 100, spec §9.11b), the others beside it, labelled.
    """

    rsw_window: tuple[int, ...] = ()
    swmr_window: tuple[int, ...] = ()
    window_mode: str = "per_class"
    tau_share: float = 0.1
    lambda_r: float = 0.1
    adv_modes: tuple[str, ...] = ("official",)
    adv_attack_every: int = 1
    dp_passes_per_epoch: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        for field_, w in (("rsw_window", self.rsw_window), ("swmr_window", self.swmr_window)):
            if len(w) not in (0, 2) or not all(isinstance(v, int) and v >= 1 for v in w):
                raise ParamsError(f"{field_} = {list(w)!r}: expected [] or [width, step] >= 1")
        if self.window_mode not in MODES:
            raise ParamsError(f"window_mode = {self.window_mode!r}: allowed values are {MODES}")
        if not self.adv_modes or any(m not in ADV_MODES for m in self.adv_modes):
            raise ParamsError(f"adv_modes = {list(self.adv_modes)!r}: allowed values {ADV_MODES}")
        if not self.dp_passes_per_epoch or any(p <= 0 for p in self.dp_passes_per_epoch):
            raise ParamsError(
                f"dp_passes_per_epoch = {list(self.dp_passes_per_epoch)!r}: numbers > 0"
            )


def choice_from(namespace) -> Choice:
    """The :class:`Choice` of a notebook's parameters: every variable of ``namespace`` named like a
    field of :class:`Choice` (lists become tuples); the others keep their defaults."""
    kw = {
        f.name: tuple(namespace[f.name])
        if isinstance(namespace[f.name], list)
        else namespace[f.name]
        for f in fields(Choice)
        if f.name in namespace
    }
    return Choice(**kw)


def _adv_configs(choice: Choice) -> list[DefenseConfig]:
    out = []
    for i, mode in enumerate(choice.adv_modes):
        st = {**PAPER_SETTINGS["adv"], "mode": mode}
        name = "ADV" if i == 0 else f"ADV ({ADV_MODE_LABEL[mode]})"
        if mode == "nasr":
            st["attack_every"] = choice.adv_attack_every
            if choice.adv_attack_every > 1 and i > 0:
                name = f"ADV (Nasr, attack every {choice.adv_attack_every})"
        out.append(DefenseConfig("adv", st, {"setting": name, "method": "ADV", "adv_mode": mode}))
    return out


def _dp_configs(choice: Choice) -> list[DefenseConfig]:
    out = []
    for i, passes in enumerate(choice.dp_passes_per_epoch):
        st = {**PAPER_SETTINGS["dp"]}
        if passes != 1:
            st["passes_per_epoch"] = float(passes)
        name = "DP" if i == 0 else f"DP ({passes:g} pass{'es' if passes != 1 else ''}/epoch)"
        out.append(DefenseConfig("dp", st, {"setting": name, "method": "DP"}))
    return out


def _window_labels(name: str, window: Window, choice: Choice) -> dict:
    return {
        "setting": name,
        "method": name,
        "width": window.width,
        "step": window.step,
        "window_mode": choice.window_mode,
    }


def comparison_configs(
    rsw_window: Window, swmr_window: Window, *, tau: float, choice: Choice = Choice()
) -> list[DefenseConfig]:
    """Fig. 7: every defense at its chosen setting (spec §8.2): Base, PPB (β = 4), ADV (θ = 2), DP
    (σ = 0.1), RelaxLoss (α = 1), RSW(L→H) at ``rsw_window``, RMR at ``tau`` with λr, SWMR(H→L)
    at ``swmr_window``; then the rows shown beside the paper's bars (other ADV modes, other DP
    passes), labelled. The eight paper bars are :data:`PAPER_BARS`."""
    out = [
        BASE,
        DefenseConfig("ppb", PAPER_SETTINGS["ppb"], {"setting": "PPB", "method": "PPB"}),
    ]
    adv, dp = _adv_configs(choice), _dp_configs(choice)
    rel = DefenseConfig("relaxloss", PAPER_SETTINGS["relaxloss"], {"setting": "RelaxLoss"})
    out += [adv[0], dp[0], rel.relabel(method="RelaxLoss")]
    mode = {"mode": choice.window_mode}
    rsw = {"width": rsw_window.width, "step": rsw_window.step, **mode}
    swmr = {"width": swmr_window.width, "step": swmr_window.step, **mode}
    risk = {"tau": tau, "lambda_r": choice.lambda_r}
    return [
        *out,
        DefenseConfig("rsw_l2h", rsw, _window_labels("RSW", rsw_window, choice)),
        DefenseConfig("rmr", risk, {"setting": "RMR", "method": "RMR"}),
        DefenseConfig("swmr_h2l", {**swmr, **risk}, _window_labels("SWMR", swmr_window, choice)),
        *adv[1:],
        *dp[1:],
    ]


def chosen_windows(n_c: float, choice: Choice) -> tuple[Window, Window]:
    """RSW's and SWMR's windows of ``choice`` at class size ``n_c`` (the headline window of the
    paper's rule where ``choice`` gives none)."""
    headline = headline_window(window_grid(n_c))

    def pick(ws: tuple[int, ...]) -> Window:
        if not ws:
            return headline
        return Window(ws[0], ws[1], ws[0] / n_c, "chosen")

    return pick(choice.rsw_window), pick(choice.swmr_window)


def comparison_configs_for(exp: Experiment, choice: Choice = Choice()) -> list[DefenseConfig]:
    """:func:`comparison_configs` for ``exp``: its class size's windows (:func:`chosen_windows`)
    and τ by the run's rule (:func:`wemem.studies.sweeps.run_tau_rule` at ``choice.tau_share``)."""
    rsw, swmr = chosen_windows(class_size(exp), choice)
    tau = tau_for(exp, run_tau_rule(exp.settings, choice.tau_share))
    return comparison_configs(rsw, swmr, tau=tau, choice=choice)


def chosen_tau(exp: Experiment, configs: list[DefenseConfig], choice: Choice) -> dict:
    """τ of a comparison's RMR/SWMR rows (:func:`comparison_configs_for`), its rule and the share of
    the training pool it selects, for metrics.json (:func:`wemem.studies.sweeps.tau_summary`);
    ``{}`` when no row has a τ."""
    taus = [c.settings["tau"] for c in configs if "tau" in c.settings]
    if not taus:
        return {}
    return tau_summary(exp, taus[0], run_tau_rule(exp.settings, choice.tau_share))


def dp_configs(comparison: list[DefenseConfig], *, sigmas, target_epsilons) -> list[DefenseConfig]:
    """Notebook 07: Base, DP-SGD at each noise multiplier σ and each target ε, then RSW and SWMR
    from ``comparison`` (:func:`comparison_configs`) for reference. σ >= 0 (σ = 0: no noise, ε =
    ∞, a legal reference point) and ε > 0, each once, at least one DP row in all; else
    :class:`ParamsError` before anything trains."""
    for name, values, ok, allowed in (
        ("sigmas", list(sigmas), lambda v: v >= 0, ">= 0"),
        ("target_epsilons", list(target_epsilons), lambda v: v > 0, "> 0"),
    ):
        if len(set(values)) != len(values) or not all(_real(v) and ok(v) for v in values):
            raise ParamsError(f"{name} = {values!r}: finite numbers {allowed}, each once")
    if not len(sigmas) + len(target_epsilons):
        raise ParamsError("sigmas = [] and target_epsilons = []: no DP-SGD row to run")
    return [
        BASE,
        *baseline_configs("dp", "noise_multiplier", sigmas),
        *baseline_configs("dp", "target_epsilon", target_epsilons),
        *select(comparison, ("RSW", "SWMR")),
    ]


def _real(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def dp_checks(table: pd.DataFrame, means: pd.DataFrame) -> dict:
    """Notebook 07's checks, each one that can fail, on its sweep ``table`` and ``means``
    (:func:`~wemem.studies.sweeps.mean_attack`): every DP row reports ε > 0 (σ = 0 reports ε = ∞);
    ε falls as σ grows; each target ε is met; more noise does not raise the mean attack accuracy
    (smallest against largest σ, beyond 3 standard errors; not applicable with one σ)."""
    dp = table[table.defense == "dp"].groupby("setting", sort=False).first()
    dp = dp.assign(**{k: dp.get(k, np.nan) for k in ("noise_multiplier", "target_epsilon")})
    eps = dp.dp_epsilon.astype(float)
    by_sigma = dp[dp.noise_multiplier.notna()].sort_values("noise_multiplier")
    targets = dp[dp.target_epsilon.notna()]
    checks = {
        "every_dp_run_has_epsilon": bool(len(dp)) and bool((eps > 0).all()),
        "more_noise_less_epsilon": bool(by_sigma.dp_epsilon.astype(float).is_monotonic_decreasing),
        "each_target_met": bool(
            (targets.dp_epsilon.astype(float) <= targets.target_epsilon * 1.01).all()
        ),
        "more_noise_no_higher_attack": "not applicable (one σ)",
    }
    if len(by_sigma) > 1:
        ends = means.set_index("setting").loc[[by_sigma.index[0], by_sigma.index[-1]]]
        rise = float(ends.attack.iloc[1] - ends.attack.iloc[0])
        se = difference_se(*ends.attack_se)
        checks["more_noise_no_higher_attack"] = verdict(rise, 3 * se, direction="less") != FAILS
    return checks


def comparison_claims(table: pd.DataFrame) -> dict:
    """'WeMem achieves high prediction accuracy while reducing attack accuracy more than other
    defense methods' (spec §8.2, Fig. 7), as two verdicts over the paper's bars (:data:`PAPER_BARS`;
    rows shown beside them are left out): the best WeMem method's mean attack accuracy (the paper's
    attacks) below the best other defense's, and its test accuracy at or above the others' mean."""
    m = mean_attack(table).set_index("setting")
    wemem_ = m.loc[[s for s in ("RSW", "RMR", "SWMR") if s in m.index]]
    others = m.loc[[s for s in ("PPB", "ADV", "DP", "RelaxLoss") if s in m.index]]
    best_w, best_o = wemem_.attack.idxmin(), others.attack.idxmin()
    n_test = m["n_test"].iloc[0] if "n_test" in m else float("nan")
    top = wemem_.test_acc.max()
    bars = [s for s in PAPER_BARS if s in m.index]
    return {
        "attack": {k: float(m.at[k, "attack"]) for k in bars},
        "test_acc": {k: float(m.at[k, "test_acc"]) for k in bars},
        "best_wemem": str(best_w),
        "best_other": str(best_o),
        "wemem_lowest_attack": decide(
            float(others.attack.min() - wemem_.attack.min()),
            difference_se(m.at[best_w, "attack_se"], m.at[best_o, "attack_se"]),
        ),
        "wemem_best_test_acc_at_or_above_others_mean": decide(
            float(top - others.test_acc.mean()),
            test_acc_resolution(top, others.test_acc.mean(), n_test),
        ),
    }


def comparison_text(c: dict) -> str:
    """Sentences for Fig. 7 (06) from its claims in metrics.json."""
    a, t = c["attack"], c["test_acc"]
    parts = "; ".join(f"{k}: test {t[k]:.3f}, attack {a[k]:.3f}" for k in a)
    return (
        f"{parts} (mean over the paper's attacks). The lowest mean attack accuracy among the WeMem "
        f"methods is {c['best_wemem']}'s, among the other defenses {c['best_other']}'s; that WeMem "
        f"reduces attack accuracy more than every other defense {said(c['wemem_lowest_attack'])}, "
        f"and that it keeps accuracy at or above the other defenses' mean "
        f"{said(c['wemem_best_test_acc_at_or_above_others_mean'])}."
    )


def epsilon_text(epsilon) -> str:
    """ε as a sentence shows it: ``∞`` for σ = 0 (``inf`` in a table; ``null`` in metrics.json,
    which holds strict JSON, :func:`wemem.io.to_jsonable`; the accountant reports no other
    non-finite ε), else three significant digits."""
    if epsilon is None or not math.isfinite(float(epsilon)):
        return "∞"
    return f"{float(epsilon):.3g}"


def dp_text(rows: list[dict], *, settings: dict | None = None) -> str:
    """Sentences for notebook 07 from its metrics.json rows; ``settings`` (the run's) add which
    models every row shares (GroupNorm CNNs under ``norm: group``). ε = ∞ (σ = 0) reads "∞"
    (:func:`epsilon_text`)."""
    dp = [r for r in rows if r.get("method") == "DP"]
    base = next(r for r in rows if r["setting"] == "Base")
    parts = "; ".join(
        f"{r['setting']}: ε = {epsilon_text(r['dp_epsilon'])} at δ = {r['dp_delta']:.1e}, test "
        f"{r['test_acc']:.3f}, attack AUC {r['auc']:.3f}"
        for r in dp
    )
    others = "; ".join(
        f"{r['setting']}: test {r['test_acc']:.3f}, AUC {r['auc']:.3f}"
        for r in rows
        if r.get("method") not in ("DP", "Base")
    )
    infinite = any(epsilon_text(r["dp_epsilon"]) == "∞" for r in dp)
    return (
        f"Base: test {base['test_acc']:.3f}, attack AUC {base['auc']:.3f}. DP-SGD — {parts}. "
        f"WeMem for comparison — {others}. Each ε covers all pruning rounds."
        + (" ε = ∞ (σ = 0: no noise) guarantees no privacy." if infinite else "")
        + _models_text(settings)
    )


def _models_text(settings: dict | None) -> str:
    if not settings or settings.get("arch", "fc") == "fc":
        return ""
    if settings.get("norm") == "group":
        return f" Every row uses the same {settings['arch']} models with GroupNorm."
    return (
        f" Base and WeMem use the run's {settings['arch']} models with BatchNorm; the DP-SGD rows "
        f"train GroupNorm twins (dp_norm; BatchNorm has no per-sample gradients; the paper does "
        f"not say how it ran DP)."
    )
