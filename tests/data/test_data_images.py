"""CIFAR10/100 and CINIC-10 loaders, on tiny fixtures written in the real on-disk formats."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets import CIFAR10, CIFAR100

import wemem.data.images as images
from wemem.data import DATASETS, load_pool
from wemem.errors import DataFormatError, DatasetMissingError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_batch(path: Path, rng: np.random.Generator, n: int, label_key: str, n_classes: int):
    # The real batches were pickled by Python 2 with str keys; torchvision unpickles them with
    # encoding="latin1" and reads entry["data"], so str keys are the faithful equivalent here
    # (the b"data" of the CIFAR web page is what encoding="bytes" would show).
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, n_classes, size=n).tolist()
    with open(path, "wb") as f:
        pickle.dump({"batch_label": path.name, label_key: labels, "data": data}, f, protocol=2)
    return data, labels


def write_cifar10(root: Path) -> tuple[np.ndarray, list[int], int]:
    base = root / "cifar10" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = [write_batch(base / f"data_batch_{i}", rng, 4, "labels", 10) for i in range(1, 6)]
    parts.append(write_batch(base / "test_batch", rng, 3, "labels", 10))
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES}, f, protocol=2)
    return np.concatenate([d for d, _ in parts]), sum((lab for _, lab in parts), []), 20


def write_cifar100(root: Path) -> tuple[np.ndarray, list[int], int]:
    base = root / "cifar100" / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = write_batch(base / "train", rng, 6, "fine_labels", 100)
    test = write_batch(base / "test", rng, 2, "fine_labels", 100)
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f, protocol=2)
    return np.concatenate([train[0], test[0]]), train[1] + test[1], 6


@pytest.fixture
def cifar_md5s(monkeypatch):
    """Point torchvision's md5 lists at the fixture files.

    torchvision's CIFAR classes check the md5 of every batch and of the meta file even with
    download=False; the library keeps that check. Only here, in the test, are the class-level
    lists replaced by the fixture files' md5s.
    """

    def patch(root: Path, name: str) -> None:
        cls = CIFAR10 if name == "cifar10" else CIFAR100
        base = root / name / cls.base_folder
        monkeypatch.setattr(cls, "train_list", [[n, md5(base / n)] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[n, md5(base / n)] for n, _ in cls.test_list])
        meta = {**cls.meta, "md5": md5(base / cls.meta["filename"])}
        monkeypatch.setattr(cls, "meta", meta)

    return patch


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loads_normalised_nchw(name: str, tmp_path, cifar_md5s) -> None:
    data, labels, n_train = (write_cifar10 if name == "cifar10" else write_cifar100)(tmp_path)
    cifar_md5s(tmp_path, name)
    pool = load_pool(name, root=tmp_path)
    info = DATASETS[name]
    assert pool.x.shape == (len(data), 3, 32, 32) and pool.x.dtype == torch.float32
    assert pool.n_train == n_train and pool.num_classes == info.num_classes
    assert pool.y_clean.tolist() == labels
    # Same numbers as torchvision's ToTensor + Normalize on each image.
    reference = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    )
    for k in (0, n_train - 1, len(data) - 1):
        img = Image.fromarray(data[k].reshape(3, 32, 32).transpose(1, 2, 0))
        torch.testing.assert_close(pool.x[k], reference(img), rtol=0, atol=1e-6)


def test_cifar_files_failing_md5_are_a_format_error(tmp_path) -> None:
    write_cifar10(tmp_path)  # the md5 lists are torchvision's real ones: the fixtures fail them
    with pytest.raises(DataFormatError, match="md5"):
        load_pool("cifar10", root=tmp_path)


def test_cifar_partly_missing_names_the_missing_file(tmp_path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match="missing: cifar-10-batches-py/data_batch_3"):
        load_pool("cifar10", root=tmp_path)


def write_cinic(root: Path, n_train: int = 2, n_test: int = 2) -> Path:
    folder = root / "cinic10"
    rng = np.random.default_rng(2)
    for part, n in (("train", n_train), ("test", n_test)):
        for cls in CLASSES:
            (folder / part / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / part / cls / f"{part}-{cls}-{i}.png")
    return folder


def decoded(folder: Path, part: str, index: int) -> tuple[np.ndarray, int]:
    paths = sorted((folder / part).glob("*/*.png"))  # ImageFolder order: class, then file name
    path = paths[index]
    return np.array(Image.open(path).convert("RGB")), CLASSES.index(path.parent.name)


def expected_x(pixels: np.ndarray) -> torch.Tensor:
    info = DATASETS["cinic10"]
    return images.normalize_images(pixels[None], mean=info.mean, std=info.std)[0]


def test_cinic_with_index_file_and_cache(tmp_path, monkeypatch) -> None:
    folder = write_cinic(tmp_path)
    train_idx = np.random.default_rng(3).permutation(20)
    test_idx = np.array([19, 0, 7, 3, 11])
    with open(folder / "train_test_idx.pkl", "wb") as f:
        pickle.dump((train_idx, test_idx), f)
    pool = load_pool("cinic10", root=tmp_path)
    assert pool.x.shape == (25, 3, 32, 32) and pool.n_train == 20 and pool.n_test == 5
    rows = [("train", i) for i in train_idx] + [("test", i) for i in test_idx]
    for k in (0, 7, 19, 20, 24):
        pixels, label = decoded(folder, *rows[k])
        torch.testing.assert_close(pool.x[k], expected_x(pixels), rtol=0, atol=1e-6)
        assert int(pool.y[k]) == label
    caches = list(folder.glob(".wemem_cache_*.pt"))
    assert len(caches) == 1 and not list(folder.glob("*.tmp"))

    # The second load must not decode PNGs again.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(images, "_build_cinic", no_decoding)
    again = load_pool("cinic10", root=tmp_path)
    assert torch.equal(again.x, pool.x) and again.digest == pool.digest


def test_cinic_without_index_uses_folder_order(tmp_path) -> None:
    folder = write_cinic(tmp_path, n_train=2, n_test=1)
    pool = load_pool("cinic10", root=tmp_path)
    assert (pool.n_train, pool.n_test) == (20, 10)
    for k, (part, i) in {
        0: ("train", 0),
        5: ("train", 5),
        20: ("test", 0),
        29: ("test", 9),
    }.items():
        pixels, label = decoded(folder, part, i)
        torch.testing.assert_close(pool.x[k], expected_x(pixels), rtol=0, atol=1e-6)
        assert int(pool.y[k]) == label


def test_cinic_bad_index_is_a_format_error(tmp_path) -> None:
    folder = write_cinic(tmp_path, n_train=1, n_test=1)
    with open(folder / "train_test_idx.pkl", "wb") as f:
        pickle.dump((np.arange(10), np.array([10])), f)  # test folder holds only 10 images
    with pytest.raises(DataFormatError, match="test_idx"):
        load_pool("cinic10", root=tmp_path)


def test_cinic_missing_test_folder(tmp_path) -> None:
    folder = write_cinic(tmp_path, n_train=1, n_test=1)
    for p in sorted((folder / "test").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (folder / "test").rmdir()
    with pytest.raises(DatasetMissingError, match="missing: test"):
        load_pool("cinic10", root=tmp_path)
