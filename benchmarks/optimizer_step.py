"""Benchmark: torch.optim's own step/zero_grad vs wemem's fast path (`wemem.training.fastpath`), and
the fused kernels the training code builds vs the single-tensor path it built before.

Usage (from the repository root):
    python benchmarks/optimizer_step.py [--repeats 5] [--threads 1]

Two pieces of the cpu profile, each run with the two step implementations interleaved in one
process (the other changes of the training loop are in both):

* ``prune``: Base iterative pruning (5 rounds, p = 0.6, <= 21 epochs per round, early stopping) of
  the FC victim on the synthetic pool, from a dense model trained first (not timed): Adam;
* ``attack``: one NN attack model (AttackMLP on 2,000 rows of 50 posteriors, 30 epochs, LR drops
  at 15 and 22): SGD with momentum.

Three implementations: ``fused`` (the optimizers the training code builds,
:func:`wemem.training.fastpath.adam`/``sgd``, stepped by :func:`optimizer_step`, which leaves them
to torch's fused ``step()``), ``single-tensor torch`` (optimizers built with ``fused=False``,
torch's own ``step()``) and ``single-tensor fast path`` (the same optimizers stepped by
:func:`optimizer_step`: the training code before the fused kernels). Figures are CPU seconds of the
process (``time.process_time``; the machine may be shared, so wall time is not used), min and
median over ``--repeats``. Each run's result (all parameters) is hashed: the two single-tensor rows
must print the same digest; ``fused`` differs from them in the last bits of the arithmetic
(another order of float operations), hence another digest.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from wemem.attacks import classifier
from wemem.data import load_pool, make_splits
from wemem.models import build_model
from wemem.pruning import prune_and_finetune
from wemem.training import fastpath, loop
from wemem.training.fastpath import optimizer_step, zero_grad

FUSABLE = fastpath._fusable
IMPLEMENTATIONS = {  # name: step, zero_grad, whether the optimizers are built fused
    "fused": (optimizer_step, zero_grad, True),
    "single torch": (lambda opt: opt.step(), lambda opt: opt.zero_grad(set_to_none=True), False),
    "single fast": (optimizer_step, zero_grad, False),
}


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for _, v in sorted(model.state_dict().items()):
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def prune_piece() -> Callable[[], str]:
    pool = load_pool("synthetic", label_noise=0.1)
    split = make_splits(pool.n_train, pool.n_test).victim
    dense = build_model("fc", num_classes=pool.num_classes, in_features=600, seed=0)
    loop.fit(dense, pool.x, pool.y, split.train, split.dev, config=loop.TrainConfig(max_epochs=30))

    def run() -> str:
        model = copy.deepcopy(dense)
        prune_and_finetune(
            model, pool.x, pool.y, split.train, split.dev, arch="fc",
            approach="l1_unstructured", rate=0.6, rounds=5,
            config=loop.TrainConfig(max_epochs=21, seed=0),
        )  # fmt: skip
        return digest(model)

    return run


def attack_piece() -> Callable[[], str]:
    rng = np.random.default_rng(0)
    feats = rng.dirichlet(np.full(50, 0.1), size=2000).astype(np.float32)
    member = (rng.random(2000) < 0.5).astype(np.int64)

    def run() -> str:
        model = classifier.train_attack_model(
            lambda: classifier.AttackMLP(50), feats, member, epochs=30, milestones=(15, 22)
        )
        return digest(model)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    loop.set_threads(args.threads)
    print(f"torch {torch.__version__}, cpu, {args.threads} thread(s), {args.repeats} repeats")
    print(f"{'piece':<7} {'implementation':<14} {'min s':>7} {'median s':>9}  digest")
    for piece, make in (("prune", prune_piece), ("attack", attack_piece)):
        run = make()
        run()  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        digests: dict[str, set[str]] = {name: set() for name in IMPLEMENTATIONS}
        for _ in range(args.repeats):
            for name, (step, zero, fused) in IMPLEMENTATIONS.items():
                fastpath._fusable = FUSABLE if fused else (lambda params: False)
                loop.optimizer_step, loop.zero_grad = step, zero
                classifier.optimizer_step, classifier.zero_grad = step, zero
                start = time.process_time()
                digests[name].add(run())
                seconds[name].append(time.process_time() - start)
        for name, s in seconds.items():
            print(
                f"{piece:<7} {name:<14} {min(s):>7.2f} {statistics.median(s):>9.2f}  "
                f"{', '.join(sorted(digests[name]))}"
            )
    fastpath._fusable = FUSABLE
    loop.optimizer_step, loop.zero_grad = optimizer_step, zero_grad
    classifier.optimizer_step, classifier.zero_grad = optimizer_step, zero_grad


if __name__ == "__main__":
    main()
