"""Texas100, Location30 and Purchase100 loaders on tiny fixtures in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

import wemem.data.tabular as tabular
from wemem.data import load_pool
from wemem.errors import DataFormatError

N = 30


def binary(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.integers(0, 2, size=(n, d), dtype=np.uint8)


def write_csv(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows.tolist()))


def write_texas(root: Path, suffix: str = "", labels: np.ndarray | None = None, width: int = 6169):
    rng = np.random.default_rng(0)
    x = binary(rng, N, width)
    y = rng.integers(1, 101, size=N) if labels is None else labels
    write_csv(root / "texas100" / "texas" / "100" / f"feats{suffix}", x)
    write_csv(root / "texas100" / "texas" / "100" / f"labels{suffix}", y[:, None])
    return x, y


def write_purchase(root: Path, labels: np.ndarray | None = None):
    rng = np.random.default_rng(1)
    x = binary(rng, N, 600)
    y = rng.integers(1, 101, size=N) if labels is None else labels
    write_csv(root / "purchase100" / "purchase100.txt", np.column_stack([y, x]))
    return x, y


def write_location(root: Path, labels: np.ndarray | None = None, width: int = 446):
    rng = np.random.default_rng(2)
    x = binary(rng, N, width).astype(np.float64)
    y = rng.integers(1, 31, size=N) if labels is None else labels
    (root / "location30").mkdir(parents=True)
    np.savez(root / "location30" / "data_complete.npz", x=x, y=y)
    return x, y


def check_pool(pool, x: np.ndarray, y: np.ndarray, *, seed: int = 7) -> None:
    tr, te = train_test_split(np.arange(N), test_size=0.2, random_state=seed)
    order = np.concatenate([tr, te])
    assert (pool.n_train, pool.n_test) == (24, 6)
    assert pool.x.dtype == torch.float32 and pool.x.shape == (N, x.shape[1])
    np.testing.assert_array_equal(pool.x.numpy(), x[order].astype(np.float32))
    np.testing.assert_array_equal(pool.y_clean.numpy(), y[order] - 1)


@pytest.mark.parametrize("suffix", ["", ".txt"])
def test_texas(tmp_path, suffix: str) -> None:
    x, y = write_texas(tmp_path, suffix)
    check_pool(load_pool("texas100", root=tmp_path), x, y)
    assert len(list((tmp_path / "texas100").glob(".wemem_cache_*.npz"))) == 1


def test_purchase_label_in_column_zero_and_cache(tmp_path, monkeypatch) -> None:
    x, y = write_purchase(tmp_path)
    pool = load_pool("purchase100", root=tmp_path)
    check_pool(pool, x, y)
    assert pool.num_classes == 100

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(tabular, "_read_csv", no_parsing)
    again = load_pool("purchase100", root=tmp_path, pool_seed=3)
    check_pool(again, x, y, seed=3)


def test_location(tmp_path) -> None:
    x, y = write_location(tmp_path)
    pool = load_pool("location30", root=tmp_path)
    check_pool(pool, x, y)
    assert pool.num_classes == 30


@pytest.mark.parametrize(
    ("writer", "name", "bad", "file"),
    [
        (write_texas, "texas100", 0, "labels"),
        (write_texas, "texas100", 101, "labels"),
        (write_purchase, "purchase100", 101, "purchase100.txt"),
        (write_location, "location30", 31, "data_complete.npz"),
    ],
)
def test_label_out_of_range(tmp_path, writer, name: str, bad: int, file: str) -> None:
    labels = np.full(N, 5)
    labels[3] = bad
    writer(tmp_path, labels=labels)
    with pytest.raises(DataFormatError, match=rf"{file}.*labels span .*allowed 1\.\.") as err:
        load_pool(name, root=tmp_path)
    assert str(tmp_path / name) in str(err.value)


def test_wrong_feature_width(tmp_path) -> None:
    write_location(tmp_path, width=445)
    with pytest.raises(DataFormatError, match=r"data_complete.npz.*expected \(N, 446\)"):
        load_pool("location30", root=tmp_path)


def test_texas_row_mismatch_and_non_binary(tmp_path) -> None:
    write_texas(tmp_path, width=6169)
    feats = tmp_path / "texas100" / "texas" / "100" / "feats"
    lines = feats.read_text().splitlines()
    feats.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataFormatError, match="29 feature rows but 30 labels"):
        load_pool("texas100", root=tmp_path)
    feats.write_text("\n".join(["2" + line[1:] for line in lines]) + "\n")
    with pytest.raises(DataFormatError, match="binary"):
        load_pool("texas100", root=tmp_path)


def test_npz_without_keys(tmp_path) -> None:
    (tmp_path / "location30").mkdir()
    np.savez(tmp_path / "location30" / "data_complete.npz", features=np.zeros((3, 446)))
    with pytest.raises(DataFormatError, match="expected 'x' and 'y'"):
        load_pool("location30", root=tmp_path)


def test_changed_raw_file_is_reparsed_and_stale_cache_removed(tmp_path) -> None:
    write_purchase(tmp_path)
    load_pool("purchase100", root=tmp_path)
    path = tmp_path / "purchase100" / "purchase100.txt"
    path.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[0])
    pool = load_pool("purchase100", root=tmp_path)
    assert len(pool) == N + 1
    assert len(list((tmp_path / "purchase100").glob(".wemem_cache_*"))) == 1
