"""CPU time of training with torch's dropout against wemem's 16-bit-mask dropout.

Two workloads of the cpu profile, each run with ``torch.nn.Dropout`` and with
:class:`wemem.training.dropout.Dropout` in alternation (so that a machine whose speed drifts
affects both alike), one thread, process CPU time, best of ``--repeats``:

* the FC model (600 → 256 → 128 → 50, dropout 0.1) for 150 Adam steps of batch 128;
* the attack MLP (150 → 512 → 256 → 128 → 2, dropout 0.2) for 30 epochs on 2,000 rows.

Prints one line per workload and, with ``--json PATH``, writes the figures there.

    python benchmarks/dropout.py [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wemem.attacks import classifier
from wemem.models import build_model
from wemem.training.fastpath import optimizer_step, zero_grad


def _swap(model: nn.Module, kind: str) -> nn.Module:
    """``model`` with every dropout layer torch's (``kind == "torch"``) or wemem's."""
    from wemem.training.dropout import Dropout

    for name, child in model.named_children():
        if isinstance(child, nn.Dropout):
            p = child.p
            setattr(model, name, nn.Dropout(p) if kind == "torch" else Dropout(p))
        else:
            _swap(child, kind)
    return model


def fc_steps(kind: str, steps: int = 150) -> float:
    """CPU seconds of ``steps`` training steps of the cpu profile's FC model."""
    torch.manual_seed(0)
    x, y = torch.randn(6000, 600), torch.randint(0, 50, (6000,))
    model = _swap(build_model("fc", num_classes=50, in_features=600, width=1.0, seed=0), kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    model.train()
    t0 = time.process_time()
    for _ in range(steps):
        rows = torch.randint(0, 6000, (128,))
        zero_grad(opt)
        F.cross_entropy(model(x.index_select(0, rows)), y.index_select(0, rows)).backward()
        optimizer_step(opt)
    return time.process_time() - t0


def attack_mlp(kind: str) -> float:
    """CPU seconds of one attack MLP's training (30 epochs, 2,000 rows, 150 features)."""
    rng = np.random.default_rng(0)
    feats = rng.random((2000, 150)).astype(np.float32)
    member = rng.integers(0, 2, 2000)
    t0 = time.process_time()
    classifier.train_attack_model(
        lambda: _swap(classifier.AttackMLP(150), kind),
        feats,
        member,
        epochs=30,
        milestones=[15, 22],
        device="cpu",
    )
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"machine": platform.processor() or platform.machine(), "repeats": args.repeats}
    for name, work in [("fc_150_steps", fc_steps), ("attack_mlp_30_epochs", attack_mlp)]:
        work("torch"), work("wemem")  # warm-up
        best = {"torch": float("inf"), "wemem": float("inf")}
        for _ in range(args.repeats):
            for kind in best:
                best[kind] = min(best[kind], work(kind))
        out[name] = {**{f"{k}_s": round(v, 4) for k, v in best.items()}}
        out[name]["ratio"] = round(best["wemem"] / best["torch"], 3)
        print(f"{name}: torch {best['torch']:.3f} s, wemem {best['wemem']:.3f} s "
              f"(ratio {out[name]['ratio']:.2f})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
