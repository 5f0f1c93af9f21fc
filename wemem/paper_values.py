"""Numbers the paper reports, as data (never typed into prose), with their source.

Source: the NDSS 2025 talk slides (``shared/spec/slides.txt``), as extracted in the project's spec
(``shared/spec/paper.md`` §8.1). Attack accuracy in %; the metric attacks report balanced
accuracy, the classifier attacks plain accuracy on the imbalanced victim set (spec §9.10).
"""

from __future__ import annotations

import pandas as pd

SOURCE = "NDSS 2025 talk slides, table 'Under RMR defense ...' (spec §8.1, T-RMR)"

_ATTACKS = ["conf", "entr", "mentr", "hconf", "samia", "nn", "top3_nn", "cl_nn"]

#: T-RMR: test accuracy and attack accuracy (%) per (data & model, λr or Base).
T_RMR = [
    (
        "cifar10",
        "densenet121",
        "base",
        80.01,
        [63.91, 62.05, 63.96, 64.33, 78.10, 75.85, 76.08, 78.44],
    ),
    (
        "cifar10",
        "densenet121",
        "0.01",
        78.96,
        [60.69, 58.43, 60.67, 60.78, 76.19, 73.50, 73.41, 76.22],
    ),
    (
        "cifar10",
        "densenet121",
        "0.1",
        77.81,
        [54.60, 53.06, 54.78, 54.84, 73.07, 72.89, 73.17, 73.13],
    ),
    (
        "cifar10",
        "densenet121",
        "1",
        69.83,
        [52.14, 50.97, 51.99, 51.93, 72.79, 73.27, 72.04, 73.03],
    ),
    (
        "cifar100",
        "densenet121",
        "base",
        42.44,
        [91.91, 91.02, 92.10, 92.09, 94.39, 93.98, 94.84, 94.36],
    ),
    (
        "cifar100",
        "densenet121",
        "0.01",
        41.03,
        [90.03, 88.68, 90.18, 90.24, 93.17, 92.78, 93.02, None],
    ),
    (
        "cifar100",
        "densenet121",
        "0.1",
        37.46,
        [60.12, 54.69, 60.07, 59.93, 73.30, 73.29, 72.45, 72.91],
    ),
    (
        "cifar100",
        "densenet121",
        "1",
        10.13,
        [50.88, 50.07, 50.88, 51.21, 71.32, 72.05, 71.67, 72.37],
    ),
]

#: T-time: victim fine-tuning wall-clock over the 5 rounds, seconds (DP in hours on the slide).
T_TIME = {
    ("cifar10", "vgg16bn"): {
        "base": 630,
        "rsw": 269,
        "rmr": 468,
        "swmr": 332,
        "ppb": 571,
        "adv": 275,
        "relaxloss": 434,
        "dp": 7 * 3600,
    },
    ("cifar100", "resnet18"): {
        "base": 458,
        "rsw": 174,
        "rmr": 611,
        "swmr": 259,
        "ppb": 643,
        "adv": 226,
        "relaxloss": 532,
        "dp": 9 * 3600,
    },
    ("cinic10", "densenet121"): {
        "base": 1616,
        "rsw": 463,
        "rmr": 2404,
        "swmr": 1498,
        "ppb": 1759,
        "adv": 495,
        "relaxloss": 1696,
        "dp": 50 * 3600,
    },
    ("location30", "fc"): {
        "base": 93,
        "rsw": 68,
        "rmr": 98,
        "swmr": 95,
        "ppb": 99,
        "adv": 195,
        "relaxloss": 88,
        "dp": 231,
    },
}


def rmr_table() -> pd.DataFrame:
    """T-RMR as a long table: dataset, arch, setting, test_acc, attack, paper (fractions)."""
    rows = []
    for dataset, arch, setting, test_acc, values in T_RMR:
        for attack, v in zip(_ATTACKS, values, strict=True):
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "setting": setting,
                    "test_acc": test_acc / 100,
                    "attack": attack,
                    "paper": None if v is None else v / 100,
                }
            )
    return pd.DataFrame(rows)


def base_attack_accuracy(dataset: str, arch: str) -> pd.Series | None:
    """The paper's Base attack accuracy per attack for (dataset, arch), or None if not reported."""
    t = rmr_table()
    t = t[(t.dataset == dataset) & (t.arch == arch) & (t.setting == "base")]
    return None if t.empty else t.set_index("attack")["paper"]


def time_table() -> pd.DataFrame:
    """T-time as a table: one row per (dataset, arch), seconds per defense, and ratios to Base."""
    rows = []
    for (dataset, arch), t in T_TIME.items():
        for defense, sec in t.items():
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "defense": defense,
                    "paper_seconds": sec,
                    "paper_ratio": sec / t["base"],
                }
            )
    return pd.DataFrame(rows)
