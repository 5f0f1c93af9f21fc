"""Download a dataset on request (``wemem data fetch NAME``); nothing else in wemem downloads.

CIFAR goes through torchvision (``download=True``, md5-checked). CINIC-10 and the tabular
archives are fetched with :func:`_download`, a module-level function so tests can replace it. For
the tabular sets the first fetch records each file's sha256 in ``<dataset folder>/SHA256SUMS``;
later fetches and every parse (see :mod:`wemem.data.tabular`) verify against it.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from wemem.data.files import record_sums, verify_sums
from wemem.data.registry import DatasetInfo, dataset_dir, dataset_info, resolve_file
from wemem.data.tabular import TEXAS_SUFFIXES
from wemem.errors import DataFormatError
from wemem.io import atomic_path

log = logging.getLogger(__name__)

_NUS = "https://www.comp.nus.edu.sg/~reza/files/"
URLS: dict[str, str] = {
    "cinic10": "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
    "texas100": _NUS + "dataset_texas.tgz",
    "purchase100": _NUS + "dataset_purchase.tgz",
    "location30": "https://github.com/jjy1994/MemGuard/raw/master/data/location/data_complete.npz",
}


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` (atomically: a partial download never has the final name)."""
    log.info("downloading %s -> %s", url, dest)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)


def _extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive, refusing absolute paths, '..' and links out of ``dest``."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        raise DataFormatError(f"{archive}: not a readable tar archive ({exc})") from exc


def _listing(folder: Path) -> str:
    return ", ".join(str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))) or "nothing"


def _fetch_cifar(name: str, folder: Path) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    for train in (True, False):
        cls(str(folder), train=train, download=True)
    # The extracted batches are md5-checked on every load; the archive is no longer needed.
    (folder / cls.filename).unlink(missing_ok=True)


def _fetch_cinic(folder: Path) -> None:
    if not ((folder / "train").is_dir() and (folder / "test").is_dir()):
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
            archive = Path(tmp) / "CINIC-10.tar.gz"
            _download(URLS["cinic10"], archive)
            _extract(archive, folder)
        for part in ("train", "test", "valid"):
            if not (folder / part).is_dir():
                nested = [p for p in folder.glob(f"*/{part}") if p.is_dir()]
                if len(nested) == 1:
                    nested[0].rename(folder / part)
        if not (folder / "train").is_dir():
            raise DataFormatError(
                f"cinic10: the archive has no train/ folder; got {_listing(folder)}"
            )
    if not (folder / "train_test_idx.pkl").exists():
        log.warning(
            "cinic10: copy the authors' data/datasets/cinic/train_test_idx.pkl into %s for the "
            "paper's pools (90,000 / 31,499); without it all train/ and test/ images are used",
            folder,
        )


def _place_tabular(name: str, extracted: Path, folder: Path) -> None:
    """Move the data files of an extracted NUS archive to where the loaders expect them."""
    files = [p for p in extracted.rglob("*") if p.is_file()]
    if name == "texas100":
        wanted = {"feats", "labels"}
        found = {p.stem: p for p in files if p.stem in wanted and p.parent.name == "100"}
        if set(found) != wanted:
            raise DataFormatError(
                f"texas100: archive lacks texas/100/feats and labels; got {_listing(extracted)}"
            )
        (folder / "texas" / "100").mkdir(parents=True, exist_ok=True)
        for p in found.values():
            p.replace(folder / "texas" / "100" / p.name)
    else:
        data = [p for p in files if p.name.startswith("dataset_purchase")]
        if len(data) != 1:
            raise DataFormatError(
                f"purchase100: expected one dataset_purchase file in the archive; "
                f"got {_listing(extracted)}"
            )
        data[0].replace(folder / "purchase100.txt")


def _fetch_tabular(name: str, info: DatasetInfo, folder: Path) -> None:
    suffixes = TEXAS_SUFFIXES if name == "texas100" else ("",)
    if any(resolve_file(folder, rel, suffixes=suffixes) is None for rel in info.files):
        if name == "location30":
            _download(URLS[name], folder / info.files[0])
        else:
            with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
                archive = Path(tmp) / URLS[name].rsplit("/", 1)[1]
                _download(URLS[name], archive)
                _extract(archive, Path(tmp) / "x")
                _place_tabular(name, Path(tmp) / "x", folder)
    else:
        log.info("%s: files already in %s; verifying them", name, folder)
    rels = [
        str(resolve_file(folder, rel, suffixes=suffixes).relative_to(folder)) for rel in info.files
    ]
    verify_sums(folder, rels)
    record_sums(folder, rels)


def fetch(name: str, *, root: str | Path | None = None) -> Path:
    """Download dataset ``name`` into ``root/<name>`` (root defaults to ``data_root()``).

    Returns the dataset folder. Offline sets (digits, synthetic) need nothing and return at once.
    Raises DataFormatError when a tabular file disagrees with its recorded SHA256SUMS entry.
    """
    info = dataset_info(name)
    folder = dataset_dir(name, root)
    if info.offline:
        log.info("%s: nothing to fetch (%s)", name, info.obtain)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if name in ("cifar10", "cifar100"):
        _fetch_cifar(name, folder)
    elif name == "cinic10":
        _fetch_cinic(folder)
    else:
        _fetch_tabular(name, info, folder)
    log.info("%s: ready in %s", name, folder)
    return folder
