"""Benchmark: DP-SGD fine-tuning time per epoch relative to Base (`wemem.defenses.dp`).

Usage (from the repository root):
    python benchmarks/dp_overhead.py [--epochs 3] [--repeats 3] [--threads 1]

Both runs go through wemem's one training loop (`wemem.training.loop.fit`) on the same pruned model (the
fine-tuning setting: layer-wise L1 masks at sparsity 0.6 through torch.nn.utils.prune), the same
random data and the same initial weights; early stopping is disabled by a patience larger than the
run. Base = Adam (lr 1e-3, wd 5e-4), shuffled batches of 128. DP = DPSGDHooks (σ = 0.1, C = 1, plain
SGD): ⌊N/128⌋ Poisson batches of expected size 128 per epoch, per-example clipping, noise, RDP
accounting. Each DP per-sample mode is timed: `ghost` (Opacus ghost clipping: Linear norms without
per-sample gradients, two backward passes), `hooks` (per-sample gradients of every layer), and
`auto` (what DPSGDHooks picks: ghost without convolutions, hooks with them).

Reported: median over --repeats of the *training* seconds per epoch (`history[i]["train_seconds"]`,
the dev evaluation excluded, since it is the same for both) and the ratio DP / Base. Sizes: fc = the
cpu profile (2,160 training rows x 600 binary features, 50 classes); resnet18 = width 0.25 on 8x8
one-channel images (1,437 training rows, 10 classes), BatchNorm converted to GroupNorm for both
runs. The paper's DP took 40-111x Base (pyvacy, micro-batch clipping); targets here: <= 3x for fc,
<= 5x for the CNN.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from wemem.defenses.dp import DPSGDHooks, make_private_compatible
from wemem.models import build_model
from wemem.pruning import apply_sparsity, prunable_modules
from wemem.training.loop import Hooks, TrainConfig, fit, set_threads

BATCH_SIZE = 128
SPARSITY = 0.6


@dataclass(frozen=True)
class Case:
    label: str
    arch: str
    sample_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_dev: int
    width: float
    target: float


CASES = (
    Case("fc 2160x600, 50 cls", "fc", (600,), 50, 2160, 489, 1.0, 3.0),
    Case("resnet18 w0.25 1x8x8", "resnet18", (1, 8, 8), 10, 1437, 146, 0.25, 5.0),
)


def make_data(case: Case) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    n = case.n_train + case.n_dev
    if case.arch == "fc":
        x = torch.randint(0, 2, (n, *case.sample_shape), generator=gen).float()
    else:
        x = torch.randn((n, *case.sample_shape), generator=gen)
    y = torch.randint(0, case.num_classes, (n,), generator=gen)
    rows = torch.arange(n)
    return x, y, rows[: case.n_train], rows[case.n_train :]


def make_model(case: Case) -> nn.Module:
    """The case's model, GroupNorm-converted, pruned to SPARSITY (built afresh for every run)."""
    model = build_model(
        case.arch,
        num_classes=case.num_classes,
        in_channels=case.sample_shape[0],
        in_features=case.sample_shape[0] if case.arch == "fc" else None,
        width=case.width,
        seed=0,
    )
    model = make_private_compatible(model)
    apply_sparsity(
        prunable_modules(model, case.arch, "l1_unstructured"), SPARSITY, "l1_unstructured"
    )
    return model


def train_seconds_per_epoch(
    case: Case, data: tuple[torch.Tensor, ...], hooks: Callable[[], Hooks], epochs: int
) -> float:
    x, y, train_rows, dev_rows = data
    config = TrainConfig(max_epochs=epochs, patience=10**9, batch_size=BATCH_SIZE, seed=0)
    result, _ = fit(make_model(case), x, y, train_rows, dev_rows, config=config, hooks=hooks())
    assert result.epochs_run == epochs, result.stop_reason
    return statistics.median(row["train_seconds"] for row in result.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; median")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--epochs, --repeats and --threads must be >= 1")
    logging.getLogger("wemem.defenses.dp").setLevel(logging.ERROR)  # the GroupNorm notice
    set_threads(args.threads)

    runs: dict[str, Callable[[], Hooks]] = {
        "base": Hooks,
        "dp auto": lambda: DPSGDHooks(noise_multiplier=0.1, mode="auto"),
        "dp ghost": lambda: DPSGDHooks(noise_multiplier=0.1, mode="ghost"),
        "dp hooks": lambda: DPSGDHooks(noise_multiplier=0.1, mode="hooks"),
    }
    print(
        f"torch {torch.__version__}, cpu, {args.threads} thread(s), {args.epochs} epochs, median of "
        f"{args.repeats} runs, batch {BATCH_SIZE}, pruned to {SPARSITY}; training seconds per epoch"
    )
    header = f"{'model':<22} {'run':<9} {'s/epoch':>9} {'vs base':>8}  verdict"
    print(header)
    print("-" * len(header))
    for case in CASES:
        data = make_data(case)
        for make in runs.values():  # warm-up: allocator, kernels, lazy imports
            train_seconds_per_epoch(case, data, make, 1)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):  # interleaved so that drift hits every run alike
            for name, make in runs.items():
                times[name].append(train_seconds_per_epoch(case, data, make, args.epochs))
        base = statistics.median(times["base"])
        for name in runs:
            t = statistics.median(times[name])
            ratio = t / base
            verdict = ""  # ghost and hooks are shown for reference; auto is what DPSGDHooks runs
            if name == "dp auto":
                ok = "OK" if ratio <= case.target else "ABOVE TARGET"
                verdict = f"{ok} (target <= {case.target:g}x)"
            print(f"{case.label:<22} {name:<9} {t:>9.4f} {ratio:>7.2f}x  {verdict}")


if __name__ == "__main__":
    main()
