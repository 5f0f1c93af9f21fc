"""How long a run takes, before it runs: FLOPs per sample, a measured calibration, estimates.

A job's time on a device class is a two-term roofline (the calibration of
``params/calibration.yaml``, written by ``benchmarks/calibrate.py``):

$$ t = n_\\text{steps} \\cdot o_f + \\frac{c \\cdot S \\cdot F_\\text{train} + E \\cdot F_\\text{fwd}}{R_f} $$

with o_f the fixed seconds per optimizer step and R_f the achieved FLOP/s of the model family f,
S the sample-epochs, E the forward-only samples, F the FLOPs per sample (training = 3 × forward,
counted by ``torch.utils.flop_counter.FlopCounterMode`` on the model ``wemem`` builds) and c the
job's cost factor (DP-SGD, ADV). Small models are overhead-bound (o_f dominates), large CNNs
compute-bound (R_f dominates). A family with a measured ``step_curve`` (the CPU's CNNs: a third
probe at the smoke scale's geometry) replaces the line by the curve through its probes
(:func:`step_seconds`): narrow CNNs on 32x32 inputs cost far more per FLOP there. Epoch counts
are upper bounds (early stopping cuts them); ``expected=True`` scales early-stopped epochs by the
fractions measured on the ``cpu`` profile's cache (``early_stopping`` in the calibration). Each
run also pays the notebook overhead (kernel, imports, figures, HTML export).

A batch (one profile) shares the model cache: :func:`estimate_runs` counts every cached model once,
in run order, assuming an empty cache at the start.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from wemem.errors import ParamsError
from wemem.planning.jobs import Job
from wemem.planning.workload import plan_run

__all__ = [
    "BF16_PEAK_TFLOPS",
    "CALIBRATION_FILE",
    "FAMILIES",
    "bf16_peak_tflops",
    "device_classes",
    "estimate",
    "estimate_runs",
    "estimate_table",
    "forward_flops_per_sample",
    "job_seconds",
    "job_table",
    "load_calibration",
    "new_shares",
    "plan_run",
    "step_seconds",
    "train_flops_per_sample",
]

CALIBRATION_FILE = Path(__file__).resolve().parents[2] / "params" / "calibration.yaml"

#: Job architecture → calibration family.
FAMILIES = {
    "fc": "fc",
    "resnet18": "resnet18",
    "vgg16bn": "vgg16",
    "densenet121": "densenet121",
    "attack_mlp": "attack_mlp",
    "shokri": "attack_mlp",
    "samia": "samia",
}

#: Published dense bf16 tensor peaks (no sparsity), TFLOP/s, by a substring of the device name;
#: the first match wins, so more specific names come first.
BF16_PEAK_TFLOPS: dict[str, float] = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM
    "H200": 989.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A10G": 70.0,
    "A10": 125.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}


def bf16_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a CUDA device name (``torch.cuda.get_device_name``), or ``None``."""
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return peak
    return None


# ----------------------------------------------------------------------------- FLOPs


def _model(arch: str, width: float, shape: tuple[int, ...], num_classes: int, stem_maxpool: bool):
    if arch == "attack_mlp":
        from wemem.attacks.classifier import AttackMLP

        return AttackMLP(shape[0])
    if arch == "samia":
        from wemem.attacks.samia import SAMIA

        return SAMIA(num_classes)
    from wemem.models import build_model

    return build_model(
        arch,
        num_classes=num_classes,
        in_channels=shape[0] if len(shape) == 3 else 3,
        in_features=math.prod(shape),
        width=width,
        stem_maxpool=stem_maxpool,
        seed=0,
    )


@functools.lru_cache(maxsize=512)
def _forward_flops(arch, width, shape, num_classes, stem_maxpool) -> float:
    if arch == "shokri":  # per-class d → 64 → 2 MLPs trained in one batched loop (bmm)
        return 2.0 * (shape[0] * 64 + 64 * 2)
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _model(arch, width, shape, num_classes, stem_maxpool)
    # train mode: no fused inference fast paths (the Transformer's is invisible to the counter),
    # two samples so that BatchNorm on 1×1 maps works; dropout adds no FLOPs.
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros((2, *shape)))
    return counter.get_total_flops() / 2


def forward_flops_per_sample(
    arch: str,
    width: float,
    input_shape: Iterable[int],
    num_classes: int,
    *,
    stem_maxpool: bool = True,
) -> float:
    """Forward FLOPs (2 per multiply-add) of one sample of ``arch`` (memoised).

    ``arch``: one of :data:`wemem.models.ARCHITECTURES`, or ``attack_mlp`` (the attack MLP on
    ``input_shape = (d,)``), ``samia`` (SAMIA over ``num_classes`` tokens), ``shokri`` (its
    ``d → 64 → 2`` per-class model, counted by hand).
    """
    shape = tuple(int(d) for d in input_shape)
    return _forward_flops(arch, float(width), shape, int(num_classes), bool(stem_maxpool))


