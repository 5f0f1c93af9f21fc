"""Benchmark: fine-tuning time of RSW and SWMR relative to Base over 5-round iterative pruning.

Usage (from the repository root):
    python benchmarks/defense_time.py [--repeats 3] [--threads 1] [--device auto|cpu|cuda]

The paper reports the wall-clock of the victim's 5 fine-tuning rounds (per-epoch dev evaluation
included, spec §4.3) as RSW/Base = 0.43x and SWMR/Base = 0.53x on CIFAR10-VGG16; the targets here
are <= 0.45x and <= 0.55x.

Setting (the cpu profile): the FC model on ``load_pool("synthetic", label_noise=0.1)``, the victim
split of ``make_splits`` (2,160 members in 50 classes, n_c ≈ 43, 489 dev rows), a dense model
trained first with Base (not timed), then for each defense a copy of it is pruned iteratively
(5 rounds, p = 0.6, <= 21 epochs per round, batch 128) by ``prune_and_finetune``; the time is that
call's wall-clock. Defenses: RSW(L→H) and SWMR(H→L) (the headline directions) with the paper's
window rule w = 2/9·n_c, s = (n_c − w)/20 (``window_rule``), τ = the 90th percentile of the victim
members' scores, λr = 0.1, official two-optimizer RMR.

Mem-scores are a *loss proxy*, not Feldman–Zhang estimates: 1 − (the dense model's true-class
probability), min–max normalized over the training pool. Only their order and the τ split matter
for timing.

Two protocols are timed, each the median of ``--repeats`` interleaved runs:

* ``early stop``: patience 5 on dev accuracy, as the paper. The ratio then mixes two effects: fewer
  rows per epoch and a different number of epochs (Base fine-tuning a converged model tends to
  stop early).
* ``fixed 21``: no early stopping, 21 epochs in every round, so the ratio isolates the per-epoch
  cost (rows trained, the SWMR split, two optimizers, the per-epoch dev pass).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from wemem.data import load_pool, make_splits
from wemem.defenses import make_hooks_factory, window_rule
from wemem.models import build_model
from wemem.pruning import prune_and_finetune
from wemem.training.loop import TrainConfig, fit, predict_proba, resolve_device, set_threads

TARGETS = {"rsw_l2h": 0.45, "swmr_h2l": 0.55}
PAPER = {"rsw_l2h": 0.43, "swmr_h2l": 0.53}
PROTOCOLS = {"early stop": 5, "fixed 21": 10**6}


def loss_proxy_scores(model, x, y, n_train: int) -> np.ndarray:
    """(n_train,) 1 − p(true class), min–max normalized: a stand-in for mem-scores."""
    rows = torch.arange(n_train, device=x.device)
    p_true = predict_proba(model, x, rows).gather(1, y[:n_train, None]).squeeze(1)
    s = (1.0 - p_true).double().cpu().numpy()
    return (s - s.min()) / max(s.max() - s.min(), 1e-12)


def run_once(dense, pool, split, factory, *, patience: int) -> dict:
    model = copy.deepcopy(dense)
    cfg = TrainConfig(max_epochs=21, patience=patience, seed=0)
    t0 = time.perf_counter()
    res = prune_and_finetune(
        model,
        pool.x,
        pool.y,
        split.train,
        split.dev,
        arch="fc",
        approach="l1_unstructured",
        rate=0.6,
        rounds=5,
        config=cfg,
        hooks_factory=factory,
    )
    if pool.x.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    history = [h for r in res.rounds for h in r.fit.history]
    return {
        "seconds": seconds,
        "epochs": len(history),
        "rows": sum(h["n_train"] for h in history),
        "dev": res.rounds[-1].fit.best_dev_acc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per defense; median")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    set_threads(args.threads)
    device = resolve_device(args.device)

    pool = load_pool("synthetic", label_noise=0.1, device=device)
    split = make_splits(pool.n_train, pool.n_test).victim
    dense = build_model("fc", num_classes=pool.num_classes, in_features=600, seed=0).to(device)
    fit(dense, pool.x, pool.y, split.train, split.dev, config=TrainConfig(max_epochs=30))
    scores = loss_proxy_scores(dense, pool.x, pool.y, pool.n_train)
    labels = pool.y[: pool.n_train].cpu().numpy()
    n_c = len(split.train) / pool.num_classes
    width, step, _ = window_rule(n_c, fraction=2 / 9)
    tau = float(np.quantile(scores[split.train], 0.9))
    window = {"width": width, "step": step}
    factories = {
        "base": make_hooks_factory("base"),
        "rsw_l2h": make_hooks_factory("rsw_l2h", scores=scores, labels=labels, **window),
        "swmr_h2l": make_hooks_factory(
            "swmr_h2l", scores=scores, labels=labels, **window, tau=tau, lambda_r=0.1
        ),
    }
    print(
        f"torch {torch.__version__}, {device.type}, {args.threads} thread(s), median of "
        f"{args.repeats}; FC on synthetic (label noise 0.1), {len(split.train)} members, "
        f"{pool.num_classes} classes, n_c = {n_c:.1f}"
    )
    print(
        f"window rule: w = {width}, s = {step}; tau = {tau:.3f} (90th percentile of the loss "
        f"proxy, {np.mean(scores[split.train] >= tau):.1%} high-risk); lambda_r = 0.1"
    )
    header = (
        f"{'protocol':<11} {'defense':<9} {'seconds':>8} {'epochs':>6} {'rows':>7} "
        f"{'dev acc':>7} {'x Base':>7} {'paper':>6} {'target':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for protocol, patience in PROTOCOLS.items():
        runs: dict[str, list[dict]] = {name: [] for name in factories}
        for _ in range(args.repeats):
            for name, factory in factories.items():
                runs[name].append(run_once(dense, pool, split, factory, patience=patience))
        med = {n: statistics.median(r["seconds"] for r in rs) for n, rs in runs.items()}
        for name, rs in runs.items():
            ratio = med[name] / med["base"]
            target = TARGETS.get(name)
            verdict = "" if target is None else ("OK" if ratio <= target else "ABOVE TARGET")
            print(
                f"{protocol:<11} {name:<9} {med[name]:>8.2f} {rs[0]['epochs']:>6} "
                f"{rs[0]['rows']:>7} {rs[0]['dev']:>7.3f} {ratio:>6.2f}x "
                f"{PAPER.get(name, 1.0):>5.2f}x {'' if target is None else f'{target:.2f}x':>7}"
                f"  {verdict}"
            )


if __name__ == "__main__":
    main()
