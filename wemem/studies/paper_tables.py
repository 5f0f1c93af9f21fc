"""The paper's tables and claims beside this project's runs, read from the runs' ``metrics.json``.

:func:`collect` reads every run of a profile (``outputs/<stem>/<run>/metrics.json``);
:func:`paper_vs_reproduced` lines up the numbers of :mod:`wemem.studies.paper_values` with the runs' (delta
= reproduced − paper); :func:`claims_summary` lists every statement of the paper and every yes/no
claim of the runs with its status; :func:`artefact_map` says which notebook writes which file for
each paper table or figure. A notebook that has not run is reported as ``not run``, never an error.

A delta is a contrast, not an error, unless the run used the paper's data and model: the ``cpu``
and ``tiny`` profiles run on synthetic data with the FC model (``notes`` says which case holds).
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import pandas as pd

from wemem.names import label
from wemem.studies import paper_values

SELF = "12_paper_tables"
NOT_RUN = "not run"
STATUSES = ("holds", "does not hold", "reported", "not in metrics", NOT_RUN)

#: (paper table or figure, where the slides or spec give it, notebook, files the notebook writes)
ARTEFACTS = [
    ("T-setup: datasets and splits", "slides 'Evaluation: Setup'; spec §8.1, §5.2",
     "00_overview", ["tables/datasets.csv"]),
    ("Mem-scores (Feldman–Zhang)", "slides 'Memorization Score'; spec §3",
     "01_memorization_scores", ["tables/memscores.csv", "figures/memscore_distributions.png"]),
    ("Motivation (likely Figs. 1–4)", "slides 'Motivation' (images); spec §8.3", "02_motivation",
     ["figures/leakage_per_round.png", "figures/stage_comparison.png", "figures/scenarios.png"]),
    ("T-settings: windows and τ", "slides 'Our Defense Settings'; spec §8.1",
     "03_defense_rsw", ["tables/rsw_settings.csv"]),
    ("Fig. 5/6: RSW window grid", "slides 'Evaluation: Key Results'; spec §8.2",
     "03_defense_rsw", ["figures/rsw_accuracy.png", "figures/rsw_attacks.png"]),
    ("T-RMR: λr against Base", "slides 'Evaluation: Key Results'; spec §8.1",
     "04_defense_rmr", ["tables/rmr.csv", "figures/rmr_lambda.png"]),
    ("Fig. 5/6: SWMR window grid", "slides 'Evaluation: Key Results'; spec §8.2",
     "05_defense_swmr", ["figures/swmr_accuracy.png", "figures/swmr_attacks.png"]),
    ("Fig. 7: WeMem vs existing defenses", "slides 'Evaluation: Key Results'; spec §8.2",
     "06_baselines", ["tables/comparison.csv", "figures/comparison.png"]),
    ("Fig. 7: DP-SGD", "slides 'Evaluation: Setup'; spec §7, §9.11",
     "07_dpsgd_opacus", ["tables/dp.csv", "figures/privacy_utility.png"]),
    ("Ten adaptive attacks", "slides 'Evaluation: Setup'; spec §6.2",
     "08_attacks", ["tables/attacks.csv", "figures/roc_curves.png"]),
    ("Fig. 8: iterative vs one-shot", "spec §8.2 (third-party numbering)",
     "09_pruning_approaches", ["tables/pruning.csv", "figures/pruning.png"]),
    ("Fig. 9: structured pruning", "slides 'Evaluation: Setup'; spec §8.2",
     "09_pruning_approaches", ["tables/approaches.csv"]),
    ("Pruning rates 50/60/70 %", "slides 'Evaluation: Setup'; spec §8.3",
     "09_pruning_approaches", ["tables/rates.csv"]),
    ("T-time: time cost", "slides 'Evaluation: Key Results'; spec §8.1",
     "10_time_cost", ["tables/time_cost.csv", "figures/time_cost.png"]),
    ("Automatic settings", "abstract; spec §2.5 (this project's design)",
     "11_autotune", ["tables/victim.csv", "figures/search.png"]),
]  # fmt: skip

NOTEBOOKS = tuple(dict.fromkeys(a[2] for a in ARTEFACTS))  # 00 … 11, each writes an artefact
_TIME_KEY = {"rsw_l2h": "rsw", "swmr_h2l": "swmr"}  # headline orders (spec §1) → T-time columns
_CODE = {v: k for k, v in _TIME_KEY.items()}
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_MISSING = object()
COMPARISON = ("artefact", "quantity", "setting", "paper data & model", "paper", "reproduced")
COMPARISON += ("delta", "run", "profile", "notes", "source")
CLAIMS = ("claim", "statement", "source", "notebook", "key", "run", "profile", "value", "status")
FILES = ("artefact", "source", "notebook", "file", "run", "profile", "path", "status")

Runs = dict[str, dict[str, dict]]  # stem → run name → metrics.json


def locate_outputs_root(outputs_root: str | Path, output_dir: str | Path = "") -> Path:
    """The outputs root to read: the one holding this run when the runner put it at
    ``<root>/12_paper_tables/<run>/`` (so a batch compares its own runs), else ``outputs_root``."""
    here = Path(output_dir).resolve() if output_dir else None
    return here.parent.parent if here and here.parent.name == SELF else Path(outputs_root)


def collect(outputs_root: str | Path, profile: str, *, stems: tuple[str, ...] = NOTEBOOKS) -> Runs:
    """Every run of ``profile`` (folders ``<profile>`` and ``<profile>-<variant>``; the by-hand
    ``-interactive`` runs excluded) of each notebook: ``{stem: {run name: metrics}}``. A notebook
    without such a run maps to ``{}`` (not run), a run folder without ``metrics.json`` to ``{}``."""
    root = Path(outputs_root)
    found = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    runs: Runs = {}
    for stem in sorted(({*stems} | {s for s in found if s[:2].isdigit()}) - {SELF}):
        folder = root / stem
        names = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        keep = [n for n in names if n == profile or n.startswith(f"{profile}-")]
        runs[stem] = {
            n: _read(folder / n / "metrics.json")
            for n in sorted(keep)
            if not n.endswith("-interactive")
        }
    return runs


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def runs_table(runs: Runs, profile: str) -> pd.DataFrame:
    """One row per notebook and run: status, data & model, and how many of its checks pass."""
    rows = []
    for stem, by_name in runs.items():
        for name, m in by_name.items() or [(None, {})]:
            st, ck = m.get("settings", {}), m.get("checks", {})
            data = "/".join(str(st[k]) for k in ("dataset", "arch") if k in st)
            passed = f"{sum(map(bool, ck.values()))}/{len(ck)}" if ck else ""
            rows.append((stem, name, profile, "run" if name else NOT_RUN, data, passed))
    cols = ["notebook", "run", "profile", "status", "data", "checks passed"]
    return pd.DataFrame(rows, columns=cols)


def _pick(runs: Runs, stem: str, profile: str, dataset: str | None = None, arch: str | None = None):
    """(``<stem>/<run>``, metrics, note) of the run on the paper row's data & model, else of the
    profile's plain run (another setting, as in ``cpu``), else (None, {}, why)."""
    by_name = runs.get(stem, {})
    for name, m in by_name.items():
        st = m.get("settings", {})
        if dataset is not None and (st.get("dataset"), st.get("arch")) == (dataset, arch):
            return f"{stem}/{name}", m, "same data & model as the paper"
    if profile not in by_name:
        return None, {}, NOT_RUN if not by_name else f"no run on {dataset}/{arch}"
    m = by_name[profile]
    st = m.get("settings", {})
    other = f"different data & model (run: {st.get('dataset')}/{st.get('arch')}): a contrast"
    return f"{stem}/{profile}", m, "setting of the run" if dataset is None else other


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


