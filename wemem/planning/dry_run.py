"""``wemem reproduce --dry-run``: what a batch would train and how long it would take, per device.

Joins the runner's plan (which runs would execute, which are unchanged and skipped) with the cost
model of :mod:`wemem.planning.costing` (models, model-epochs, sample-epochs, TFLOPs and seconds per device
class from the measured calibration ``params/calibration.yaml``). Nothing is trained or written.
``--dry-run --json`` prints the resolved plan instead (:mod:`wemem.planning.plan_json`).
"""

from __future__ import annotations

from typing import Any


def cost_table(rows: list[dict[str, Any]], *, expected: bool = False):
    """One row per run of :func:`wemem.batch.runner.plan`: the plan's action beside the cost model's
    columns; skipped runs cost nothing. A pandas DataFrame."""
    from dataclasses import replace

    from wemem.planning.costing import estimate_runs

    specs = [replace(r["spec"], params=r["params"]) for r in rows]
    table = estimate_runs(specs, expected=expected)
    table.insert(2, "action", [r["action"] for r in rows])
    skip = table["action"] != "run"
    for col in table.columns:
        if col.startswith("seconds ") or col in ("models", "epochs", "sample_epochs", "tflops"):
            table.loc[skip, col] = 0
    return table


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render(table, *, profile: str) -> str:
    """The table as text, durations humanised, with a total line per device class."""
    classes = [c for c in table.columns if c.startswith("seconds ")]
    shown = table.copy()
    for c in classes:
        shown[c] = shown[c].map(_duration)
    shown["tflops"] = table["tflops"].map(lambda v: f"{v:,.1f}")
    shown = shown.rename(columns={c: c.removeprefix("seconds ") for c in classes})
    runs = int((table["action"] == "run").sum())
    lines = [
        f"dry run, profile {profile}: {runs} of {len(table)} runs would execute "
        "(epochs are upper bounds: early stopping cuts them; models shared through the cache "
        "are counted once)",
        shown.to_string(index=False),
        "total: "
        + "; ".join(f"{c.removeprefix('seconds ')} {_duration(table[c].sum())}" for c in classes),
    ]
    return "\n".join(lines)


def render_jobs(rows: list[dict[str, Any]]) -> str:
    """Per run, its trainings: what, architecture, models, epochs per model, samples, TFLOPs (the
    cost model's jobs; ``wemem -v reproduce --dry-run``)."""
    from wemem.planning.workload import plan_run

    out = []
    for r in rows:
        if r["action"] != "run":
            continue
        jobs = plan_run(r["stem"], r["params"])
        if not jobs:
            continue
        from wemem.planning.costing import job_table

        table = job_table(jobs).drop(columns=["new_share"])
        table["tflops"] = table["tflops"].map(lambda v: f"{v:,.2f}")
        out += [f"{r['stem']} [{r['run_name']}]", table.to_string(index=False), ""]
    return "\n".join(out)