def train_flops_per_sample(
    arch: str,
    width: float,
    input_shape: Iterable[int],
    num_classes: int,
    *,
    stem_maxpool: bool = True,
) -> float:
    """Training FLOPs of one sample: forward + backward ≈ 3 × forward (backward = 2 × forward:
    the gradients with respect to the weights and to the activations)."""
    fwd = forward_flops_per_sample(arch, width, input_shape, num_classes, stem_maxpool=stem_maxpool)
    return 3.0 * fwd


def _flops(job: Job) -> tuple[float, float]:
    """(training FLOPs, forward-only FLOPs) of all of a job's models."""
    fwd = forward_flops_per_sample(
        job.arch, job.width, job.input_shape, job.num_classes, stem_maxpool=job.stem_maxpool
    )
    return 3.0 * fwd * job.sample_epochs * job.cost_factor, fwd * job.n_models * job.eval_samples


# ----------------------------------------------------------------------------- calibration


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "device_classes" not in data:
        raise ParamsError(f"{path}: expected a mapping with 'device_classes'")
    return data


def load_calibration(path: str | Path | None = None) -> dict:
    """The calibration mapping (``params/calibration.yaml`` unless ``path`` is given)."""
    path = Path(path or CALIBRATION_FILE)
    if not path.exists():
        raise ParamsError(f"calibration file {path} missing; run benchmarks/calibrate.py --write")
    return _load(str(path), path.stat().st_mtime)


def device_classes(calibration: dict | None = None) -> list[str]:
    """Names of the device classes in the calibration, in file order."""
    return list((calibration or load_calibration())["device_classes"])


def _device(calibration: dict, device_class: str) -> dict:
    try:
        return calibration["device_classes"][device_class]
    except KeyError:
        known = ", ".join(calibration["device_classes"])
        raise ParamsError(f"device class {device_class!r} unknown; calibrated: {known}") from None


def job_seconds(
    job: Job, device_class: str, *, calibration: dict | None = None, expected: bool = False
) -> float:
    """Seconds for all of ``job``'s models on ``device_class`` (no cache sharing).

    ``expected=False``: epoch upper bounds; ``True``: early-stopped epochs scaled by the measured
    fractions of the calibration's ``early_stopping``.
    """
    cal = calibration or load_calibration()
    dev = _device(cal, device_class)
    fam = dev["families"][FAMILIES[job.arch]]
    scale = 1.0
    if expected and job.early_stopping:
        scale = float(cal["early_stopping"][job.early_stopping]["fraction"])
    train, fwd = _flops(job)
    steps = job.steps / (job.n_models if job.vectorized and dev.get("shared_step_overhead") else 1)
    if fam.get("step_curve"):
        # measured seconds per step at the step's FLOPs; forward-only rows in batches of the
        # job's size at a third of a training step of the same rows (forward = 1/3 of training)
        curve = fam["step_curve"]
        trains = steps * step_seconds(curve, train / steps) if steps else 0.0
        rows = job.n_models * job.eval_samples
        batch = 3.0 * fwd / rows * job.batch_size if rows else 0.0  # a training step's FLOPs
        evals = rows / job.batch_size * step_seconds(curve, batch) / 3.0 if rows else 0.0
        return scale * (trains + evals)
    compute = (train + fwd) / float(fam["flops_per_s"])
    return scale * (steps * float(fam["step_overhead_s"]) + compute)


def step_seconds(curve: list[list[float]], flops: float) -> float:
    """Seconds of one training step of ``flops`` FLOPs on a measured ``step_curve``: points
    ``[GFLOP per step, ms per step]`` (``benchmarks/calibrate.py``'s probes, at least two),
    interpolated linearly between them and extended along the last segment above them; below the
    smallest probe the step costs what that probe's did (there the fixed cost per step rules).

    Why a curve and not one straight line ``o + F / R``: on the CPU a narrow CNN on 32x32 inputs
    (the smoke scale's width 1/16) takes several times what the line through a narrow probe on 8x8
    and a full-width probe on 32x32 predicts: per-operation and memory costs that do not scale
    with FLOPs. A probe at that geometry puts it on the curve.
    """
    points = sorted((float(g) * 1e9, float(ms) / 1e3) for g, ms in curve)
    if len(points) < 2:
        raise ParamsError(f"step_curve: got {curve!r}; allowed values are two or more points")
    g = flops
    if g <= points[0][0]:
        return points[0][1]
    for (g0, t0), (g1, t1) in zip(points, points[1:], strict=False):
        if g <= g1 or (g1, t1) == points[-1]:
            return t0 + (t1 - t0) * (g - g0) / (g1 - g0)
    raise AssertionError("unreachable")


