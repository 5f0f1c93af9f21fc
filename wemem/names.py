"""One registry of names: paper labels, code names and the official code's names.

Names match the paper (STYLE.md, principle 6). Code uses lower snake case; figures and tables use the
display label; ``official`` is the name used by the official WeMeM code (``--defend`` values), so a
reader of that code can map each run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    code: str
    label: str
    official: str | None = None
    note: str = ""


DEFENSES: dict[str, Name] = {
    n.code: n
    for n in [
        Name("base", "Base", "base", "early stopping and L2 (weight decay 5e-4)"),
        Name("rsw_h2l", "RSW(H→L)", "slide", "ranking + sliding window, high mem-score first"),
        Name("rsw_l2h", "RSW(L→H)", "slide_re", "ranking + sliding window, low first (headline)"),
        Name("rmr", "RMR", "ml2", "mem-score-based adaptive L2"),
        Name("swmr_h2l", "SWMR(H→L)", "slide_ml2", "sliding window + adaptive L2 (headline)"),
        Name("swmr_l2h", "SWMR(L→H)", "slide_re_ml2", "sliding window + adaptive L2, low first"),
        Name("random_window", "RSW(random)", "random", "sliding window over a random order"),
        Name("ppb", "PPB", "ppb", "pair-based posterior balancing"),
        Name("adv", "ADV", "adv", "adversarial regularization (Nasr et al.)"),
        Name("dp", "DP", "dp", "DP-SGD"),
        Name("relaxloss", "RelaxLoss", "relaxloss", "RelaxLoss (Chen et al.)"),
    ]
}

ATTACKS: dict[str, Name] = {
    n.code: n
    for n in [
        Name("conf", "Conf", "conf", "true-class confidence, per-class threshold"),
        Name("entr", "Entr", "entr", "prediction entropy, per-class threshold"),
        Name("mentr", "Mentr", "mentr", "modified entropy (Song & Mittal), per-class threshold"),
        Name("hconf", "Hconf", "hconf", "top-1 confidence, one global threshold"),
        Name(
            "hconf_official",
            "Hconf (official)",
            "hconf",
            "true-class confidence, one global threshold",
        ),
        Name(
            "samia", "SAMIA", "samia", "self-attention classifier on posterior, sensitivity, label"
        ),
        Name("nn", "NN", "nn", "MLP on the posterior"),
        Name("top3_nn", "Top3-NN", "nn_top3", "MLP on the three largest posteriors"),
        Name("cl_nn", "Cl-NN", "nn_cls", "MLP on posterior and one-hot label"),
        Name(
            "nn_sens",
            "NN-Sens",
            "nn_sens_cls",
            "MLP on posterior, sensitivity and label (this project's reading; not released)",
        ),
        Name(
            "shokri",
            "Shokri",
            None,
            "per-class shadow attack models (this project's reading; not released)",
        ),
        Name("lira", "LiRA", None, "likelihood-ratio attack (Carlini et al.), beyond the paper"),
    ]
}

#: The paper's 8 attack columns (spec §6.2: Conf, Entr, Mentr, Hconf, SAMIA, NN, Top3-NN, Cl-NN),
#: its Hconf read as the official code computes it (``hconf_official``, spec §9.9). Paper
#: comparisons (T-RMR, Fig. 6/7 means, notebook 12's deltas) average these only; the project's
#: ``hconf`` (top-1), its readings of the two unreleased attacks and LiRA are reported beside them.
PAPER_ATTACKS = ("conf", "entr", "mentr", "hconf_official", "samia", "nn", "top3_nn", "cl_nn")

ARCHITECTURES: dict[str, Name] = {
    n.code: n
    for n in [
        Name("resnet18", "ResNet18", "resnet18"),
        Name("vgg16bn", "VGG16", "vgg16bn"),
        Name("densenet121", "DenseNet121", "densenet121"),
        Name("fc", "FC", "columnfc"),
    ]
}

PRUNING_APPROACHES: dict[str, Name] = {
    n.code: n
    for n in [
        Name("l1_unstructured", "L1 unstructured", "iter_pruning", "layer-wise weight magnitude"),
        Name("l1_structured", "L1 structured", None, "Conv2d output filters by L1 norm"),
        Name("l2_structured", "L2 structured", None, "Conv2d output filters by L2 norm"),
    ]
}


#: Code names of the datasets: the paper's six and the two offline ones (the loaders and their
#: sizes are in :mod:`wemem.data.registry`, whose table has exactly these keys).
DATASETS: tuple[str, ...] = (
    "cifar10",
    "cifar100",
    "cinic10",
    "texas100",
    "location30",
    "purchase100",
    "digits",
    "synthetic",
)

#: Code names of the architectures and pruning approaches (the keys of the tables above).
ARCH_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)
APPROACHES: tuple[str, ...] = tuple(PRUNING_APPROACHES)
#: Normalization layers of the CNNs: the paper's BatchNorm, or GroupNorm for DP-SGD.
NORMS: tuple[str, ...] = ("batch", "group")
#: How a pool's mem-scores are obtained: Feldman–Zhang subsampling, the k-fold proxy, or the
#: authors' released files (spec §3).
MEMSCORE_METHODS: tuple[str, ...] = ("fz", "kfold", "released")


def label(code: str) -> str:
    """Display label of a defense, attack, architecture or pruning approach code name."""
    for table in (DEFENSES, ATTACKS, ARCHITECTURES, PRUNING_APPROACHES):
        if code in table:
            return table[code].label
    return code
