"""Benchmark: RMIA and LiRA scoring time, given the models' outputs (no model is run).

Usage (from the repository root):
    python benchmarks/attack_scoring.py [--n 100000] [--refs 16] [--population 10000]
        [--repeats 3] [--json PATH]

Times, best of `--repeats`, on synthetic inputs of the right shapes:
  * `rmia_scores` (online, a = None, and offline, a = 0.3; γ = 1) given true-class probabilities
    of the target on n samples and m population samples and of `--refs` references on both
    (target: <= 1 s on CPU);
  * `lira_offline` given φ of the target and of `--refs` OUT models on the n samples;
  * `lira_online` given φ of `--refs`/2 IN and `--refs`/2 OUT models.
Prints the seconds of each and the CPU; `--json PATH` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from calibrate import cpu_name  # benchmarks/calibrate.py (the script folder is on sys.path)

from wemem.attacks.lira import lira_offline, lira_online
from wemem.attacks.rmia import rmia_scores

TARGET_S = 1.0


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def inputs(rng: np.random.Generator, n: int, refs: int, m: int) -> dict[str, np.ndarray]:
    """Probabilities with per-sample difficulty shared by all models, rounded to float32 (as
    stored posteriors are) so that ties occur, and φ of the same shapes."""
    mu_x, mu_z = rng.normal(2, 3, n), rng.normal(2, 3, m)

    def prob(mu: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        p = 1 / (1 + np.exp(-(mu + rng.normal(size=shape))))
        return p.astype(np.float32).astype(np.float64)

    return {
        "p_target_x": prob(mu_x, (n,)),
        "p_ref_x": prob(mu_x, (refs, n)),
        "p_target_z": prob(mu_z, (m,)),
        "p_ref_z": prob(mu_z, (refs, m)),
        "phi_target": mu_x + rng.normal(size=n),
        "phi_in": mu_x + 1 + rng.normal(size=(refs // 2, n)),
        "phi_out": mu_x + rng.normal(size=(refs - refs // 2, n)),
        "phi_all_out": mu_x + rng.normal(size=(refs, n)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="target samples")
    parser.add_argument("--refs", type=int, default=16, help="reference / shadow models (>= 4)")
    parser.add_argument("--population", type=int, default=10_000, help="RMIA population z")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.refs < 4 or args.n < 1 or args.population < 1 or args.repeats < 1:
        parser.error("need --refs >= 4 and --n, --population, --repeats >= 1")

    d = inputs(np.random.default_rng(args.seed), args.n, args.refs, args.population)
    rmia = ("p_target_x", "p_ref_x", "p_target_z", "p_ref_z")
    runs = {
        "rmia_online": lambda: rmia_scores(*(d[k] for k in rmia), gamma=1.0),
        "rmia_offline": lambda: rmia_scores(*(d[k] for k in rmia), gamma=1.0, a=0.3),
        "lira_offline": lambda: lira_offline(d["phi_target"], d["phi_all_out"]),
        "lira_online": lambda: lira_online(d["phi_target"], d["phi_in"], d["phi_out"]),
    }
    seconds = {name: best_of(args.repeats, fn) for name, fn in runs.items()}

    cpu = cpu_name()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"CPU: {cpu} ({os.cpu_count()} logical cores; OMP_NUM_THREADS={threads})")
    print(f"numpy {np.__version__}, python {platform.python_version()}")
    print(
        f"n={args.n:,} targets, {args.refs} references, population m={args.population:,}, "
        f"best of {args.repeats}"
    )
    for name, sec in seconds.items():
        print(f"  {name:<13} {sec:8.3f} s")
    rmia_worst = max(seconds["rmia_online"], seconds["rmia_offline"])
    ok = rmia_worst <= TARGET_S
    print(f"RMIA scoring <= {TARGET_S:g} s on CPU: {'OK' if ok else 'SLOWER THAN TARGET'}")

    if args.json is not None:
        record = {
            "cpu": cpu,
            "logical_cores": os.cpu_count(),
            "omp_num_threads": threads,
            "numpy": np.__version__,
            "n": args.n,
            "refs": args.refs,
            "population": args.population,
            "repeats": args.repeats,
            "seconds": seconds,
            "rmia_target_s": TARGET_S,
            "rmia_within_target": ok,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
