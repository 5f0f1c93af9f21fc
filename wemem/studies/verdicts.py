"""Three-valued verdicts for the paper's claims: *holds*, *does not hold*, *unresolved*.

A claim compares two measured figures, "A is greater than B". Its observed difference
``d = A − B`` is judged against a **resolution** ``r``, the noise scale of ``d``:

* ``d >  r``  → the claim *holds*;
* ``d < −r``  → it *does not hold*;
* otherwise   → it is *unresolved*: the difference is within the noise.

Which resolution to pass (callers record it beside the difference in ``metrics.json``):

* **several seeds run** → the seed spread: :func:`standard_error_of_mean` of the per-seed
  differences (the standard error of the mean difference);
* **one seed** → the sampling noise of the evaluation: :func:`accuracy_se` for an attack accuracy
  over ``n`` victim samples (members + non-members), :func:`auc_se` for an AUC, combined for a
  difference with :func:`difference_se`.

This is a one-standard-error rule, deliberately lenient: it says a claim is *within noise*, not that
it is significant at a given level. A resolution that is NaN or 0 means the noise was not measured
(e.g. one seed, ``ddof=1`` spread), not that there is none, so the verdict is *unresolved*; a
negative resolution is a bug and raises. A NaN difference is *unresolved*.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np

HOLDS = "holds"
FAILS = "does not hold"
UNRESOLVED = "unresolved"
STATUSES = (HOLDS, FAILS, UNRESOLVED)
_TEXT = {HOLDS: "holds", FAILS: "does **not** hold", UNRESOLVED: "is **unresolved** (within noise)"}


def verdict(difference: float, resolution: float, *, direction: str = "greater") -> str:
    """Status of the claim "A > B" (``direction="greater"``) or "A < B" (``"less"``) given the
    observed ``difference = A − B`` and its noise scale ``resolution`` (see the module docstring).

    Returns one of :data:`STATUSES`.
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction={direction!r}: allowed 'greater' or 'less'")
    d, r = float(difference), float(resolution)
    if r < 0:
        raise ValueError(f"resolution={r!r}: a noise scale is ≥ 0")
    if math.isnan(d) or math.isnan(r) or r == 0:
        return UNRESOLVED
    if direction == "less":
        d = -d
    if d > r:
        return HOLDS
    if d < -r:
        return FAILS
    return UNRESOLVED


def decide(
    difference: float, resolution: float, *, direction: str = "greater", noise: str = ""
) -> dict:
    """:func:`verdict` with the figures that decided it, ready for ``metrics.json``:
    ``{"status", "difference", "resolution", "direction", "noise"}`` (``noise`` says what the
    resolution is, e.g. "seed spread (3 seeds)" or "binomial SE (n = 400)")."""
    return {
        "status": verdict(difference, resolution, direction=direction),
        "difference": float(difference),
        "resolution": float(resolution),
        "direction": direction,
        "noise": noise,
    }


def paired_decision(
    per_seed_differences: Iterable[float], *, sampling_se: float, direction: str = "greater"
) -> dict:
    """:func:`decide` on the mean of the per-seed differences ``A − B``. The resolution is the seed
    spread (:func:`standard_error_of_mean` of the differences) when two or more seeds ran, else
    ``sampling_se`` (the evaluation's sampling noise of the one difference)."""
    d = np.asarray([float(x) for x in per_seed_differences], dtype=float)
    d = d[np.isfinite(d)]
    diff = float(d.mean()) if d.size else float("nan")
    if d.size >= 2:
        return decide(
            diff,
            standard_error_of_mean(d),
            direction=direction,
            noise=f"seed spread ({d.size} seeds)",
        )
    return decide(diff, sampling_se, direction=direction, noise="sampling SE (one seed)")


def share_decision(flags: Iterable, *, threshold: float = 0.5, n_min: int = 3) -> dict:
    """Verdict on "the claim holds in most paired settings": the share of true ``flags``
    (NaN/None dropped) against ``threshold``, with the sign-test standard error under the null,
    ``sqrt(threshold·(1 − threshold)/n)``, as resolution. Fewer than ``n_min`` settings →
    *unresolved*. Returns ``{"status", "share", "n", "difference", "resolution", "threshold"}``."""
    kept = [bool(f) for f in flags if f is not None and not _isnan(f)]
    n = len(kept)
    share = float(np.mean(kept)) if n else float("nan")
    se = math.sqrt(threshold * (1 - threshold) / n) if n else float("nan")
    status = verdict(share - threshold, se) if n >= n_min else UNRESOLVED
    return {
        "status": status,
        "share": share,
        "n": n,
        "difference": share - threshold,
        "resolution": se,
        "threshold": threshold,
        "noise": f"sign test over {n} settings",
    }


def share_verdict(flags: Iterable, *, threshold: float = 0.5, n_min: int = 3) -> str:
    """Status of :func:`share_decision`."""
    return share_decision(flags, threshold=threshold, n_min=n_min)["status"]


