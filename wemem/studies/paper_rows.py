"""The paper's numbers beside the runs': one row per number of :mod:`wemem.studies.paper_values`
(T-setup / T-settings, T-RMR, T-RMR's Base row against 08, T-time) with the run that covers it.

Each row's ``notes`` says how the run relates to the number: the paper's own data and model
(:data:`SAME`: a comparison), a setting shared by the runs (:data:`SETTING`), another data and
model (a contrast, as in the ``cpu`` profile), or no run (:data:`NOT_RUN`, ``no run on d/a``).
:func:`unreproduced` lists the numbers without a reproduced value and why.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from wemem.names import label
from wemem.studies import paper_values

NOT_RUN = "not run"
SAME = "same data & model as the paper"
SETTING = "setting of the run"
_TIME_KEY = {"rsw_l2h": "rsw", "swmr_h2l": "swmr"}  # headline orders (spec §1) → T-time columns
_CODE = {v: k for k, v in _TIME_KEY.items()}
COMPARISON = ("artefact", "quantity", "setting", "paper data & model", "paper", "reproduced")
COMPARISON += ("delta", "run", "profile", "notes", "source")

Runs = dict[str, dict[str, dict]]  # stem → run name → metrics.json


def _pick(runs: Runs, stem: str, profile: str, dataset: str | None = None, arch: str | None = None):
    """(``<stem>/<run>``, metrics, note) of the run on the paper row's data & model, else of the
    profile's plain run (another setting, as in ``cpu``), else (None, {}, why)."""
    by_name = runs.get(stem, {})
    for name, m in by_name.items():
        st = m.get("settings", {})
        if dataset is not None and (st.get("dataset"), st.get("arch")) == (dataset, arch):
            return f"{stem}/{name}", m, SAME
    if not by_name:
        return None, {}, NOT_RUN
    if dataset is None:  # a setting shared by the runs: the plain run's, else the first variant's
        name = profile if profile in by_name else sorted(by_name)[0]
        return f"{stem}/{name}", by_name[name], SETTING
    if profile not in by_name:
        return None, {}, f"no run on {dataset}/{arch}"
    m = by_name[profile]
    st = m.get("settings", {})
    other = f"different data & model (run: {st.get('dataset')}/{st.get('arch')}): a contrast"
    return f"{stem}/{profile}", m, other


def _row(artefact, quantity, setting, paper_data, paper, ours, pick, source, profile) -> dict:
    run, _, note = pick
    delta = _minus(ours, paper)
    values = (artefact, quantity, setting, paper_data, paper, ours, delta, run, profile, note)
    return dict(zip(COMPARISON, (*values, source), strict=True))


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _rmr_rows(runs: Runs, profile: str):
    """T-RMR per paper row and setting: test and mean attack accuracy, and for each λr their
    change from Base (the change is the more comparable figure across data and models)."""
    block, base = paper_values.load()["t_rmr"], {}
    src, names = block["source"], block["attacks"]
    for dataset, arch, setting, test_acc, values in paper_values.T_RMR:
        pick = _pick(runs, "04_defense_rmr", profile, dataset, arch)
        ran = pick[1].get("settings", {}).get("attacks") or names
        att = [v / 100 for a, v in zip(names, values, strict=True) if a in ran and v is not None]
        rows = pick[1].get("settings_results", [])
        ours = next((r for r in rows if _same_setting(r, setting)), {})
        lab, data = ("Base" if setting == "base" else f"λr={setting}"), f"{dataset}/{arch}"
        pairs = {
            "test accuracy": (test_acc / 100, ours.get("test_acc")),
            "mean attack accuracy": (sum(att) / len(att) if att else None, ours.get("attack")),
        }
        base.setdefault(data, pairs)
        for q, (paper, mine) in pairs.items():
            yield "T-RMR", q, lab, data, paper, mine, pick, src
        for q, (paper, mine) in pairs.items() if setting != "base" else ():
            p0, m0 = base[data][q]
            yield "T-RMR", f"{q} − Base", lab, data, _minus(paper, p0), _minus(mine, m0), pick, src


def _minus(a: Any, b: Any) -> float | None:
    return a - b if _number(a) and _number(b) else None