def lookup(metrics: dict, dotted: str) -> Any:
    """``metrics["a"]["b"]`` for ``"a.b"``; a sentinel (never a value) when a key is missing."""
    node: Any = metrics
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _status(value: Any, test: tuple[str, float] | None) -> tuple[Any, str]:
    if value is _MISSING:
        return None, "not in metrics"
    if test is not None and _number(value):
        return value, "holds" if _OPS[test[0]](value, test[1]) else "does not hold"
    if isinstance(value, bool):
        return value, "holds" if value else "does not hold"
    return value, "reported"


def _parse(tested_by: str) -> tuple[str, str, tuple[str, float] | None]:
    """``"03_x:claims.k > 1"`` → (stem, dotted key, (">", 1.0)); without a comparison, None."""
    stem, _, rest = tested_by.partition(":")
    key, *cmp = rest.split()
    return stem, key, (cmp[0], float(cmp[1])) if cmp else None


def claims_summary(runs: Runs, profile: str) -> pd.DataFrame:
    """Each statement of the paper (``paper_values.yaml``) with every run claim that tests it, then
    every other yes/no claim of the runs (any boolean outside ``checks`` and ``settings``), one
    row per claim and run (columns :data:`CLAIMS`). ``status`` is one of :data:`STATUSES`."""
    rows, seen = [], set()
    for c in paper_values.load()["claims"]:
        for tested_by in c["tested_by"]:
            stem, key, test = _parse(tested_by)
            seen.add((stem, key))
            shown = key + (f" {test[0]} {test[1]:g}" if test else "")
            head = (c["id"], c["statement"], c["source"], stem)
            by_name = runs.get(stem, {})
            # a variant run that does not compute this (e.g. 09's structured-only run) is skipped
            # when another run of the notebook does
            has_it = {n for n, m in by_name.items() if lookup(m, key) is not _MISSING}
            for name, m in by_name.items() or [(None, None)]:
                if has_it and name not in has_it:
                    continue
                value, status = _status(lookup(m, key), test) if name else (None, NOT_RUN)
                rows.append((*head, shown, name, profile, value, status))
    for stem, by_name in runs.items():
        for name, m in by_name.items():
            for key, value in _bool_leaves(m):
                if (stem, key) not in seen:
                    claim, status = key.rsplit(".", 1)[-1], _status(value, None)[1]
                    head = (claim, "", f"this project ({stem})", stem, key)
                    rows.append((*head, name, profile, value, status))
    return pd.DataFrame(rows, columns=list(CLAIMS))


