"""Benchmark: this machine's training throughput per model family, for the cost model.

Usage (from the repository root):
    python benchmarks/calibrate.py [--device-class NAME] [--device auto|cpu|cuda] [--threads 1]
                                   [--steps N] [--families F ...] [--write]
                                   [--early-stopping-from CACHE_DIR]
                                   [--notebook-overhead-from outputs/reproduce-cpu.json]

Every family is timed at two probes (three for the CNNs), all through the code that trains it in the notebooks
(classifiers: `wemem.training.loop.fit`, Adam, batches gathered from one on-device tensor, bf16 autocast
and channels_last on CUDA; attack models: `wemem.attacks.classifier.train_attack_model`, SGD). The
small probe is the overhead-bound end (the `tiny` profile's width-1/8 ResNet on 8x8 digits, the
`cpu` profile's FC on 600 features, a 3-feature attack MLP), the large probe the compute-bound
end (full-width CNNs on 3x32x32, the FC on Texas' 6,169 features). Each probe runs whole epochs of
--steps batches (8 x --steps for the small ones, and the fastest of --repeats runs); the first
epoch is a warm-up and the fastest later epoch counts (the epoch time
`history[i]["seconds"]`, with a 2-row dev set: the dev pass adds ~nothing but waits for the
epoch's CUDA kernels). Per step t = o + F / R, with F the step's training FLOPs (3 x forward,
`wemem.planning.costing.train_flops_per_sample`), so the two probes give the fixed seconds per step o and
the achieved FLOP/s R. The CNNs have a third probe between them, the smoke scale's geometry (width
1/16 on 3x32x32): on a CPU it costs several times what that line predicts, so their entries also
get a `step_curve` through all three probes, which the cost model uses instead of the line.

Prints the probes and the fitted (R, o) per family; with --write, stores them in
params/calibration.yaml under --device-class (default: cpu-<cores>core, or gpu-<device name>).
--early-stopping-from reads the cached dense and pruned models' summaries (run the `cpu` profile
first) and stores the fraction of the epoch upper bound that early stopping left.
CPU probes take about a minute with one thread (the profiles' `threads: 1`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from wemem.attacks.classifier import AttackMLP, train_attack_model
from wemem.attacks.samia import SAMIA
from wemem.models import build_model
from wemem.planning.costing import CALIBRATION_FILE, train_flops_per_sample
from wemem.training.device import prepare_model, resolve_device
from wemem.training.loop import TrainConfig, fit, set_threads

SCRIPT = "benchmarks/calibrate.py"

# family -> (small probe, [narrow probe,] large probe); a probe = (arch, width, input shape,
# classes, batch size). The CNNs' narrow probe is the smoke scale's geometry (params/smoke.yaml's
# width on 3x32x32): it sits far above the line through the other two, so the CNNs get a
# step_curve through all three (wemem.planning.costing.step_seconds).
PROBES = {
    "fc": (("fc", 1.0, (600,), 50, 128), ("fc", 1.0, (6169,), 100, 128)),
    **{
        family: (
            (arch, 0.125, (1, 8, 8), 10, 128),
            (arch, 0.0625, (3, 32, 32), 10, 128),
            (arch, 1.0, (3, 32, 32), 10, 128),
        )
        for family, arch in (
            ("resnet18", "resnet18"),
            ("vgg16", "vgg16bn"),
            ("densenet121", "densenet121"),
        )
    },
    "attack_mlp": (("attack_mlp", 1.0, (3,), 2, 128), ("attack_mlp", 1.0, (300,), 2, 1024)),
    "samia": (("samia", 1.0, (6,), 2, 128), ("samia", 1.0, (60,), 20, 128)),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_classifier(probe: tuple, device: torch.device, *, steps: int, epochs: int) -> float:
    """Fastest seconds per training step over epochs 2..``epochs`` of ``fit``."""
    arch, width, shape, classes, batch = probe
    n = batch * steps
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((n + 2, *shape), generator=gen).to(device)
    y = torch.randint(0, classes, (n + 2,), generator=gen).to(device)
    model = build_model(
        arch,
        num_classes=classes,
        in_channels=shape[0] if len(shape) == 3 else 3,
        in_features=math.prod(shape),
        width=width,
        seed=0,
    )
    model = prepare_model(model, arch, device)  # channels_last for the CNNs on CUDA
    rows = torch.arange(n + 2, device=device)
    config = TrainConfig(batch_size=batch, max_epochs=epochs, patience=epochs, seed=0)
    result, _ = fit(model, x, y, rows[:n], rows[n:], config=config)
    # "seconds" ends after the dev pass, whose .item() waits for the epoch's CUDA kernels
    return min(h["seconds"] for h in result.history[1:]) / steps


def time_attack(probe: tuple, device: torch.device, *, steps: int, epochs: int) -> float:
    """Seconds per step of ``train_attack_model``: the fastest of two ``epochs // 2``-epoch runs
    minus the fastest of two one-epoch runs."""
    arch, _, shape, classes, batch = probe
    n = batch * steps
    rng = np.random.default_rng(0)
    feats = rng.random((n, shape[0]), dtype=np.float32)
    member = rng.integers(0, 2, n)

    def build():
        return SAMIA(classes) if arch == "samia" else AttackMLP(shape[0])

    def run(e: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        train_attack_model(build, feats, member, device=device, epochs=e, batch_size=batch)
        sync(device)
        return time.perf_counter() - t0

    run(1)  # warm-up
    long = max(2, epochs // 2)
    one, many = min(run(1) for _ in range(2)), min(run(long) for _ in range(2))
    return max(many - one, 1e-9) / ((long - 1) * steps)


def fit_family(family: str, device: torch.device, *, steps: int, epochs: int, repeats: int) -> dict:
    """Time a family's probes and solve t = o + F / R for (o, R) through the smallest and the
    largest; with three probes, also the step curve through all (``[GFLOP, ms]`` per step)."""
    points = []
    for probe in PROBES[family]:
        arch, width, shape, classes, batch = probe
        flops = batch * train_flops_per_sample(arch, width, shape, classes)
        timer = time_attack if arch in ("attack_mlp", "samia") else time_classifier
        big_cnn = arch in ("resnet18", "vgg16bn", "densenet121") and width == 1.0
        # millisecond steps: more of them, and the fastest of several runs (shared CPUs are noisy)
        n_steps = steps if big_cnn else 8 * steps
        runs = 1 if big_cnn or timer is time_attack else repeats  # time_attack takes a min itself
        seconds = min(timer(probe, device, steps=n_steps, epochs=epochs) for _ in range(runs))
        points.append((flops, seconds, probe))
    (f1, t1, _), (f2, t2, _) = points[0], points[-1]
    rate = (f2 - f1) / (t2 - t1) if t2 > t1 else f2 / t2
    overhead = max(0.0, t1 - f1 / rate)
    if overhead == 0.0:
        rate = f2 / t2
    fit = {"flops_per_s": rate, "step_overhead_s": overhead, "points": points}
    if len(points) > 2:
        fit["step_curve"] = [
            [float(f"{f / 1e9:.4g}"), float(f"{t * 1e3:.4g}")] for f, t, _ in sorted(points)
        ]
    return fit


def default_class(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device, threads: int) -> str:
    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {os.cpu_count()} cores, {threads} torch thread(s)"
    )
    return f"{what}; torch {torch.__version__}; {dt.date.today().isoformat()}"


def early_stopping(cache_dir: Path) -> dict:
    """Mean fraction of the epoch bound run: dense (max_epochs) and Base-like pruning (rounds ×
    finetune epochs; window defenses excluded, their bound is the window's)."""
    dense, finetune = [], []
    for kind, out in (("dense", dense), ("pruned", finetune)):
        for meta in sorted((cache_dir / kind).glob("*/*.json")):
            spec = json.loads(meta.read_text())["spec"]
            summary = torch.load(meta.with_suffix(".pt"), weights_only=False)["summary"]
            if kind == "dense":
                out.append(summary["epochs_run"] / spec["train"]["max_epochs"])
            elif not any(w in spec["defense"] for w in ("rsw", "swmr", "window")):
                out.append(summary["epochs"] / (spec["rounds"] * spec["finetune"]["max_epochs"]))
    source = f"{SCRIPT} --early-stopping-from {cache_dir}"
    return {
        name: {
            "fraction": round(statistics.mean(v), 3),
            "models": len(v),
            "measured_on": f"cpu profile model cache; {dt.date.today().isoformat()}",
            "benchmark": source,
        }
        for name, v in (("dense", dense), ("finetune", finetune))
        if v
    }


def notebook_overhead(path: Path) -> dict:
    """Kernel start, imports, figures and HTML export: the 00_overview run of a batch summary."""
    summary = json.loads(path.read_text())
    run = next(r for r in summary["runs"] if r["notebook"] == "00_overview")
    return {
        "seconds": round(float(run["seconds"]), 1),
        "measured_on": f"{summary['cpu_count']} cores, torch {summary['torch']}; {summary['end']}",
        "benchmark": f"{SCRIPT} --notebook-overhead-from {path} (00_overview trains nothing)",
    }


def write(path: Path, name: str, entry: dict, stopping: dict | None) -> None:
    """Replace one device class (and optionally ``early_stopping``); keep the header comments."""
    text = path.read_text() if path.exists() else ""
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    data = yaml.safe_load(text) or {} if text else {}
    data.setdefault("device_classes", {})[name] = entry
    if stopping:
        data["early_stopping"] = stopping
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device-class", help="default: cpu-<cores>core or gpu-<device name>")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (profiles: 1)")
    parser.add_argument("--steps", type=int, help="batches per epoch (default: 2 CPU, 40 CUDA)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per probe, first = warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="runs of a small probe; fastest")
    parser.add_argument("--families", nargs="*", default=list(PROBES), choices=list(PROBES))
    parser.add_argument("--write", action="store_true", help=f"update {CALIBRATION_FILE.name}")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--early-stopping-from", type=Path, metavar="CACHE_DIR")
    parser.add_argument(
        "--notebook-overhead-from",
        type=Path,
        metavar="REPRODUCE_JSON",
        help="outputs/reproduce-<profile>.json: 00_overview's seconds (a run that trains nothing)",
    )
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is a warm-up)")

    set_threads(args.threads)
    device = resolve_device(args.device)
    steps = args.steps or (40 if device.type == "cuda" else 2)
    name = args.device_class or default_class(device)
    where = machine(device, args.threads)
    print(f"device class {name}: {where}; {steps} steps per epoch, {args.epochs} epochs per probe")
    header = f"{'family':<12} {'probe':<34} {'GFLOP/step':>11} {'ms/step':>9}"
    print(header)
    print("-" * len(header))
    families = {}
    t0 = time.perf_counter()
    for family in args.families:
        r = fit_family(family, device, steps=steps, epochs=args.epochs, repeats=args.repeats)
        for flops, seconds, (arch, width, shape, classes, batch) in r["points"]:
            probe = f"{arch} w{width:g} {'x'.join(map(str, shape))} C{classes} B{batch}"
            print(f"{family:<12} {probe:<34} {flops / 1e9:>11.3f} {seconds * 1e3:>9.2f}")
        probes = "; ".join(
            f"{a} w{w:g} {'x'.join(map(str, s))} C{c} B{b}: {t * 1e3:.2f} ms/step"
            for _, t, (a, w, s, c, b) in r["points"]
        )
        families[family] = {
            "flops_per_s": float(f"{r['flops_per_s']:.4g}"),
            "step_overhead_s": float(f"{r['step_overhead_s']:.4g}"),
            "measured_on": where,
            "benchmark": f"{SCRIPT} --threads {args.threads} --steps {steps}",
            "probes": probes,
            **({"step_curve": r["step_curve"]} if "step_curve" in r else {}),
        }
    print(
        f"\n{'family':<12} {'GFLOP/s':>9} {'overhead ms/step':>17}   ({time.perf_counter() - t0:.0f} s)"
    )
    for family, f in families.items():
        print(f"{family:<12} {f['flops_per_s'] / 1e9:>9.1f} {f['step_overhead_s'] * 1e3:>17.3f}")

    if args.write:
        old = {}
        if args.calibration.exists():
            old = (yaml.safe_load(args.calibration.read_text()) or {}).get("device_classes", {})
        entry = dict(old.get(name, {}))
        entry.update(kind=device.type, shared_step_overhead=device.type == "cuda")
        if args.notebook_overhead_from:
            entry["notebook_overhead"] = notebook_overhead(args.notebook_overhead_from)
        entry["families"] = {**entry.get("families", {}), **families}
        stopping = early_stopping(args.early_stopping_from) if args.early_stopping_from else None
        write(args.calibration, name, entry, stopping)
        print(f"wrote {name} to {args.calibration}")


if __name__ == "__main__":
    main()
