"""Tables for the overview notebook: datasets with their split sizes, and the registry of names."""

from __future__ import annotations

import pandas as pd

from wemem import data as wdata
from wemem.names import ATTACKS, DEFENSES


def dataset_table(*, n_shadows: int = 5, seed: int = 7) -> pd.DataFrame:
    """One row per dataset: kind, classes, input shape, pool sizes and the §5.2 split sizes.

    Paper datasets use the paper's pool sizes (no data needed: splits are index arithmetic);
    offline ones are generated to measure them. ``available`` tells whether the files are present.
    """
    rows = []
    for name, info in wdata.DATASETS.items():
        if info.pool_sizes is not None:
            n_train, n_test = info.pool_sizes
        else:
            pool = wdata.load_pool(name)
            n_train, n_test = pool.n_train, len(pool.y) - pool.n_train
        sp = wdata.make_splits(n_train, n_test, n_shadows=n_shadows, seed=seed)
        rows.append(
            {
                "dataset": name,
                "kind": info.kind,
                "classes": info.num_classes,
                "input": "×".join(map(str, info.input_shape)),
                "pool P": n_train,
                "test pool T": n_test,
                "members": len(sp.victim.train),
                "dev": len(sp.victim.dev),
                "non-members": len(sp.victim.test),
                "shadow members": len(sp.shadows[0].train),
                "all-member accuracy": len(sp.victim.train)
                / (len(sp.victim.train) + len(sp.victim.test)),
                "available": "offline"
                if info.offline
                else ("yes" if wdata.is_available(name) else "no"),
            }
        )
    return pd.DataFrame(rows).set_index("dataset")


def names_table() -> pd.DataFrame:
    """Paper labels, code names and the official code's names of defenses and attacks."""
    rows = [
        {
            "kind": "defense",
            "paper": n.label,
            "code": n.code,
            "official": n.official,
            "what": n.note,
        }
        for n in DEFENSES.values()
    ] + [
        {"kind": "attack", "paper": n.label, "code": n.code, "official": n.official, "what": n.note}
        for n in ATTACKS.values()
    ]
    return pd.DataFrame(rows)
