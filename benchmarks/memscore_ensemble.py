"""Benchmark: training the K mem-score models together (`train_ensemble`) vs one at a time.

Usage (from the repository root):
    python benchmarks/memscore_ensemble.py [--k 16] [--arch fc|resnet18] [--epochs 3]
                                           [--threads 1] [--device auto|cpu|cuda]

Both runs train the same K members (identical initial weights, identical per-member batch order)
on random subsets of one pool that lies on the device as a single tensor. Each row joins each subset
with probability 0.5, so subset sizes differ and the together run exercises its padded steps.

* sequential = `wemem.training.ensemble.train_sequential`: K runs of the project's loop `wemem.training.loop.fit`;
* together = `wemem.training.ensemble.train_ensemble`: one vmapped run over stacked parameters.

Sizes: fc = the cpu profile (random 2,160 x 600 binary features, 50 classes); resnet18 = width 0.25
on digits-like 8x8 one-channel images (1,437 rows, 10 classes). Times are whole runs (model
construction and BatchNorm recalibration included) after one untimed small warm-up of each.

The data are learnable (class prototypes plus noise), so the two runs can be compared: mean |dp| is
the mean absolute difference of the K x n posteriors, agree the fraction of (member, row) pairs whose
predicted class is the same, acc the together members' accuracy on the whole pool (half of it their
own training rows). The FC net has dropout, whose masks differ between the runs, so there the two
agree in distribution only. ResNet18 has none; its runs differ by float (on CUDA: bf16) rounding,
which ReLU kinks and Adam's normalization amplify over the steps, so expect close, not equal.

Target: together >= 5x faster on a GPU. On CPU the ratio is whatever the arithmetic allows: the
members' matrix products are as large either way, so only per-step Python and dispatch overhead is
saved, and the ratio can be near 1 (or below) for compute-bound nets.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from wemem.models import build_model
from wemem.training.ensemble import EnsembleConfig, train_ensemble, train_sequential
from wemem.training.loop import resolve_device, set_threads

TARGET = 5.0


@dataclass(frozen=True)
class Case:
    """One benchmark setting: an architecture and the shape and size of its random pool."""

    label: str
    arch: str
    sample_shape: tuple[int, ...]
    num_classes: int
    n: int
    width: float = 1.0


CASES = (
    Case("fc 2160x600", "fc", (600,), 50, n=2160),
    Case("resnet18 w0.25 1x8x8", "resnet18", (1, 8, 8), 10, n=1437, width=0.25),
)


def make_data(case: Case, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable pool: x (n, *sample_shape) float32 drawn around a per-class prototype, y (n,)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, case.num_classes, (case.n,), generator=gen)
    if case.arch == "fc":  # binary features, each 0.8 or 0.2 likely to be 1 depending on the class
        odds = 0.2 + 0.6 * torch.randint(
            0, 2, (case.num_classes, *case.sample_shape), generator=gen
        )
        x = torch.bernoulli(odds[y], generator=gen)
    else:
        proto = torch.randn((case.num_classes, *case.sample_shape), generator=gen)
        x = proto[y] + torch.randn((case.n, *case.sample_shape), generator=gen)
    return x.to(device), y.to(device)


def model_factory(case: Case):
    def make(k: int) -> torch.nn.Module:
        return build_model(
            case.arch,
            num_classes=case.num_classes,
            in_channels=case.sample_shape[0],
            in_features=case.sample_shape[0] if case.arch == "fc" else None,
            width=case.width,
            seed=100 + k,
        )

    return make


def timed(run, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def bench(case: Case, device: torch.device, *, k: int, epochs: int) -> dict:
    x, y = make_data(case, device)
    included = np.random.default_rng(0).random((k, case.n)) < 0.5
    make = model_factory(case)
    config = EnsembleConfig(epochs=epochs, seed=0)
    warm = EnsembleConfig(epochs=1, seed=0)
    for train in (train_sequential, train_ensemble):  # lazy imports, allocator, kernels
        train(make, x, y, included[:2], config=warm)
    seq_s, seq = timed(lambda: train_sequential(make, x, y, included, config=config), device)
    tog_s, tog = timed(lambda: train_ensemble(make, x, y, included, config=config), device)
    p_seq, p_tog = seq.predict_proba(x), tog.predict_proba(x)
    return {
        "sequential": seq_s,
        "together": tog_s,
        "ratio": seq_s / tog_s,
        "mean_diff": (p_seq - p_tog).abs().mean().item(),
        "agree": (p_seq.argmax(-1) == p_tog.argmax(-1)).float().mean().item(),
        "acc": (p_tog.argmax(-1) == y).float().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16, help="ensemble members")
    parser.add_argument("--arch", choices=("fc", "resnet18"), help="default: run both")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    if args.k < 2 or args.epochs < 1 or args.threads < 1:
        parser.error("--k must be >= 2, --epochs and --threads >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")

    set_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"torch {torch.__version__}, device {device.type}, threads {args.threads}, "
        f"K={args.k}, {args.epochs} epochs, batch 128, subsets: each row with probability 0.5"
    )
    header = (
        f"{'model':<22} {'sequential s':>12} {'together s':>11} {'speed-up':>9} "
        f"{'mean |dp|':>9} {'agree':>6} {'acc':>5}  verdict (GPU target >= {TARGET:.0f}x)"
    )
    print(header)
    print("-" * len(header))
    for case in CASES:
        if args.arch is not None and case.arch != args.arch:
            continue
        r = bench(case, device, k=args.k, epochs=args.epochs)
        if device.type == "cuda":
            verdict = "OK" if r["ratio"] >= TARGET else "BELOW TARGET"
        else:
            verdict = "CPU: no target"
        print(
            f"{case.label:<22} {r['sequential']:>12.2f} {r['together']:>11.2f} "
            f"{r['ratio']:>8.2f}x {r['mean_diff']:>9.1e} {r['agree']:>6.3f} {r['acc']:>5.3f}  {verdict}"
        )


if __name__ == "__main__":
    main()