def _same_setting(row: dict, setting: str) -> bool:
    if setting == "base":
        return row.get("method") == "Base"
    return row.get("lambda_r") is not None and abs(row["lambda_r"] - float(setting)) < 1e-9


def _attack_rows(runs: Runs, profile: str):
    block, art = paper_values.load()["t_rmr"], ("T-RMR Base row vs 08", "Base attack accuracy")
    for dataset, arch, _, _, values in (r for r in paper_values.T_RMR if r[2] == "base"):
        pick = _pick(runs, "08_attacks", profile, dataset, arch)
        stage = pick[1].get("claims", {}).get("last_stage", "iterative")
        rows = [r for r in pick[1].get("attacks", []) if r["stage"] == stage]
        ours = {r["attack"]: r["paper_metric"] for r in rows}
        for a, v in zip(block["attacks"], values, strict=True):
            paper = None if v is None else v / 100
            yield *art, label(a), f"{dataset}/{arch}", paper, ours.get(a), pick, block["source"]


def _time_rows(runs: Runs, profile: str):
    source, art = paper_values.load()["t_time"]["source"], ("T-time", "fine-tuning time / Base")
    for (dataset, arch), seconds in paper_values.T_TIME.items():
        pick = _pick(runs, "10_time_cost", profile, dataset, arch)
        rows = pick[1].get("time_cost", [])
        ours = {_TIME_KEY.get(r["defense"], r["defense"]): r["ratio_to_base"] for r in rows}
        for d, sec in seconds.items():
            if d != "base":
                ratio = sec / seconds["base"]
                name = label(_CODE.get(d, d))
                yield *art, name, f"{dataset}/{arch}", ratio, ours.get(d), pick, source


def _setup_rows(runs: Runs, profile: str):
    setup, sett = paper_values.load()["t_setup"], paper_values.load()["t_settings"]
    stems = ("02_motivation", "04_defense_rmr", "08_attacks", "09_pruning_approaches")
    picks = {s: _pick(runs, s, profile) for s in stems}
    m2, m4, m8, m9 = (p[1].get("settings", {}) for p in picks.values())
    rates = sorted({*m9.get("rates", []), m9.get("pruning_rate")} - {None})
    attacks = len([a for a in m8.get("attacks", []) if a != "lira"])  # LiRA: beyond the paper
    for quantity, paper, stem, ours in [
        ("main pruning rate", setup["main_pruning_rate"], stems[0], m2.get("pruning_rate")),
        ("pruning iterations", setup["pruning_iterations"], stems[0], m2.get("pruning_rounds")),
        ("pruning rates", _fmt(setup["pruning_rates"]), stems[3], _fmt(rates)),
        ("adaptive attacks", setup["attacks"], stems[2], attacks or None),
        ("λg (L2 coefficient)", sett["lambda_g"], stems[1], m4.get("weight_decay")),
        ("λr grid", _fmt(sett["lambda_r"]), stems[1], _fmt(m4.get("lambdas", []))),
    ]:
        source = sett["source"] if quantity.startswith("λ") else setup["source"]
        yield "T-setup / T-settings", quantity, "", "all", paper, ours, picks[stem], source


def _fmt(values) -> str | None:
    return ", ".join(f"{v:g}" for v in values) or None


def paper_vs_reproduced(runs: Runs, profile: str) -> pd.DataFrame:
    """Every number of the paper (T-setup, T-settings, T-RMR, T-time) beside the run's, one row
    each (columns :data:`COMPARISON`): delta = reproduced − paper for numbers (accuracies as
    fractions, times as ratios to Base); ``notes`` says whether the run used the paper's data and
    model (a comparison), another one (a contrast), or did not run."""
    parts = (_setup_rows, _rmr_rows, _attack_rows, _time_rows)
    rows = [_row(*r, profile) for part in parts for r in part(runs, profile)]
    return pd.DataFrame(rows, columns=list(COMPARISON))


def unreproduced(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers without a reproduced value, each with why: its notebook did not run,
    no run on its data & model, or the run that covers it has no value (a bug:
    :func:`checks` fails)."""
    rows = table[table.paper.notna() & table.reproduced.isna()].copy()
    covered = rows.notes.isin([SAME, SETTING])
    rows["why"] = rows.notes.where(~covered, "the run has no value for it")
    return rows[["artefact", "quantity", "setting", "paper data & model", "run", "why"]]
