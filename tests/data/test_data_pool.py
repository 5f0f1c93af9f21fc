"""Registry, data root, label noise, offline datasets (digits, synthetic) and pool digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from wemem.data import DATASETS, DatasetInfo, apply_label_noise, data_root, load_pool
from wemem.errors import DatasetMissingError, ParamsError

PAPER_SETS = ["cifar10", "cifar100", "cinic10", "texas100", "location30", "purchase100"]


def test_registry_has_exactly_the_datasets() -> None:
    assert set(DATASETS) == {*PAPER_SETS, "digits", "synthetic"}
    for name, info in DATASETS.items():
        assert isinstance(info, DatasetInfo) and info.name == name
        assert info.kind in ("image", "tabular")
        assert info.offline == (info.pool_sizes is None) == (not info.files)
        assert (info.mean is None) == (info.std is None)
    assert DATASETS["cifar10"].mean == (0.4914, 0.4822, 0.4465)
    assert DATASETS["cinic10"].std == (0.24205776, 0.23828046, 0.25874835)


def test_data_root_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WEMEM_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("WEMEM_DATA")
    assert data_root() == Path.home() / ".cache" / "wemem" / "data"


@pytest.mark.parametrize("name", PAPER_SETS)
def test_missing_dataset_says_where_and_how(name: str, tmp_path) -> None:
    with pytest.raises(DatasetMissingError) as err:
        load_pool(name, root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / name) in msg
    assert all(rel in msg for rel in DATASETS[name].files)
    assert f"wemem data fetch {name}" in msg
    assert "WEMEM_DATA" in msg


def test_missing_dataset_via_env_names_the_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WEMEM_DATA", str(tmp_path))
    with pytest.raises(DatasetMissingError, match="WEMEM_DATA="):
        load_pool("location30")


def test_unknown_name_and_options() -> None:
    with pytest.raises(ParamsError, match="allowed: cifar10, cifar100, cinic10, digits"):
        load_pool("mnist")
    with pytest.raises(ParamsError, match="allowed: none"):
        load_pool("cifar10", n_samples=5)
    with pytest.raises(ParamsError, match="allowed: bitflip, density, n_classes"):
        load_pool("synthetic", width=5)
    with pytest.raises(ParamsError, match="density"):
        load_pool("synthetic", density=1.5)
    with pytest.raises(ParamsError, match="label_noise"):
        load_pool("digits", label_noise=1.0)
    with pytest.raises(ParamsError, match="pool_seed"):
        load_pool("digits", pool_seed=-1)


def test_label_noise_exact_fraction_and_other_class() -> None:
    y = np.repeat(np.arange(10), 100)
    noisy, flipped = apply_label_noise(y, fraction=0.1, num_classes=10, seed=3)
    assert flipped.sum() == 100 and flipped.dtype == bool
    assert np.all(noisy[flipped] != y[flipped])
    assert np.array_equal(noisy[~flipped], y[~flipped])
    assert noisy.dtype == np.int64 and noisy.min() >= 0 and noisy.max() <= 9
    # Targets are spread over the other classes, not shifted by a constant.
    assert len(set((noisy[flipped] - y[flipped]) % 10)) > 5
    again, flipped_again = apply_label_noise(y, fraction=0.1, num_classes=10, seed=3)
    assert np.array_equal(again, noisy) and np.array_equal(flipped_again, flipped)
    other, _ = apply_label_noise(y, fraction=0.1, num_classes=10, seed=4)
    assert not np.array_equal(other, noisy)
    assert np.array_equal(y, np.repeat(np.arange(10), 100))  # input untouched


def test_label_noise_rounding_and_bounds() -> None:
    y = np.zeros(7, dtype=np.int64)
    assert apply_label_noise(y, fraction=0.3, num_classes=2, seed=0)[1].sum() == 2  # round(2.1)
    assert apply_label_noise(y, fraction=0.0, num_classes=2, seed=0)[1].sum() == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(ParamsError, match="label_noise"):
            apply_label_noise(y, fraction=bad, num_classes=2, seed=0)
    with pytest.raises(ParamsError, match="labels span"):
        apply_label_noise(np.array([0, 5]), fraction=0.5, num_classes=3, seed=0)


def test_synthetic_deterministic_and_shaped() -> None:
    pool = load_pool("synthetic", label_noise=0.1, noise_seed=1)
    assert pool.x.shape == (6000, 600) and pool.x.dtype == torch.float32
    assert set(torch.unique(pool.x).tolist()) == {0.0, 1.0}
    assert (pool.n_train, pool.n_test, pool.num_classes) == (4800, 1200, 50)
    assert pool.y.dtype == pool.y_clean.dtype == torch.int64
    assert pool.flipped.sum() == 600
    assert np.array_equal(pool.flipped, (pool.y != pool.y_clean).numpy())
    # Noise hits both the training pool and the test pool (flipped non-members exist).
    assert pool.flipped[: pool.n_train].any() and pool.flipped[pool.n_train :].any()
    again = load_pool("synthetic", label_noise=0.1, noise_seed=1)
    assert torch.equal(pool.x, again.x) and torch.equal(pool.y, again.y)
    assert pool.digest == again.digest


def test_synthetic_is_pinned_across_machines() -> None:
    pool = load_pool("synthetic", n_samples=50, n_features=8, n_classes=3, seed=1)
    assert pool.x.shape == (50, 8) and pool.num_classes == 3
    h = hashlib.sha256(pool.x.numpy().tobytes() + pool.y.numpy().tobytes()).hexdigest()
    assert h == "e08b47aa78bf3410f83fbfa3e046a5fe2823dff49875f646c7d03c1fda86a598"


def test_synthetic_prototype_structure() -> None:
    pool = load_pool("synthetic", n_samples=2000, bitflip=0.1, density=0.3)
    x, y = pool.x.numpy(), pool.y.numpy()
    assert abs(x.mean() - (0.3 * 0.9 + 0.7 * 0.1)) < 0.01
    # Two samples of one class agree on far more bits than samples of different classes.
    same = (x[y == y[0]][:2, None] == x[y == y[0]][None, :2]).mean()
    diff = (x[y == y[0]][:1] == x[y != y[0]][:1]).mean()
    assert same > diff + 0.2


def test_digits_offline() -> None:
    pool = load_pool("digits")
    assert pool.x.shape == (1797, 1, 8, 8) and pool.x.dtype == torch.float32
    assert float(pool.x.min()) == 0.0 and float(pool.x.max()) == 1.0
    assert (pool.n_train, pool.n_test, pool.num_classes) == (1437, 360, 10)
    assert pool.input_shape == (1, 8, 8) and len(pool) == 1797
    assert sorted(torch.unique(pool.y).tolist()) == list(range(10))
    assert not pool.flipped.any()


def test_pool_digest_tracks_exactly_the_defining_settings() -> None:
    base = load_pool("digits").digest
    assert load_pool("digits", noise_seed=5).digest == base  # no noise: seed is irrelevant
    assert load_pool("digits", pool_seed=8).digest != base
    noisy = load_pool("digits", label_noise=0.1).digest
    assert noisy != base
    assert load_pool("digits", label_noise=0.1, noise_seed=5).digest != noisy
    default = load_pool("synthetic", n_samples=100).digest
    assert load_pool("synthetic", n_samples=100, seed=0, density=0.3).digest == default
    assert load_pool("synthetic", n_samples=np.int64(100)).digest == default
    assert load_pool("synthetic", n_samples=100, seed=1).digest != default


def test_bad_device_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match="device"):
        load_pool("digits", device="gpu-please")
