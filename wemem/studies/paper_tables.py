"""The paper's tables and claims beside this project's runs, read from the runs' ``metrics.json``.

:func:`collect` reads every run of a profile (``outputs/<stem>/<run>/metrics.json``);
:func:`paper_vs_reproduced` lines up the numbers of :mod:`wemem.studies.paper_values` with the
runs' (delta = reproduced − paper); :func:`claims_summary` lists every statement of the paper and
every claim of the runs with its status (*holds*, *does not hold*, *unresolved*:
:mod:`wemem.studies.verdicts`, with the difference and resolution that decided it);
:func:`artefact_map` says which notebook writes which file for each paper table or figure. A
notebook that has not run is reported as ``not run``, never an error.

A delta is a contrast, not an error, unless the run used the paper's data and model: the ``cpu``
and ``tiny`` profiles run on synthetic data with the FC model (``notes`` says which case holds).
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import pandas as pd

from wemem.studies import paper_values
from wemem.studies import verdicts as vd
from wemem.studies.paper_rows import (  # noqa: F401  (re-exported: notebook 12 reads them here)
    COMPARISON,
    NOT_RUN,
    SAME,
    SETTING,
    Runs,
    _number,
    paper_vs_reproduced,
    unreproduced,
)

SELF = "12_paper_tables"
MISSING = "not in metrics"
STATUSES = (*vd.STATUSES, "reported", MISSING, NOT_RUN)
_ART = paper_values.load()["artefacts"]

#: (paper table or figure, where the slides or spec give it, notebook, files): ``paper_values.yaml``
ARTEFACTS = [tuple(a[k] for k in ("artefact", "source", "notebook", "files")) for a in _ART]

NOTEBOOKS = tuple(dict.fromkeys(a[2] for a in ARTEFACTS))  # 00 … 11, each writes an artefact
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_MISSING = object()
CLAIMS = ("claim", "statement", "source", "notebook", "key", "run", "profile", "value", "status")
CLAIMS += ("difference", "resolution", "noise")
FILES = ("artefact", "source", "notebook", "file", "run", "profile", "path", "status")


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
            rows.append((stem, name, profile, "run" if name else NOT_RUN, data, _passed(ck)))
    cols = ["notebook", "run", "profile", "status", "data", "checks passed"]
    return pd.DataFrame(rows, columns=cols)


def _passed(checks: dict) -> str:
    """Passed / applicable checks of a run, and how many were not applicable (a statistical check
    in the tiny profile, :func:`~wemem.studies.verdicts.statistical_check`)."""
    bools = [v for v in checks.values() if isinstance(v, bool)]
    na = len(checks) - len(bools)
    return f"{sum(bools)}/{len(bools)}" + (f" ({na} n/a)" if na else "") if checks else ""


def lookup(metrics: dict, dotted: str) -> Any:
    """``metrics["a"]["b"]`` for ``"a.b"``; a sentinel (never a value) when a key is missing."""
    node: Any = metrics
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _status(value: Any, test: tuple[str, float] | None) -> tuple[Any, str, dict]:
    """(value shown, status, deciding figures) of a claim read from metrics.json: a decided claim
    (:func:`~wemem.studies.verdicts.decide`) keeps its three-valued status, its difference as the
    value; a number with a ``test`` and a bare yes/no are two-valued, without figures."""
    if value is _MISSING:
        return None, MISSING, {}
    if vd.is_decision(value):
        figures = {k: value.get(k) for k in ("difference", "resolution", "noise")}
        return value.get("difference"), value["status"], figures
    if test is not None and _number(value):
        return value, vd.HOLDS if _OPS[test[0]](value, test[1]) else vd.FAILS, {}
    if isinstance(value, bool):
        return value, vd.HOLDS if value else vd.FAILS, {}
    return value, "reported", {}


def _parse(tested_by: str) -> tuple[str, str, tuple[str, float] | None]:
    """``"03_x:claims.k > 1"`` → (stem, dotted key, (">", 1.0)); without a comparison, None."""
    stem, _, rest = tested_by.partition(":")
    key, *cmp = rest.split()
    return stem, key, (cmp[0], float(cmp[1])) if cmp else None


def claim_keys(runs: Runs) -> list[tuple[str, str, str]]:
    """Every (notebook, run, dotted key) of ``paper_values.yaml``'s ``tested_by`` that a run of
    that notebook lacks (no other run of it has the key either): a renamed or dropped claim."""
    out = []
    for c in paper_values.load()["claims"]:
        for stem, key, _ in map(_parse, c["tested_by"]):
            by_name = runs.get(stem, {})
            if by_name and all(lookup(m, key) is _MISSING for m in by_name.values()):
                out += [(stem, name, key) for name in by_name]
    return out


def claims_summary(runs: Runs, profile: str) -> pd.DataFrame:
    """Each statement of the paper (``paper_values.yaml``) with every run claim that tests it, then
    every other claim of the runs (a decided claim, or a boolean, outside ``checks`` and
    ``settings``), one row per claim and run (columns :data:`CLAIMS`). ``status`` is one of
    :data:`STATUSES`; ``difference``, ``resolution`` and ``noise`` are the figures that decided
    it (empty for a bare yes/no)."""
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
                value, status, fig = _status(lookup(m, key), test) if name else (None, NOT_RUN, {})
                rows.append((*head, shown, name, profile, value, status, *_figures(fig)))
    for stem, by_name in runs.items():
        for name, m in by_name.items():
            for key, value in _claim_leaves(m):
                if (stem, key) not in seen:
                    value, status, fig = _status(value, None)
                    head = (key.rsplit(".", 1)[-1], "", f"this project ({stem})", stem, key)
                    rows.append((*head, name, profile, value, status, *_figures(fig)))
    return pd.DataFrame(rows, columns=list(CLAIMS))


def _figures(fig: dict) -> tuple:
    return fig.get("difference"), fig.get("resolution"), fig.get("noise")


def by_statement(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per statement of the paper: how many of its tests hold, do not hold, are
    unresolved, or are otherwise (reported, not in metrics, not run), and a verdict: the status
    all its decided tests share (holds, does not hold, unresolved), *mixed* when they differ, or
    the one status all its tests share when none was decided."""
    paper = claims[~claims.source.str.startswith("this project")]
    rows = []
    for (claim, statement), g in paper.groupby(["claim", "statement"], sort=False):
        n = g.status.value_counts()
        counts = [int(n.get(s, 0)) for s in vd.STATUSES]
        decided = {s for s, k in zip(vd.STATUSES, counts, strict=True) if k}
        verdict = "mixed" if len(decided) > 1 else decided.pop() if decided else g.status.iloc[0]
        rows.append((claim, statement, *counts, len(g) - sum(counts), verdict))
    cols = ["claim", "statement", *vd.STATUSES, "other", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def _claim_leaves(node: Any, prefix: str = ""):
    """(dotted key, value) of every decided claim and every boolean under ``node``, outside
    ``checks`` and ``settings``; a decided claim's own fields are not descended into."""
    for key, value in node.items() if isinstance(node, dict) else ():
        if key in ("checks", "settings"):
            continue
        if isinstance(value, bool) or vd.is_decision(value):
            yield prefix + key, value
        else:
            yield from _claim_leaves(value, f"{prefix}{key}.")


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
        "same_setting": int((table.notes == SAME).sum()),
        "unreproduced": len(unreproduced(table)),
        "claim_tests": len(paper),
        **{s.replace(" ", "_"): int(status.get(s, 0)) for s in STATUSES},
    }