def standard_error_of_mean(values: Iterable[float]) -> float:
    """``std(values, ddof=1) / sqrt(n)`` over the finite values; NaN when fewer than two."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    return float(v.std(ddof=1) / math.sqrt(v.size))


def accuracy_se(acc: float, n: int) -> float:
    """Binomial standard error ``sqrt(acc·(1 − acc)/n)`` of an accuracy over ``n`` samples (for a
    membership attack: members + non-members evaluated). NaN when ``n`` ≤ 0."""
    if n <= 0:
        return float("nan")
    a = min(max(float(acc), 0.0), 1.0)
    return math.sqrt(a * (1 - a) / n)


def balanced_accuracy_se(acc: float, n_in: int, n_out: int) -> float:
    """Binomial standard error of a balanced accuracy ``½(TPR + TNR)`` on ``n_in`` members and
    ``n_out`` non-members, with both rates taken as ``acc``: ``½·sqrt(a(1 − a)(1/n_in + 1/n_out))``
    (as :func:`wemem.studies.sweeps.mean_attack`'s ``attack_se``). NaN when a count is 0."""
    if n_in <= 0 or n_out <= 0:
        return float("nan")
    a = min(max(float(acc), 0.0), 1.0)
    return 0.5 * math.sqrt(a * (1 - a) * (1 / n_in + 1 / n_out))


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC with ``n_pos`` positives (members) and
    ``n_neg`` negatives (non-members). NaN when either count is 0."""
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    a = min(max(float(auc), 0.0), 1.0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def difference_se(*ses: float) -> float:
    """Standard error of a sum or difference of independent estimates: ``sqrt(Σ se²)``. Two
    accuracies on the same ``n`` samples are positively correlated, so this over-states the noise
    of their difference: the verdict errs towards *unresolved*."""
    return math.sqrt(sum(float(s) ** 2 for s in ses))


def accuracy_difference_se(acc_a: float, acc_b: float, n: int) -> float:
    """:func:`difference_se` of two accuracies over ``n`` samples each; for ``acc_a = acc_b = a``
    it is ``sqrt(2·a·(1 − a)/n)``."""
    return difference_se(accuracy_se(acc_a, n), accuracy_se(acc_b, n))


def verdict_text(status: str) -> str:
    """Markdown phrase for a summary sentence: "holds", "does **not** hold",
    "is **unresolved** (within noise)"."""
    if status not in _TEXT:
        raise ValueError(f"status={status!r}: allowed {STATUSES}")
    return _TEXT[status]


def describe(decision: dict, *, digits: int = 3) -> str:
    """A decision as a summary phrase: its :func:`verdict_text` and the figures that decided it,
    e.g. "is **unresolved** (within noise) (Δ = +0.012 against noise ±0.020, seed spread (3
    seeds))"."""
    d, r, noise = decision["difference"], decision["resolution"], decision.get("noise", "")
    how = f", {noise}" if noise else ""
    return f"{verdict_text(decision['status'])} (Δ = {d:+.{digits}f} against noise ±{r:.{digits}f}{how})"


NOT_APPLICABLE = "not applicable"


#: Set by ``wemem reproduce --smoke`` in the kernels it starts: every size is shrunk.
SMOKE_ENV = "WEMEM_SMOKE"


def small_scale(profile: str) -> str | None:
    """Why a run's sample is too small for statistical checks (``"tiny profile"``, ``"smoke
    scale"``: ``$WEMEM_SMOKE`` set by ``wemem reproduce --smoke``), or None at full scale."""
    if profile == "tiny":
        return "tiny profile"
    if os.environ.get(SMOKE_ENV):
        return "smoke scale"
    return None


def at_smoke_scale() -> bool:
    """Whether this run is at smoke scale (``wemem reproduce --smoke`` sets ``$WEMEM_SMOKE``)."""
    return bool(os.environ.get(SMOKE_ENV))


def learning_check(passed: bool) -> bool | str:
    """A check that needs models trained long enough to learn (accuracy above chance): ``passed``,
    except at smoke scale (one or two epochs), where it is ``"not applicable (smoke scale)"``."""
    return statistical_check(passed, applicable=not at_smoke_scale(), why="smoke scale")


def statistical_check(
    passed: bool, *, applicable: bool | None = None, profile: str | None = None, why: str = ""
) -> bool | str:
    """A check that needs a meaningful sample: ``passed`` where ``applicable`` (default: unless
    :func:`small_scale` of ``profile`` says why not), else the string ``"not applicable (<why>)"``
    (truthy, so a notebook's ``assert all(checks.values())`` lets it through;
    :func:`wemem.studies.paper_tables.runs_table` counts it apart)."""
    reason = small_scale(profile) if profile is not None else None
    if applicable is None:
        applicable = reason is None
    return bool(passed) if applicable else f"{NOT_APPLICABLE} ({why or reason or 'small sample'})"


def is_decision(value) -> bool:
    """Whether ``value`` (e.g. read from ``metrics.json``) is a decided claim of :func:`decide` or
    :func:`share_decision`: a dict whose ``status`` is one of :data:`STATUSES`."""
    return isinstance(value, dict) and value.get("status") in STATUSES


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)