def by_statement(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per statement of the paper: how many of its tests hold, do not hold, or are
    otherwise (reported, not in metrics, not run), and a verdict: holds (every yes/no test holds),
    does not hold (none does), mixed, or the one status all its tests share."""
    paper = claims[~claims.source.str.startswith("this project")]
    rows = []
    for (claim, statement), g in paper.groupby(["claim", "statement"], sort=False):
        n = g.status.value_counts()
        yes, no = int(n.get("holds", 0)), int(n.get("does not hold", 0))
        verdict = "mixed" if yes and no else "holds" if yes else "does not hold" if no else None
        rows.append((claim, statement, yes, no, len(g) - yes - no, verdict or g.status.iloc[0]))
    cols = ["claim", "statement", "holds", "does not hold", "other", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def _bool_leaves(node: Any, prefix: str = ""):
    for key, value in node.items() if isinstance(node, dict) else ():
        if key not in ("checks", "settings"):
            if isinstance(value, bool):
                yield prefix + key, value
            yield from _bool_leaves(value, f"{prefix}{key}.")


def artefact_map(runs: Runs, outputs_root: str | Path, profile: str) -> pd.DataFrame:
    """Paper table or figure → notebook → file (``path``: ``<stem>/<run>/<file>`` under the
    outputs root), and ``status``: written, missing (e.g. not applicable to the run's model) or
    not run. Columns :data:`FILES`."""
    rows = []
    for artefact, source, stem, files in ARTEFACTS:
        for file, name in ((f, n) for f in files for n in runs.get(stem, {}) or [None]):
            path = f"{stem}/{name}/{file}" if name else None
            written = bool(path) and (Path(outputs_root) / path).exists()
            status = NOT_RUN if not name else "written" if written else "missing"
            rows.append((artefact, source, stem, file, name, profile, path, status))
    return pd.DataFrame(rows, columns=list(FILES))


def counts(table: pd.DataFrame, claims: pd.DataFrame) -> dict[str, int]:
    """What :func:`summary_text` reports; claim counts over the paper's statements only."""
    paper = claims[~claims.source.str.startswith("this project")]
    status = paper.status.value_counts()
    return {
        "paper_numbers": len(table),
        "compared": int(table.reproduced.notna().sum()),
        "same_setting": int(table.notes.str.startswith("same").sum()),
        "claim_tests": len(paper),
        **{s.replace(" ", "_"): int(status.get(s, 0)) for s in STATUSES},
    }


def checks(table: pd.DataFrame, claims: pd.DataFrame, runs: Runs) -> dict[str, bool]:
    """Deltas are reproduced − paper; claim statuses are known; a notebook not run has no value."""
    num = table.dropna(subset=["delta"])
    diff = num.reproduced.astype(float) - num.paper.astype(float) - num.delta.astype(float)
    missing = [s for s, r in runs.items() if not r]
    return {
        "delta_is_difference": bool((diff.abs() < 1e-12).all()),
        "claim_statuses_known": bool(claims.status.isin(STATUSES).all()),
        "not_run_have_no_values": bool(table[table.run.isna()].reproduced.isna().all())
        and bool(claims[claims.notebook.isin(missing)].status.eq(NOT_RUN).all()),
    }


def summary_text(metrics: dict) -> str:
    """Sentences on what was compared and how many of the paper's statements hold, from this
    notebook's ``metrics.json`` (sections ``settings``, ``runs``, ``counts``, ``statements``)."""
    c, runs = metrics["counts"], metrics["runs"]
    missing = sorted({r["notebook"] for r in runs if r["status"] == NOT_RUN})
    stems = {r["notebook"] for r in runs}
    not_run = f" (not run: {', '.join(missing)})" if missing else ""
    return (
        f"Profile `{metrics['settings']['profile']}`: runs found for {len(stems) - len(missing)} "
        f"of {len(stems)} notebooks{not_run}. {c['compared']} of the paper's {c['paper_numbers']} "
        f"numbers have a reproduced value, {c['same_setting']} of them on the paper's own data and "
        f"model. Of the {c['claim_tests']} tests of the paper's statements, holds: {c['holds']}, "
        f"does not hold: {c['does_not_hold']}, reported (a value, no yes/no): {c['reported']}, "
        f"not in metrics: {c['not_in_metrics']}, not run: {c['not_run']}."
        f"{_listing(metrics, 'holds')}{_listing(metrics, 'does not hold')}"
        f"{_listing(metrics, 'mixed')}"
    )


def _listing(metrics: dict, verdict: str) -> str:
    ids = [s["claim"] for s in metrics["statements"] if s["verdict"] == verdict]
    lead = {"holds": "hold", "does not hold": "do not hold", "mixed": "have mixed results"}
    return f" Statements that {lead[verdict]} here: {', '.join(ids)}." if ids else ""
