"""Benchmark: per-epoch time of wemem's training loop (`wemem.training.loop.fit`) vs a bare PyTorch loop.

Usage (from the repository root):
    python benchmarks/train_loop.py [--model fc|resnet18] [--epochs 5] [--repeats 3]
                                    [--threads 1] [--device auto|cpu|cuda]

Both loops train the same model (identical initial weights) on the same random data, which lies on
the device as one tensor, for the same number of epochs; wemem's early stopping is disabled by a
patience larger than the run. Per epoch both do the same work:

* train: Adam (lr 1e-3, weight decay 5e-4), the training rows shuffled (torch.randperm) and cut into
  batches of 128 that are gathered by index from the on-device tensor, cross-entropy, backward,
  step; on CUDA both run the forward pass under bf16 autocast (as wemem does) and image models are
  channels_last (as wemem's Experiment builds them);
* evaluate: one dev-accuracy pass in eval mode under no_grad, in chunks of 2048 dev rows;
* keep a copy of the state dict whenever dev accuracy strictly improves. The bare loop does this
  too (same rule), so the copies are *included* in both timings; the number of copies each loop
  made and the cost of one copy are printed below the table.

What wemem adds on top (and what the ratio measures): the Hooks indirection (epoch_indices,
batch_plan with a CPU generator, a Batch object per batch, the loss hook), the running train-loss
sum, softmax before argmax in the dev pass, the per-epoch history and the disabled tqdm bar.

Sizes: fc = the cpu profile (synthetic: 2,160 training rows x 600 binary features, 50 classes, 489
dev rows); resnet18 = width 0.25 on digits-like 8x8 one-channel images (1,437 training rows, i.e.
the whole digits pool P, 146 dev rows, 10 classes) and, on CUDA only, full width on CIFAR-shaped
32x32x3 images (22,500 training rows, 4,250 dev rows, 10 classes). Each timing is one whole run
(optimizer creation included) divided by the epochs; the median over --repeats is reported, after
one untimed warm-up run of each loop. Target: wemem / bare <= 1.10.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wemem.models import build_model
from wemem.training.loop import TrainConfig, fit, resolve_device, set_threads

TARGET = 1.10
BATCH_SIZE = 128
EVAL_BATCH_SIZE = 2048


@dataclass(frozen=True)
class Case:
    """One benchmark setting: a model and the shape and size of its random data."""

    label: str
    arch: str
    sample_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_dev: int
    width: float = 1.0
    cuda_only: bool = False


CASES = (
    Case("fc", "fc", (600,), 50, n_train=2160, n_dev=489),
    Case("resnet18 w0.25 1x8x8", "resnet18", (1, 8, 8), 10, n_train=1437, n_dev=146, width=0.25),
    Case(
        "resnet18 w1 3x32x32",
        "resnet18",
        (3, 32, 32),
        10,
        n_train=22_500,
        n_dev=4_250,
        cuda_only=True,
    ),
)


def make_data(
    case: Case, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random x (n, *sample_shape) float32 and y (n,) int64 on ``device``; train rows then dev rows."""
    gen = torch.Generator().manual_seed(0)
    n = case.n_train + case.n_dev
    if case.arch == "fc":
        x = torch.randint(0, 2, (n, *case.sample_shape), generator=gen).float()
    else:
        x = torch.randn((n, *case.sample_shape), generator=gen)
    y = torch.randint(0, case.num_classes, (n,), generator=gen)
    rows = torch.arange(n)
    return (
        x.to(device),
        y.to(device),
        rows[: case.n_train].to(device),
        rows[case.n_train :].to(device),
    )


def make_model(case: Case, device: torch.device) -> nn.Module:
    model = build_model(
        case.arch,
        num_classes=case.num_classes,
        in_channels=case.sample_shape[0],
        in_features=case.sample_shape[0] if case.arch == "fc" else None,
        width=case.width,
        seed=0,
    ).to(device)
    if device.type == "cuda" and case.arch != "fc":
        model = model.to(memory_format=torch.channels_last)
    return model