def new_shares(jobs: list[Job], cached: Iterable[str] = ()) -> list[float]:
    """Per job, the fraction of its models trained here: not in ``cached`` nor made by an earlier
    job of ``jobs`` (1 for uncached jobs and for ``fresh`` ones, which retrain anyway)."""
    seen, out = set(cached), []
    for job in jobs:
        keys = job.cache_keys
        new = len(set(keys) - seen)
        out.append(1.0 if not keys or job.fresh else new / len(keys))
        seen.update(keys)
    return out


def estimate(
    jobs: list[Job],
    device_class: str,
    *,
    calibration: dict | None = None,
    cached: Iterable[str] = (),
    expected: bool = False,
) -> float:
    """Seconds of training and inference in ``jobs`` on ``device_class``; models whose cache key is
    in ``cached`` (or repeated within ``jobs``) count once. Excludes the notebook overhead
    (``device_classes.<name>.notebook_overhead.seconds``; :func:`estimate_runs` adds it)."""
    shares = new_shares(jobs, cached)
    return sum(
        share * job_seconds(job, device_class, calibration=calibration, expected=expected)
        for share, job in zip(shares, jobs, strict=True)
    )


def job_table(jobs: list[Job], *, cached: Iterable[str] = ()):
    """One row per job: what, model family, models, epochs per model, samples, TFLOPs, and the
    share of its models not already cached (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for share, job in zip(new_shares(jobs, cached), jobs, strict=True):
        train, fwd = _flops(job)
        rows.append(
            {
                "what": job.what,
                "arch": job.arch,
                "models": job.n_models,
                "epochs": job.epochs,
                "samples": job.samples,
                "eval_samples": job.eval_samples,
                "tflops": (train + fwd) / 1e12,
                "new_share": share,
            }
        )
    return pd.DataFrame(rows)


def estimate_runs(
    runs,
    *,
    device_class_names: list[str] | None = None,
    calibration: dict | None = None,
    dedup: bool = True,
    expected: bool = False,
    notebooks_dir: Path | None = None,
):
    """One row per run (:class:`wemem.batch.runner.RunSpec`, in order): notebook, run, models trained,
    epochs (model-epochs), sample-epochs, TFLOPs, models found in the cache of an earlier run, and
    ``seconds <class>`` per device class (the notebook overhead included). With ``dedup`` the runs
    share one cache that starts empty, as ``wemem reproduce`` does."""
    import pandas as pd

    cal = calibration or load_calibration()
    names = device_class_names or device_classes(cal)
    seen: set[str] = set()
    rows = []
    for spec in runs:
        jobs = plan_run(spec.stem, spec.params, notebooks_dir=notebooks_dir)
        shares = new_shares(jobs, seen if dedup else ())
        within = new_shares(jobs)
        flops = [sum(_flops(j)) for j in jobs]
        row: dict[str, Any] = {
            "notebook": spec.stem,
            "run": spec.run_name,
            "models": round(
                sum(s * j.n_models for s, j in zip(shares, jobs, strict=True) if j.samples)
            ),
            "epochs": round(sum(s * j.model_epochs for s, j in zip(shares, jobs, strict=True))),
            "sample_epochs": round(
                sum(s * j.sample_epochs for s, j in zip(shares, jobs, strict=True))
            ),
            "tflops": sum(s * f for s, f in zip(shares, flops, strict=True)) / 1e12,
            "cached_models": round(
                sum(
                    (w - s) * j.n_models
                    for s, w, j in zip(shares, within, jobs, strict=True)
                    if j.samples
                )
            ),
        }
        for name in names:
            overhead = float(_device(cal, name)["notebook_overhead"]["seconds"])
            row[f"seconds {name}"] = overhead + sum(
                s * job_seconds(j, name, calibration=cal, expected=expected)
                for s, j in zip(shares, jobs, strict=True)
            )
        rows.append(row)
        if dedup:
            seen.update(k for j in jobs for k in j.cache_keys)
    return pd.DataFrame(rows)


def estimate_table(
    profile: str,
    *,
    only: str | None = None,
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
    **kw: Any,
):
    """:func:`estimate_runs` over the runs ``wemem reproduce --profile`` would execute."""
    from wemem.batch.runner import discover_runs, validate_runs

    runs = discover_runs(profile, only=only, notebooks_dir=notebooks_dir, params_dir=params_dir)
    validate_runs(runs)
    return estimate_runs(runs, notebooks_dir=notebooks_dir, **kw)
