"""fetch(): archive handling and the SHA256SUMS record-then-verify logic, offline.

``wemem.data.download._download`` is replaced by a function that copies a locally built archive, so
nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

import wemem.data.download as fetch_mod
from wemem.data import fetch, load_pool
from wemem.errors import DataFormatError, ParamsError


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def purchase_text(seed: int, n: int = 20) -> bytes:
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.integers(1, 101, n), rng.integers(0, 2, (n, 600))])
    return "".join(",".join(map(str, r)) + "\n" for r in rows.tolist()).encode()


class FakeDownloader:
    """Serves a local file for any URL and records the URLs asked for."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.urls: list[str] = []

    def __call__(self, url: str, dest: Path) -> None:
        self.urls.append(url)
        shutil.copyfile(self.source, dest)


@pytest.fixture
def purchase_archive(tmp_path) -> Path:
    return make_tgz(tmp_path / "dataset_purchase.tgz", {"dataset_purchase": purchase_text(0)})


def test_purchase_record_then_verify(tmp_path, monkeypatch, purchase_archive) -> None:
    root = tmp_path / "data"
    fake = FakeDownloader(purchase_archive)
    monkeypatch.setattr(fetch_mod, "_download", fake)
    folder = fetch("purchase100", root=root)
    assert folder == root / "purchase100"
    assert fake.urls == ["https://www.comp.nus.edu.sg/~reza/files/dataset_purchase.tgz"]
    data = folder / "purchase100.txt"
    assert data.read_bytes() == purchase_text(0)
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert (folder / "SHA256SUMS").read_text() == f"{digest}  purchase100.txt\n"
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "purchase100.txt"]
    assert load_pool("purchase100", root=root).n_train == 16

    # A later fetch finds the file, verifies it and downloads nothing.
    fetch("purchase100", root=root)
    assert len(fake.urls) == 1

    # A changed file fails both the next fetch and the next load.
    data.write_bytes(purchase_text(1))
    with pytest.raises(DataFormatError, match=r"purchase100.txt: sha256 .* differs"):
        fetch("purchase100", root=root)
    with pytest.raises(DataFormatError, match="recorded in"):
        load_pool("purchase100", root=root)


def test_redownload_that_differs_from_record_is_rejected(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    first = make_tgz(tmp_path / "a.tgz", {"dataset_purchase": purchase_text(0)})
    monkeypatch.setattr(fetch_mod, "_download", FakeDownloader(first))
    fetch("purchase100", root=root)
    (root / "purchase100" / "purchase100.txt").unlink()
    second = make_tgz(tmp_path / "b.tgz", {"dataset_purchase": purchase_text(2)})
    monkeypatch.setattr(fetch_mod, "_download", FakeDownloader(second))
    with pytest.raises(DataFormatError, match="differs"):
        fetch("purchase100", root=root)


def test_texas_archive_layout(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    feats = "".join(",".join(map(str, r)) + "\n" for r in rng.integers(0, 2, (10, 6169)).tolist())
    labels = "".join(f"{v}\n" for v in rng.integers(1, 101, 10).tolist())
    archive = make_tgz(
        tmp_path / "dataset_texas.tgz",
        {"texas/100/feats": feats.encode(), "texas/100/labels": labels.encode()},
    )
    monkeypatch.setattr(fetch_mod, "_download", FakeDownloader(archive))
    folder = fetch("texas100", root=tmp_path / "data")
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    assert [line.split()[1] for line in sums] == ["texas/100/feats", "texas/100/labels"]
    pool = load_pool("texas100", root=tmp_path / "data")
    assert pool.x.shape == (10, 6169)


def test_location_download(tmp_path, monkeypatch) -> None:
    source = tmp_path / "src.npz"
    rng = np.random.default_rng(0)
    np.savez(source, x=rng.integers(0, 2, (10, 446)), y=rng.integers(1, 31, 10))
    fake = FakeDownloader(source)
    monkeypatch.setattr(fetch_mod, "_download", fake)
    folder = fetch("location30", root=tmp_path / "data")
    assert fake.urls == [
        "https://github.com/jjy1994/MemGuard/raw/master/data/location/data_complete.npz"
    ]
    assert "data_complete.npz" in (folder / "SHA256SUMS").read_text()
    np.savez(folder / "data_complete.npz", x=np.zeros((10, 446)), y=np.ones(10, dtype=int))
    with pytest.raises(DataFormatError, match="differs"):
        load_pool("location30", root=tmp_path / "data")


def test_archive_without_expected_file(tmp_path, monkeypatch) -> None:
    archive = make_tgz(tmp_path / "x.tgz", {"README": b"hello"})
    monkeypatch.setattr(fetch_mod, "_download", FakeDownloader(archive))
    with pytest.raises(DataFormatError, match="dataset_purchase.*README"):
        fetch("purchase100", root=tmp_path / "data")


def test_archive_escaping_its_folder_is_refused(tmp_path, monkeypatch) -> None:
    archive = make_tgz(tmp_path / "x.tgz", {"../../evil": b"x"})
    monkeypatch.setattr(fetch_mod, "_download", FakeDownloader(archive))
    with pytest.raises(DataFormatError, match="tar archive"):
        fetch("purchase100", root=tmp_path / "data")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_offline_sets_need_nothing(name: str, tmp_path, monkeypatch) -> None:
    def refuse(url: str, dest: Path) -> None:
        raise AssertionError("offline sets must not download")

    monkeypatch.setattr(fetch_mod, "_download", refuse)
    assert fetch(name, root=tmp_path) == tmp_path / name
    assert not (tmp_path / name).exists()


def test_unknown_name(tmp_path) -> None:
    with pytest.raises(ParamsError, match="allowed"):
        fetch("imagenet", root=tmp_path)
