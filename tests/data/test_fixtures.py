"""`wemem data fixtures`: synthetic stand-ins of the six paper datasets, read by the real loaders."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import wemem.data.fixtures as fixtures
from wemem.cli import main
from wemem.data import DATASETS, load_pool, make_splits
from wemem.data.files import FIXTURE_MARKER
from wemem.data.registry import is_fixture
from wemem.errors import DataFormatError, ParamsError, WememError
from wemem.io import digest as digest_of
from wemem.params import Settings

NAMES = list(fixtures.FIXTURE_NAMES)


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory) -> Path:
    """All six fixtures with the default sizes, written once for the module."""
    root = tmp_path_factory.mktemp("fixtures")
    written = fixtures.write_fixtures(root)
    assert list(written) == NAMES and all(p == root / n for n, p in written.items())
    return root


@pytest.fixture(scope="module")
def pools(paper_root: Path) -> dict:
    return {name: load_pool(name, root=paper_root) for name in NAMES}


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, loader caches left out."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".wemem_cache_")
    }


@pytest.mark.parametrize("name", NAMES)
def test_loads_through_the_real_loader(name: str, paper_root: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("WEMEM_DATA", str(paper_root))
    with caplog.at_level(logging.WARNING, logger="wemem.data"):
        pool = load_pool(name)
    info = DATASETS[name]
    marker = json.loads((paper_root / name / FIXTURE_MARKER).read_text())
    rows = marker["rows"]
    assert pool.fixture and is_fixture(name) and "fixture=True" in repr(pool)
    assert pool.num_classes == info.num_classes and pool.input_shape == info.input_shape
    assert pool.x.dtype == torch.float32 and pool.y.dtype == torch.int64
    assert (pool.n_train, pool.n_test) == (rows["train_pool"], rows["test_pool"])
    per_class = fixtures.DEFAULT_PER_CLASS[name]
    assert (
        np.bincount(pool.y_clean.numpy(), minlength=info.num_classes).tolist()
        == [per_class] * info.num_classes
    )
    if info.kind == "tabular":
        assert set(torch.unique(pool.x).tolist()) == {0.0, 1.0}
    # one warning, from the loader (CIFAR) or from load_pool (the others)
    said = [r for r in caplog.records if "fixture data (synthetic stand-in)" in r.getMessage()]
    assert len(said) == 1


def test_file_layouts_are_the_real_ones(paper_root: Path) -> None:
    for name in NAMES:
        assert all((paper_root / name / rel).exists() for rel in DATASETS[name].files)
    cinic = paper_root / "cinic10"
    for part in ("train", "test", "valid"):
        assert sorted(p.name for p in (cinic / part).iterdir()) == list(fixtures.CINIC_SYNSETS)
    names = [p.name for p in (cinic / "train" / "cat").iterdir()]
    assert all(n.startswith(("cifar10-train-", "n02121808_")) and n.endswith(".png") for n in names)
    with open(cinic / "train_test_idx.pkl", "rb") as f:
        train_idx, test_idx = pickle.load(f)
    assert sorted(train_idx.tolist()) == list(range(len(train_idx)))  # all of train/, reordered
    assert len(test_idx) < sum(1 for _ in (cinic / "test").rglob("*.png"))  # test/ has unused ones
    with open(paper_root / "cifar100" / "cifar-100-python" / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert len(meta["fine_label_names"]) == 100 and len(meta["coarse_label_names"]) == 20
    sums = (paper_root / "texas100" / "SHA256SUMS").read_text().split()
    assert sums[1::2] == ["texas/100/feats", "texas/100/labels"]
    first = (paper_root / "purchase100" / "purchase100.txt").read_text().split("\n", 1)[0]
    assert len(first.split(",")) == 601 and 1 <= int(first.split(",")[0]) <= 100


def test_class_structure_is_learnable(pools: dict) -> None:
    """A nearest-class-mean classifier (means of P, accuracy on T) beats chance by far."""
    for name, pool in pools.items():
        x = pool.x.reshape(len(pool), -1).double()
        y, p, c = pool.y, pool.n_train, pool.num_classes
        means = torch.stack([x[:p][y[:p] == k].mean(0) for k in range(c)])
        accuracy = (torch.cdist(x[p:], means).argmin(1) == y[p:]).double().mean().item()
        assert accuracy > max(0.4, 5 / c), (name, accuracy)


def test_every_class_in_every_part_of_the_splits(pools: dict) -> None:
    """The §5.2 splits with the project's settings, victim and 5 shadows: members, dev and test
    each hold every class at least ``min_rows`` times."""
    for name, pool in pools.items():
        splits = make_splits(pool.n_train, pool.n_test, n_shadows=5, seed=7)
        y = pool.y_clean.numpy()
        for model in splits.models:
            for part in (model.train, model.dev, model.test):
                counts = np.bincount(y[part], minlength=pool.num_classes)
                assert counts.min() >= fixtures.COVERAGE["min_rows"], name


def test_coverage_settings_are_the_project_defaults() -> None:
    s = Settings()
    assert fixtures.COVERAGE["split_seed"] == s.split_seed
    assert fixtures.COVERAGE["member_fraction"] == s.member_fraction
    assert fixtures.COVERAGE["dev_fraction"] == s.dev_fraction
    assert (
        fixtures.COVERAGE["pool_seed"]
        == inspect.signature(load_pool).parameters["pool_seed"].default
    )


def test_same_seed_same_bytes(paper_root: Path, tmp_path: Path) -> None:
    fixtures.write_fixtures(tmp_path / "again")
    assert file_hashes(tmp_path / "again") == file_hashes(paper_root)
    fixtures.write_fixtures(tmp_path / "other", seed=1, only="location30")
    other = (tmp_path / "other" / "location30" / "data_complete.npz").read_bytes()
    assert other != (paper_root / "location30" / "data_complete.npz").read_bytes()


def test_altered_cifar_file_is_a_format_error(tmp_path: Path) -> None:
    fixtures.write_fixtures(tmp_path, only=["cifar10"], per_class=30)
    batch = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    data = bytearray(batch.read_bytes())
    data[-100] ^= 1
    batch.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="md5.*wemem data fixtures"):
        load_pool("cifar10", root=tmp_path)


def test_cifar_without_marker_is_checked_against_the_real_md5s(tmp_path: Path) -> None:
    fixtures.write_fixtures(tmp_path, only="cifar100", per_class=30)
    marker = tmp_path / "cifar100" / FIXTURE_MARKER
    content = json.loads(marker.read_text())
    del content["md5"]["cifar-100-python/meta"]
    marker.write_text(json.dumps(content))
    with pytest.raises(DataFormatError, match="records no md5 for cifar-100-python/meta"):
        load_pool("cifar100", root=tmp_path)
    marker.unlink()
    with pytest.raises(DataFormatError, match="wemem data fetch cifar100"):
        load_pool("cifar100", root=tmp_path)


def test_fixture_digest_differs_and_real_digest_is_unchanged(paper_root, tmp_path) -> None:
    shutil.copytree(paper_root / "location30", tmp_path / "location30")
    fixture = load_pool("location30", root=tmp_path)
    (tmp_path / "location30" / FIXTURE_MARKER).unlink()
    real = load_pool("location30", root=tmp_path)
    assert (
        torch.equal(fixture.x, real.x)
        and not real.fixture
        and not is_fixture("location30", tmp_path)
    )
    assert fixture.digest != real.digest
    # without a marker the digest is computed exactly as before fixtures existed
    assert real.digest == digest_of(
        {
            "version": 1,
            "name": "location30",
            "options": {},
            "label_noise": 0.0,
            "noise_seed": None,
            "pool_seed": 7,
            "n_train": real.n_train,
            "n_test": real.n_test,
        }
    )


def test_failed_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch) -> None:
    fixtures.write_fixtures(tmp_path, only="location30", per_class=30)
    before = file_hashes(tmp_path)

    def broken(folder: Path, *args) -> None:
        (folder / "data_complete.npz").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixtures, "write_tabular", broken)
    with pytest.raises(WememError, match="No space left"):
        fixtures.write_fixtures(tmp_path, only=["location30", "purchase100"], seed=3)
    assert file_hashes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["location30"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="choose from cifar10"):
        fixtures.write_fixtures(tmp_path, only=["mnist"])
    with pytest.raises(ParamsError, match="per_class"):
        fixtures.write_fixtures(tmp_path, per_class=0)
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "data_batch_1").write_bytes(b"real?")
    with pytest.raises(WememError, match="refusing to replace"):
        fixtures.write_fixtures(tmp_path, only="cifar10")


def test_cli_end_to_end(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    stale = root / ".location30.fixture-999999999-dead"
    stale.mkdir(parents=True)
    args = ["data", "fixtures", str(root), "--only", "location30", "cifar10", "--per-class", "30"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["cifar10", str(root / "cifar10")]
    assert "rows=300" in out[0] and "classes=10" in out[0]
    assert out[1].startswith("location30") and "classes=30" in out[1]
    assert out[-1].strip() == f"WEMEM_DATA={root} wemem reproduce --profile paper --smoke"
    assert sorted(p.name for p in root.iterdir()) == ["cifar10", "location30"]  # stale one gone
    assert main(args) == 0  # an existing fixture is replaced
    capsys.readouterr()
    assert main(["data", "list", "--root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert "fixture" in next(line for line in listing.splitlines() if "location30" in line)

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for bad in ([str(a_file)], [str(root), "--only", "mnist"]):
        assert main(["data", "fixtures", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("wemem: error: fixtures:") and err.count("\n") == 1
