"""Bad dataset files: one DataFormatError naming the file, from the format check and the loader;
``wemem reproduce`` stops in its preflight with exit code 2 and writes nothing."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wemem import cli
from wemem.batch.preflight import check_datasets
from wemem.data import check_format, load_pool, write_fixtures
from wemem.data.files import SUMS_NAME
from wemem.errors import DataFormatError, DatasetMissingError

REPO = Path(__file__).resolve().parents[2]
NAMES = ["cifar10", "cinic10", "texas100", "location30", "purchase100"]
CIFAR = Path("cifar10") / "cifar-10-batches-py"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Intact fixtures of the datasets these tests break, written once."""
    root = tmp_path_factory.mktemp("pristine")
    write_fixtures(root, only=NAMES)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the fixtures, for one test to break."""
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def raises_naming(name: str, root: Path, path: Path, *, load: bool = True) -> str:
    """Both the format check and (``load``) the loader raise DataFormatError naming ``path``."""
    with pytest.raises(DataFormatError) as check:
        check_format(name, root)
    assert str(path) in str(check.value)
    if load:
        with pytest.raises(DataFormatError) as loaded:
            load_pool(name, root=root)
        assert str(path) in str(loaded.value)
    return str(check.value)


def test_intact_fixtures_pass(pristine: Path) -> None:
    for name in NAMES:
        check_format(name, pristine)
    check_format("digits")  # offline: nothing to check


def test_truncated_cifar_pickle(root: Path) -> None:
    path = root / CIFAR / "data_batch_1"
    path.write_bytes(path.read_bytes()[:1000])
    message = raises_naming("cifar10", root, path)
    assert "truncated" in message


def test_cifar_pickle_of_the_wrong_structure(root: Path) -> None:
    path = root / CIFAR / "data_batch_2"
    path.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}))
    assert "expected uint8 (N, 3072)" in raises_naming("cifar10", root, path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    assert "expected a dict" in raises_naming("cifar10", root, path)


def test_cinic_split_missing_a_class_folder(root: Path) -> None:
    shutil.rmtree(root / "cinic10" / "train" / "cat")
    message = raises_naming("cinic10", root, root / "cinic10" / "train" / "cat")
    assert "missing class folder" in message


def test_cinic_unreadable_image(root: Path) -> None:
    path = min((root / "cinic10" / "test" / "dog").iterdir())
    path.write_bytes(b"not a png")
    assert "not a readable image" in raises_naming("cinic10", root, path)


def test_cinic_index_that_does_not_match_the_folders(root: Path) -> None:
    path = root / "cinic10" / "train_test_idx.pkl"
    path.write_bytes(pickle.dumps((np.arange(10**6), np.arange(3))))
    assert "train_idx" in raises_naming("cinic10", root, path)
    path.write_bytes(pickle.dumps("nonsense")[:5])
    raises_naming("cinic10", root, path)


def test_tabular_row_of_the_wrong_width(root: Path) -> None:
    path = root / "purchase100" / "purchase100.txt"
    lines = path.read_bytes().splitlines(keepends=True)
    (root / "purchase100" / SUMS_NAME).unlink()  # so the loader parses, not only hashes
    path.write_bytes(lines[0].rstrip() + b",1\n" + b"".join(lines[1:]))
    assert "line 1 has 602 values" in raises_naming("purchase100", root, path)
    # a bad row past the checked head: the check passes, the loader names the file
    path.write_bytes(b"".join(lines[:20]) + lines[20].rstrip() + b",1\n" + b"".join(lines[21:]))
    check_format("purchase100", root)
    with pytest.raises(DataFormatError, match=str(path)):
        load_pool("purchase100", root=root)


def test_texas_labels_that_are_not_integers(root: Path) -> None:
    path = root / "texas100" / "texas" / "100" / "labels"
    path.write_bytes(b"cat\n" + path.read_bytes())
    assert "starts with 'cat'" in raises_naming("texas100", root, path)


def test_truncated_location_archive(root: Path) -> None:
    path = root / "location30" / "data_complete.npz"
    path.write_bytes(path.read_bytes()[:5000])
    assert "sha256" in raises_naming("location30", root, path)
    (root / "location30" / SUMS_NAME).unlink()
    assert "not a readable .npz archive" in raises_naming("location30", root, path)


def test_every_missing_dataset_is_listed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WEMEM_DATA", str(tmp_path))
    with pytest.raises(DatasetMissingError) as err:
        check_datasets(["cifar10", "texas100"])
    assert "2 datasets are missing" in str(err.value)
    assert "wemem data fetch cifar10" in str(err.value)
    assert "wemem data fetch texas100" in str(err.value)


def _written(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*")]


def test_reproduce_stops_in_preflight_and_writes_nothing(root: Path, tmp_path: Path) -> None:
    path = root / CIFAR / "data_batch_1"
    path.write_bytes(path.read_bytes()[:1000])
    out, cache = tmp_path / "outputs", tmp_path / "cache"
    run = "01_memorization_scores.cifar10_resnet18"
    cmd = ["-m", "wemem.cli", "reproduce", "--profile", "paper", "--smoke", "--only", run]
    env = {**os.environ, "WEMEM_DATA": str(root), "WEMEM_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, *cmd, "--outputs", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wemem: error: "), proc.stderr
    assert str(path) in lines[0] and "Traceback" not in proc.stderr
    assert _written(out, cache) == []


def test_reproduce_with_a_broken_cinic_exits_2(root, tmp_path, monkeypatch, capsys) -> None:
    shutil.rmtree(root / "cinic10" / "test" / "frog")
    monkeypatch.setenv("WEMEM_DATA", str(root))
    monkeypatch.chdir(REPO)
    out = tmp_path / "outputs"
    run = "01_memorization_scores.cinic10_resnet18"
    code = cli.main(
        ["reproduce", "--profile", "paper", "--smoke", "--only", run, "--outputs", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(root / "cinic10" / "test" / "frog") in err[0]
    assert _written(out) == []