def amp(device: torch.device) -> contextlib.AbstractContextManager:
    return (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def bare_fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    train_rows: torch.Tensor,
    dev_rows: torch.Tensor,
    *,
    epochs: int,
) -> tuple[dict[str, torch.Tensor], int]:
    """The hand-written loop: train, evaluate dev, copy the state on improvement.

    Returns the best-dev state dict and how many copies were made.
    """
    device = x.device
    torch.manual_seed(0)  # as fit seeds shuffling and dropout
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    best_acc, best_state, copies = -1.0, {}, 0
    for _ in range(epochs):
        model.train()
        rows = train_rows[torch.randperm(len(train_rows), device=device)]
        for idx in rows.split(BATCH_SIZE):
            opt.zero_grad(set_to_none=True)
            with amp(device):
                logits = model(x[idx])
            loss = F.cross_entropy(logits.float(), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        correct = torch.zeros((), dtype=torch.long, device=device)
        with torch.no_grad():
            for idx in dev_rows.split(EVAL_BATCH_SIZE):
                with amp(device):
                    logits = model(x[idx])
                correct += (logits.argmax(1) == y[idx]).sum()
        acc = correct.item() / len(dev_rows)
        if acc > best_acc:
            best_acc, best_state, copies = acc, state_copy(model), copies + 1
    return best_state, copies


def wemem_fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    train_rows: torch.Tensor,
    dev_rows: torch.Tensor,
    *,
    epochs: int,
) -> tuple[dict[str, torch.Tensor], int]:
    """wemem's loop (Base hooks) for exactly ``epochs`` epochs.

    Returns the best-dev state dict and how many copies fit made (strict dev improvements).
    """
    config = TrainConfig(max_epochs=epochs, patience=10**9, batch_size=BATCH_SIZE, seed=0)
    result, _ = fit(model, x, y, train_rows, dev_rows, config=config)
    assert result.epochs_run == epochs, result.stop_reason
    best, copies = -1.0, 0
    for row in result.history:
        if row["dev_acc"] > best:
            best, copies = row["dev_acc"], copies + 1
    return result.best_state, copies


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = run()
    sync(device)
    return time.perf_counter() - start, out


def bench(case: Case, device: torch.device, *, epochs: int, repeats: int) -> dict:
    """Median seconds per epoch of both loops, interleaved so that drift hits both alike."""
    x, y, train_rows, dev_rows = make_data(case, device)
    template = make_model(case, device)
    loops = {"bare": bare_fit, "wemem": wemem_fit}
    for loop in loops.values():  # warm-up: allocator, kernels, lazy imports
        loop(copy.deepcopy(template), x, y, train_rows, dev_rows, epochs=1)
    per_epoch: dict[str, list[float]] = {name: [] for name in loops}
    copies: dict[str, list[int]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            model = copy.deepcopy(template)
            seconds, (_, n) = timed(
                lambda loop=loop, model=model: loop(
                    model, x, y, train_rows, dev_rows, epochs=epochs
                ),
                device,
            )
            per_epoch[name].append(seconds / epochs)
            copies[name].append(n)
    copy_seconds, _ = timed(lambda: state_copy(template), device)
    bare, ours = (statistics.median(per_epoch[name]) for name in loops)
    return {
        "case": case.label,
        "bare": bare,
        "wemem": ours,
        "ratio": ours / bare,
        "copies": copies,
        "copy_ms": copy_seconds * 1e3,
    }


def copies(result: dict, loop: str) -> str:
    return "/".join(str(n) for n in result["copies"][loop])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("fc", "resnet18"), help="default: run both")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per loop; median")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--epochs, --repeats and --threads must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")

    set_threads(args.threads)
    device = resolve_device(args.device)
    cases = [
        c
        for c in CASES
        if (args.model is None or c.arch == args.model)
        and (device.type == "cuda" or not c.cuda_only)
    ]
    print(
        f"torch {torch.__version__}, {args.epochs} epochs, median of {args.repeats} runs, "
        f"batch {BATCH_SIZE}, target wemem/bare <= {TARGET:.2f}"
    )
    header = (
        f"{'model':<22} {'device':<6} {'threads':>7} {'bare s/epoch':>13} "
        f"{'wemem s/epoch':>14} {'ratio':>6}  verdict"
    )
    print(header)
    print("-" * len(header))
    results = []
    for case in cases:
        r = bench(case, device, epochs=args.epochs, repeats=args.repeats)
        results.append(r)
        verdict = "OK" if r["ratio"] <= TARGET else "ABOVE TARGET"
        print(
            f"{r['case']:<22} {device.type:<6} {args.threads:>7} {r['bare']:>13.4f} "
            f"{r['wemem']:>14.4f} {r['ratio']:>5.2f}x  {verdict}"
        )
    print()
    print("State-dict copies on dev improvement (included in both timings), per timed run:")
    for r in results:
        print(
            f"  {r['case']:<22} bare {copies(r, 'bare')}, wemem {copies(r, 'wemem')}; "
            f"one copy {r['copy_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
