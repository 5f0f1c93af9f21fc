"""Benchmark: one training epoch of full-width ResNet18 on CIFAR-shaped data, against the roofline.

Usage (from the repository root):
    python benchmarks/gpu_epoch.py [--samples 22500] [--batch-size 128] [--width 1.0]
                                   [--device auto|cpu|cuda] [--threads 1] [--json]
    python benchmarks/gpu_epoch.py --samples 512      # CPU smoke check

The paper profile's unit of work: a victim's 22,500 CIFAR10 members (spec §5.2), one epoch of
`wemem.training.loop.fit` (Adam, batches of 128 gathered from one on-device tensor; on CUDA bf16
autocast, and the model in channels_last as `wemem.experiment.replicate.Experiment.build` makes it). Random
data of the CIFAR shape (3x32x32, 10 classes) lies on the device; the dev set is 2 rows, so the
epoch is training only. One untimed warm-up epoch on at most 10 batches comes first (allocator,
cuDNN heuristics, lazy imports); the timed epoch is the wall time of `fit(max_epochs=1)` between
two device synchronisations.

Prints images/s, the achieved TFLOP/s (training FLOPs = 3 x forward, counted by
`wemem.planning.costing.train_flops_per_sample`) and its fraction of the device's published dense bf16
peak (`wemem.planning.costing.BF16_PEAK_TFLOPS`; n/a for an unknown device or the CPU). --json adds one JSON
line with the same figures. The result calibrates `params/calibration.yaml` (resnet18 family).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from wemem.models import build_model
from wemem.planning.costing import bf16_peak_tflops, train_flops_per_sample
from wemem.training.device import prepare_model, resolve_device
from wemem.training.loop import TrainConfig, fit, set_threads

SHAPE, CLASSES = (3, 32, 32), 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch(model, x, y, n: int, batch_size: int) -> float:
    """Wall seconds of one ``fit`` epoch on the first ``n`` rows (dev = the last 2 rows)."""
    rows = torch.arange(len(y), device=x.device)
    config = TrainConfig(batch_size=batch_size, max_epochs=1, patience=1, seed=0)
    sync(x.device)
    t0 = time.perf_counter()
    fit(model, x, y, rows[:n], rows[-2:], config=config)
    sync(x.device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=22_500, help="training rows (one epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=1.0, help="ResNet18 width multiplier")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    if args.samples < 1 or args.batch_size < 1 or args.threads < 1:
        parser.error("--samples, --batch-size and --threads must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")

    set_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((args.samples + 2, *SHAPE), generator=gen).to(device)
    y = torch.randint(0, CLASSES, (args.samples + 2,), generator=gen).to(device)
    model = build_model("resnet18", num_classes=CLASSES, width=args.width, seed=0)
    model = prepare_model(model, "resnet18", device)  # channels_last on CUDA

    epoch(model, x, y, min(args.samples, 10 * args.batch_size), args.batch_size)  # warm-up
    seconds = epoch(model, x, y, args.samples, args.batch_size)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    flops = train_flops_per_sample("resnet18", args.width, SHAPE, CLASSES)
    tflops = args.samples * flops / seconds / 1e12
    peak = bf16_peak_tflops(name) if device.type == "cuda" else None
    result = {
        "device": name or platform.machine(),
        "device_type": device.type,
        "torch": torch.__version__,
        "samples": args.samples,
        "batch_size": args.batch_size,
        "width": args.width,
        "seconds": round(seconds, 4),
        "images_per_s": round(args.samples / seconds, 1),
        "train_gflop_per_image": round(flops / 1e9, 4),
        "achieved_tflops": round(tflops, 3),
        "bf16_peak_tflops": peak,
        "roofline_fraction": round(tflops / peak, 4) if peak else None,
    }
    print(
        f"resnet18 w{args.width:g} on {args.samples} x 3x32x32, batch {args.batch_size}, "
        f"{result['device']} ({device.type}), torch {torch.__version__}"
    )
    print(
        f"{'epoch s':>9} {'images/s':>10} {'GFLOP/img':>10} {'TFLOP/s':>9} {'bf16 peak':>10} {'fraction':>9}"
    )
    fraction = f"{tflops / peak:.1%}" if peak else "n/a"
    print(
        f"{seconds:>9.2f} {args.samples / seconds:>10.0f} {flops / 1e9:>10.3f} {tflops:>9.2f} "
        f"{(f'{peak:g}' if peak else 'n/a'):>10} {fraction:>9}"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