def checks(runs: Runs, table: pd.DataFrame | None = None) -> dict[str, bool]:
    """What notebook 12 asserts, each able to fail: every claim key of ``paper_values.yaml`` is
    found in a run of its notebook (a renamed claim would silently read *not in metrics*),
    every run passed its own checks (its metrics.json records them even when its assert failed;
    a statistical check not applicable to the profile is not a failure), and (given the
    comparison ``table``) every paper number that a run covers (the paper's data & model, or a
    setting of the run) has a reproduced value."""
    ran = [m for by_name in runs.values() for m in by_name.values()]
    out = (
        {}
        if table is None
        else {
            "every_covered_paper_number_reproduced": bool(
                (unreproduced(table).why != "the run has no value for it").all()
            )
        }
    )
    return {
        **out,
        "every_claim_key_found": not claim_keys(runs),
        "every_run_passed_its_checks": all(
            v is not False for m in ran for v in m.get("checks", {}).values()
        ),
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
        f"does not hold: {c['does_not_hold']}, unresolved (within noise): {c['unresolved']}, "
        f"reported (a value, no verdict): {c['reported']}, not in metrics: "
        f"{c['not_in_metrics']}, not run: {c['not_run']}."
        + "".join(_listing(metrics, v) for v in (*vd.STATUSES, "mixed"))
    )


def _listing(metrics: dict, verdict: str) -> str:
    ids = [s["claim"] for s in metrics["statements"] if s["verdict"] == verdict]
    lead = {
        vd.HOLDS: "hold",
        vd.FAILS: "do not hold",
        vd.UNRESOLVED: "are unresolved (within noise)",
        "mixed": "have mixed results",
    }
    return f" Statements that {lead[verdict]} here: {', '.join(ids)}." if ids else ""
