"""Benchmark: SAMIA feature extraction (sensitivity) and attack-model training speed.

Usage (from the repository root):
    python benchmarks/attack_features.py [--n 2000] [--device auto] [--samia-n 10000]

1. Sensitivity (m = 10, ε = 1e-3) of `--n` samples, three ways: batched as implemented (one
   forward of (m + 1)·B samples per batch; also with only a tenth of the rows picked, as for a
   shadow under `attack_train_max`), the official layout (one clean and one perturbed
   forward per batch), and a naive per-sample loop (one forward of m + 1 copies per sample).
   Best of `--repeats` timings (the per-sample loop: one). Models: the tabular FC model (600 features, 50 classes) and a small CNN (ResNet18 at width
   1/8, 10 classes, 3×32×32 inputs). Untrained weights: timing does not depend on them.
2. Attack-model training: seconds per epoch of SAMIA and of the NN attack MLP on `--samia-n`
   random features (C = 10 and 100), extrapolated linearly to the paper's CIFAR attack-training
   set (5 shadows × (22,500 + 8,250) = 153,750 samples) and 100 epochs; extrapolations labelled.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wemem.attacks.classifier import AttackMLP, train_attack_model
from wemem.attacks.samia import SAMIA
from wemem.attacks.sensitivity import full_fp32, sensitivity
from wemem.models import build_model
from wemem.training.loop import resolve_device

PAPER_N = 5 * (22_500 + 8_250)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(dev: torch.device, repeats: int, fn, *args, **kwargs) -> float:
    """Best wall time of ``repeats`` calls (the machine may be shared: the minimum is the least
    disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        sync(dev)
        start = time.perf_counter()
        fn(*args, **kwargs)
        sync(dev)
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def official_layout(model, x, rows, *, m=10, eps=1e-3, batch_size=512):
    """Two forwards per batch (clean, then m perturbed copies), as the official code does."""
    out = []
    with full_fp32():
        for chunk in torch.as_tensor(rows, device=x.device).split(batch_size):
            xb = x[chunk]
            p = torch.softmax(model(xb), 1)
            xs = xb.repeat(m, *([1] * (xb.dim() - 1)))
            q = torch.softmax(model(xs + eps * torch.randn_like(xs)), 1).view(m, len(xb), -1)
            out.append((q - p).abs().mean(0) / eps)
    return torch.cat(out)


@torch.no_grad()
def naive(model, x, rows, *, m=10, eps=1e-3):
    """One sample at a time: a forward of its m + 1 copies."""
    out = []
    with full_fp32():
        for r in rows:
            xi = x[int(r)].unsqueeze(0)
            xs = torch.cat([xi, xi.repeat(m, *([1] * (xi.dim() - 1)))])
            xs[1:] += eps * torch.randn_like(xs[1:])
            p = torch.softmax(model(xs), 1)
            out.append((p[1:] - p[0]).abs().mean(0) / eps)
    return torch.stack(out)


def bench_sensitivity(name: str, model, x, device: torch.device, repeats: int) -> None:
    model = model.to(device).eval()
    rows = np.arange(len(x))
    sensitivity(model, x, rows[:64])  # warm-up
    t_ours = timed(device, repeats, sensitivity, model, x, rows)
    # a shadow under attack_train_max: a tenth of the rows, every batch's noise still drawn
    picked = np.sort(np.random.default_rng(0).permutation(len(rows))[: len(rows) // 10])
    t_pick = timed(device, repeats, sensitivity, model, x, rows, positions=picked)
    t_off = timed(device, repeats, official_layout, model, x, rows)
    t_naive = timed(device, 1, naive, model, x, rows)
    print(
        f"  {name:<34} batched {t_ours:7.3f} s | 10 % picked {t_pick:7.3f} s "
        f"| official 2-pass {t_off:7.3f} s | per-sample loop {t_naive:7.3f} s "
        f"| speed-up vs loop {t_naive / t_ours:6.1f}x"
    )


def bench_training(name: str, build, width: int, n: int, device: torch.device) -> None:
    rng = np.random.default_rng(0)
    feats = rng.random((n, width), dtype=np.float32)
    member = rng.integers(0, 2, n)
    train_attack_model(build, feats[:256], member[:256], epochs=1, device=device)  # warm-up
    t = timed(device, 1, train_attack_model, build, feats, member, epochs=1, device=device)
    per_epoch = t
    paper = per_epoch * PAPER_N / n * 100
    print(
        f"  {name:<34} {per_epoch:7.3f} s/epoch on {n:,} samples "
        f"| extrapolated paper run (153,750 samples × 100 epochs): {paper / 60:7.1f} min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples for sensitivity")
    parser.add_argument("--samia-n", type=int, default=5_000, help="attack training samples")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    print(f"Sensitivity of {args.n:,} samples (m = 10, ε = 1e-3, batch 512):")
    fc = build_model("fc", num_classes=50, in_features=600, seed=0)
    bench_sensitivity(
        "FC 600 → 256 → 128 → 50", fc, torch.rand(args.n, 600, device=device), device, args.repeats
    )
    cnn = build_model("resnet18", num_classes=10, width=0.125, seed=0)
    x_img = torch.rand(args.n, 3, 32, 32, device=device)
    bench_sensitivity("ResNet18 ×1/8, 3×32×32 → 10", cnn, x_img, device, args.repeats)

    print("Attack-model training (SGD, batch 128):")
    for c in (10, 100):
        bench_training(f"SAMIA, C = {c}", lambda c=c: SAMIA(c), 3 * c, args.samia_n, device)
        bench_training(f"NN MLP, C = {c}", lambda c=c: AttackMLP(c), c, args.samia_n, device)


if __name__ == "__main__":
    main()
