"""Spec §5.2 victim/shadow splits: exact sizes of the table, disjointness, stable digests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from wemem.data import ModelSplit, Splits, make_splits
from wemem.errors import DataFormatError, ParamsError

# dataset: (|P|, |T|, victim (train, dev, test), shadow (train, dev, test)), from spec §5.2.
TABLE = {
    "cifar10": (50_000, 10_000, (22_500, 4_250, 8_250), (22_500, 4_250, 8_250)),
    "cifar100": (50_000, 10_000, (22_500, 4_250, 8_250), (22_500, 4_250, 8_250)),
    "cinic10": (90_000, 31_499, (40_500, 12_239, 23_760), (40_500, 12_239, 23_760)),
    "texas100": (53_864, 13_466, (24_238, 5_494, 10_666), (24_238, 5_494, 10_666)),
    "location30": (4_008, 1_002, (1_803, 409, 794), (1_803, 409, 794)),
    "purchase100": (157_859, 39_465, (71_036, 16_101, 31_257), (71_037, 16_101, 31_257)),
}


def sizes(m: ModelSplit) -> tuple[int, int, int]:
    return len(m.train), len(m.dev), len(m.test)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_sizes_match_the_paper_table(name: str) -> None:
    n_train, n_test, victim, shadow = TABLE[name]
    s = make_splits(n_train, n_test)
    assert sizes(s.victim) == victim
    assert len(s.shadows) == 5
    assert all(sizes(m) == shadow for m in s.shadows)
    assert [m.seed for m in s.models] == [7, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("name", ["cifar10", "purchase100"])
def test_same_rows_as_the_official_float_calls(name: str) -> None:
    # pretrain_modi.py passes floats (0.5, 0.1, 0.66); integer counts must draw the same rows.
    n_train, n_test, _, _ = TABLE[name]
    s = make_splits(n_train, n_test, n_shadows=2)
    v_half, a_half = train_test_split(np.arange(n_train), test_size=0.5, random_state=7)
    for half, m in ((v_half, s.victim), (a_half, s.shadows[0]), (a_half, s.shadows[1])):
        tr, rest = train_test_split(half, test_size=0.1, random_state=m.seed)
        pool = np.concatenate([rest, np.arange(n_train, n_train + n_test)])
        dev, test = train_test_split(pool, test_size=0.66, random_state=m.seed)
        np.testing.assert_array_equal(m.train, tr)
        np.testing.assert_array_equal(m.dev, dev)
        np.testing.assert_array_equal(m.test, test)


def test_parts_are_disjoint_and_members_come_from_p() -> None:
    n_train, n_test = 1_000, 300
    s = make_splits(n_train, n_test)
    for m in s.models:
        assert m.train.dtype == m.dev.dtype == m.test.dtype == np.int64
        assert not set(m.train) & set(m.dev)
        assert not set(m.train) & set(m.test)
        assert not set(m.dev) & set(m.test)
        assert m.train.max() < n_train
        assert len(set(m.train)) == len(m.train)
        # dev + test = the held-out 10% of the half plus all of T.
        t_rows = set(range(n_train, n_train + n_test))
        assert t_rows <= set(m.dev) | set(m.test)
        assert len(m.train) + len(m.dev) + len(m.test) == 500 + n_test
    # Victim members and shadow members come from different halves of P.
    victim_rows = set(s.victim.train)
    assert all(not victim_rows & set(m.train) for m in s.shadows)


def test_shadows_differ_from_victim_and_each_other() -> None:
    s = make_splits(1_000, 300)
    trains = [frozenset(m.train.tolist()) for m in s.models]
    assert len(set(trains)) == len(trains)
    # Shadow training sets are heavily overlapping 90% subsamples of the same half.
    assert len(trains[1] & trains[2]) > 0.7 * len(trains[1])


def test_digest_is_stable_across_calls_and_runs() -> None:
    a, b = make_splits(100, 20, n_shadows=2), make_splits(100, 20, n_shadows=2)
    assert a.digest == b.digest
    # Pinned value: sklearn's RandomState stream is frozen, so this must never change.
    assert a.digest == "7aa81b21b9d522b06bc3f59288ed898d6fc1dc693ffdef5bb3455c61fcef5816"
    assert make_splits(100, 20, n_shadows=2, seed=8).digest != a.digest
    assert make_splits(100, 20, n_shadows=3).digest != a.digest


def test_npz_round_trip(tmp_path) -> None:
    s = make_splits(200, 50, n_shadows=3)
    path = s.to_npz(tmp_path / "splits.npz")
    back = Splits.from_npz(path)
    assert back.digest == s.digest
    for m, n in zip(s.models, back.models, strict=True):
        np.testing.assert_array_equal(m.train, n.train)
        np.testing.assert_array_equal(m.dev, n.dev)
        np.testing.assert_array_equal(m.test, n.test)
        assert m.seed == n.seed
    assert [p.name for p in tmp_path.iterdir()] == ["splits.npz"]  # no temp file left behind


def test_npz_with_changed_arrays_is_rejected(tmp_path) -> None:
    s = make_splits(200, 50, n_shadows=1)
    path = s.to_npz(tmp_path / "splits.npz")
    with np.load(path) as f:
        arrays = dict(f)
    arrays["m1_train"] = arrays["m1_train"][::-1].copy()
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match="digest"):
        Splits.from_npz(path)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"member_fraction": 1.0}, "member_fraction"),
        ({"dev_fraction": 0.0}, "dev_fraction"),
        ({"n_shadows": -1}, "n_shadows"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, field: str) -> None:
    with pytest.raises(ParamsError, match=field):
        make_splits(100, 20, **kwargs)


def test_too_small_pool_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match="non-empty"):
        make_splits(3, 0)


@pytest.mark.parametrize("seed", [0, 1, 7, 2**31 - 1])
@pytest.mark.parametrize(("n", "n_test"), [(2, 1), (10, 3), (999, 500), (5_010, 1_002)])
def test_shuffle_split_is_sklearns_train_test_split(n: int, n_test: int, seed: int) -> None:
    from wemem.data.splits import shuffle_split

    arr = np.random.default_rng(n).permutation(3 * n)[:n]  # not 0..n-1: rows are values
    got = shuffle_split(arr, n_test, seed)
    want = train_test_split(arr, test_size=n_test, random_state=seed)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("n", [1_797, 5_010, 67_330])
def test_the_80_20_pool_split_is_sklearns_float_share(n: int) -> None:
    from wemem.data.tabular import POOL_TEST_SIZE, split_pool

    order, n_train = split_pool(n, seed=3)
    tr, te = train_test_split(np.arange(n), test_size=POOL_TEST_SIZE, random_state=3)
    assert n_train == len(tr)
    np.testing.assert_array_equal(order, np.concatenate([tr, te]))
