"""Scores of classifier attack models, cached on a digest of exactly their inputs.

The same attack model (same victim and shadow outputs, seed and recipe) is trained once however
many notebooks score that setting (Base, a grid setting scored again in 05, 06 or 07).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def attack_spec(call: dict) -> dict:
    """Cache key spec of one classifier attack model's scores: the attack, a digest of exactly its
    inputs (the victim's and the subsampled shadows' posteriors, labels and sensitivities), the
    seed, the training recipe, its optimizer kernel (:data:`wemem.training.fastpath.KERNEL`) and
    where it trains (CPU and CUDA round differently); on the CPU also the dropout masks
    (:data:`wemem.training.dropout.MASKS`) its attack MLP trains under."""
    from wemem.attacks.classifier import attack_device
    from wemem.training.dropout import MASKS
    from wemem.training.fastpath import KERNEL

    h = hashlib.sha256()
    for out in [call["victim"], *call["shadows"]]:
        for field in ("probs_in", "labels_in", "probs_out", "labels_out", "sens_in", "sens_out"):
            value = getattr(out, field)
            arr = np.ascontiguousarray(np.asarray(value if value is not None else []))
            h.update(f"{field}:{arr.dtype}:{arr.shape}".encode())
            h.update(arr.tobytes())
    (name,) = call["names"]
    device = attack_device(None).type
    return {
        "attack": name,
        "inputs": h.hexdigest(),
        "seed": int(call["seed"]),
        "epochs": int(call["epochs"]),
        "milestones": [int(m) for m in call["milestones"]],
        "device": device,
        "optimizer": KERNEL,
        **({"dropout": MASKS} if device == "cpu" else {}),
    }


def entry_of(frame: pd.DataFrame, name: str) -> dict:
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in frame.iloc[0].items()}
    (fpr, tpr), (s_in, s_out) = frame.attrs["roc"][name], frame.attrs["scores"][name]
    return {"row": row, "fpr": fpr, "tpr": tpr, "scores_in": s_in, "scores_out": s_out}


def frame_of(entry: dict) -> pd.DataFrame:
    name = entry["row"]["attack"]
    df = pd.DataFrame([entry["row"]])
    df.attrs["roc"] = {name: (np.asarray(entry["fpr"]), np.asarray(entry["tpr"]))}
    df.attrs["scores"] = {name: (np.asarray(entry["scores_in"]), np.asarray(entry["scores_out"]))}
    return df
