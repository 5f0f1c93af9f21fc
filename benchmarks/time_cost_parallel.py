"""What a neighbour does to a timed run of notebook 10: one fine-tuning alone against two at once.

Notebook 10 (the time table) runs its repeats as tasks of the executor; under the pool of a 2-core
machine the two repeats of the cpu profile run at once, so every timed run has a neighbour doing
another defense's fine-tuning on the other core. This benchmark measures what that neighbour
costs: the victim-sized FC model of the cpu profile (600 → 256 → 128 → 50, 2,160 training rows,
489 dev rows, batch 128) is pruned and fine-tuned as in :func:`wemem.pruning.prune_and_finetune`
(5 rounds of ``--epochs`` epochs, no early stopping), timed by its own summary, in spawned worker
processes with one thread each: ``alone`` (one worker) and ``pair`` (two workers started together,
both timed), alternated ``--repeats`` times so a drifting machine affects both alike.

Prints the medians and their ratio (pair / alone; near 1 means the cores are independent, e.g. not
two hyper-threads of one core) and, with ``--json PATH``, writes the figures there.

    python benchmarks/time_cost_parallel.py [--repeats 3] [--epochs 6] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor


def timed_finetune(seed: int, epochs: int) -> float:
    """Seconds of a Base prune-and-fine-tune of the cpu-profile FC model (its summary's clock)."""
    import torch

    from wemem.models import build_model
    from wemem.pruning import prune_and_finetune
    from wemem.training.loop import TrainConfig, fit, set_threads

    set_threads(1)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(2649, 600, generator=g) < 0.5).float()
    y = torch.randint(0, 50, (2649,), generator=g)
    train, dev = torch.arange(2160), torch.arange(2160, 2649)
    model = build_model("fc", num_classes=50, in_features=600, seed=seed)
    fit(model, x, y, train, dev, config=TrainConfig(max_epochs=2, patience=10**9, seed=seed))
    config = TrainConfig(max_epochs=epochs, patience=10**9, batch_size=128, seed=seed)
    run = prune_and_finetune(
        model, x, y, train, dev, arch="fc", approach="l1_unstructured", rate=0.6, rounds=5,
        config=config,
    )  # fmt: skip
    return float(run.summary()["seconds"])


def _measure(workers: int, epochs: int, seed: int) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pool.submit(int, 0).result()  # workers up before the clock matters
        futures = [pool.submit(timed_finetune, seed + i, epochs) for i in range(workers)]
        return [f.result() for f in futures]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    alone, pair = [], []
    for r in range(args.repeats):
        alone += _measure(1, args.epochs, seed=10 * r)
        pair += _measure(2, args.epochs, seed=10 * r)
    a, p = statistics.median(alone), statistics.median(pair)
    print(f"alone: median {a:.2f} s  {[round(t, 2) for t in alone]}")
    print(f"pair:  median {p:.2f} s  {[round(t, 2) for t in pair]}")
    print(f"pair / alone: {p / a:.2f}")
    if args.json:
        out = {
            "alone_seconds": alone,
            "pair_seconds": pair,
            "ratio_of_medians": p / a,
            "epochs_per_round": args.epochs,
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
