"""Benchmark: threshold calibration, sort-based (O(n log n)) vs the official exhaustive scan (O(n²)).

Usage (from the repository root):
    python benchmarks/threshold_attack.py [--n 100000] [--pilot-n 5000] [--budget-s 120]

Times `best_threshold` on n member + n non-member scores (target: <= 1 s at n = 100k) and the
chunked exhaustive scan. The exhaustive scan first runs on a pilot subsample; if its quadratic
extrapolation to n fits in `--budget-s`, it then runs on the full data and the two results are
compared there, otherwise the extrapolated time is printed, labelled as such, and only the pilot
results are compared. Exits with status 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wemem.attacks.threshold import best_threshold, exhaustive_threshold


def scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Conf-like scores in [0, 1], rounded to 4 decimals so that ties are common."""
    s_in = np.round(rng.beta(6, 2, n), 4)
    s_out = np.round(rng.beta(4, 3, n), 4)
    return s_in, s_out


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="members = non-members = n")
    parser.add_argument(
        "--pilot-n", type=int, default=5_000, help="exhaustive pilot run size (per side)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=120.0,
        help="run the exhaustive scan on the full n only if the pilot extrapolates below this",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    s_in, s_out = scores(rng, args.n)
    n = f"{args.n:>9,} + {args.n:,}"

    (t_fast, ba_fast), sec_fast = timed(best_threshold, s_in, s_out)
    verdict = "OK" if sec_fast <= 1.0 else "SLOWER THAN TARGET"
    print(f"best_threshold       n={n}: {sec_fast:8.3f} s  [target <= 1 s: {verdict}]")
    print(f"  threshold={t_fast!r}  shadow BA={ba_fast:.6f}")

    m = min(args.pilot_n, args.n)
    pilot = (s_in[:m], s_out[:m])
    (t_pilot, ba_pilot), sec_pilot = timed(exhaustive_threshold, *pilot)
    extrapolated = sec_pilot * (args.n / m) ** 2
    print(f"exhaustive_threshold n={m:>9,} + {m:,}: {sec_pilot:8.3f} s  (pilot, measured)")
    pilot_agrees = (t_pilot, ba_pilot) == best_threshold(*pilot)
    print(f"  pilot agreement with best_threshold: {'IDENTICAL' if pilot_agrees else 'MISMATCH'}")

    if extrapolated <= args.budget_s:
        (t_slow, ba_slow), sec_slow = timed(exhaustive_threshold, s_in, s_out)
        agree = pilot_agrees and (t_slow, ba_slow) == (t_fast, ba_fast)
        print(f"exhaustive_threshold n={n}: {sec_slow:8.3f} s  (full run, measured)")
        print(f"  threshold={t_slow!r}  shadow BA={ba_slow:.6f}")
        print(f"speed-up: {sec_slow / sec_fast:,.0f}x")
        print(f"agreement on the full data: {'IDENTICAL' if agree else 'MISMATCH'}")
    else:
        agree = pilot_agrees
        print(
            f"exhaustive_threshold n={n}: {extrapolated:8.1f} s  "
            f"(EXTRAPOLATED as (n/{m:,})^2 x pilot; not run, over --budget-s {args.budget_s:g})"
        )
        print(f"agreement on the pilot subsample only: {'IDENTICAL' if agree else 'MISMATCH'}")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
