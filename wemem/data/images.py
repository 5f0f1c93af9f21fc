"""Image loaders: CIFAR10/100 and CINIC-10 (spec §5.1) and the offline sklearn digits.

Each returns a :class:`~wemem.data.registry.RawPool` whose ``x`` is one float32 tensor
(N, C, H, W), the training pool P first and the test pool T after it. Conversion and normalisation
are vectorised; no per-sample transform runs at training time. The paper uses no augmentation.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from wemem.data.files import FIXTURE_MARKER, prune_caches, read_fixture_marker
from wemem.data.registry import DATASETS, RawPool, check_labels, require_files
from wemem.data.tabular import split_pool
from wemem.errors import DataFormatError
from wemem.io import atomic_path
from wemem.io import digest as digest_of
from wemem.io import file_sha256 as sha256_file

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10

log = logging.getLogger(__name__)

CINIC_INDEX = "train_test_idx.pkl"
#: The class folders of CINIC-10's train/ and test/ (ImageFolder order: alphabetical).
CINIC_CLASSES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())
_CINIC_SPLITS = ("train", "test")
_CINIC_CACHE_VERSION = 1
#: What reading a truncated or corrupt pickle (or a foreign object in it) can raise.
_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    ImportError,
    IndexError,
    KeyError,
)


def normalize_images(
    x: np.ndarray | torch.Tensor, *, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 images (N, H, W, C) → float32 (N, C, H, W): ToTensor scaling, then Normalize.

    Same arithmetic as torchvision's ``ToTensor()`` + ``Normalize(mean, std)``, done in one pass.
    """
    t = torch.as_tensor(x)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != len(mean):
        raise DataFormatError(
            f"images: expected uint8 (N, H, W, {len(mean)}), got {t.dtype} {tuple(t.shape)}"
        )
    out = t.permute(0, 3, 1, 2).to(torch.float32).contiguous().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return out.sub_(m).div_(s)


def _fixture_cifar(cls: type[CIFAR10], marker: dict, folder: Path) -> type[CIFAR10]:
    """torchvision's ``cls`` with the md5 sums of the fixture marker instead of the real ones.

    The batches are still md5-checked, against what ``wemem data fixtures`` wrote; a file the
    marker does not list is a DataFormatError.
    """
    sums = marker["md5"]

    def md5_of(file_name: str) -> str:
        rel = f"{cls.base_folder}/{file_name}"
        if rel not in sums:
            raise DataFormatError(f"{folder / FIXTURE_MARKER}: records no md5 for {rel}")
        return sums[rel]

    return type(
        f"Fixture{cls.__name__}",
        (cls,),
        {
            "train_list": [[f, md5_of(f)] for f, _ in cls.train_list],
            "test_list": [[f, md5_of(f)] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": md5_of(cls.meta["filename"])},
        },
    )


def _cifar_class(name: str, folder: Path) -> tuple[type[CIFAR10], str, bool]:
    """torchvision's dataset class for ``name`` (with the marker's md5s in a fixture folder), the
    remedy for a bad file, and whether the folder is a fixture."""
    from torchvision.datasets import CIFAR10, CIFAR100  # torchvision only for these datasets

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    marker = read_fixture_marker(folder)
    if marker is None:
        return cls, f"Delete that folder and run `wemem data fetch {name}`.", False
    return _fixture_cifar(cls, marker, folder), "Write it again with `wemem data fixtures`.", True


def _cifar_pickle_problem(path: Path, *, key: str, meta: bool, num_classes: int) -> str | None:
    """What is wrong with one CIFAR python pickle as torchvision reads it, or None: a dict whose
    ``key`` holds the class names (``meta``), or whose ``data`` are (N, 3072) uint8 rows with N
    labels under ``key``."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except _PICKLE_ERRORS as exc:
        return f"not a readable CIFAR pickle, truncated or corrupt ({type(exc).__name__}: {exc})"
    if not isinstance(entry, dict) or key not in entry or (not meta and "data" not in entry):
        found = sorted(entry) if isinstance(entry, dict) else f"a {type(entry).__name__}"
        want = repr(key) if meta else f"'data' and {key!r}"
        return f"holds {found}; expected a dict with {want}"
    if meta:
        n = len(entry[key])
        return None if n == num_classes else f"{key} lists {n} classes; expected {num_classes}"
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        return f"data is {what}; expected uint8 (N, 3072)"
    labels = np.asarray(entry[key])
    if labels.shape != (len(data),):
        return f"{labels.shape} {key} for {len(data)} images"
    try:
        check_labels(labels, num_classes=num_classes, offset=0, source=key)
    except DataFormatError as exc:
        return str(exc)
    return None


def check_cifar(name: str, root: str | Path | None = None) -> Path:
    """Compare the md5 of every file of CIFAR ``name`` with the one torchvision (or, in a fixture
    folder, the marker) expects; returns the dataset folder. Under a second on the real datasets.

    Raises DatasetMissingError for missing files, DataFormatError naming the first file with
    another md5 and, read as torchvision reads it, what is wrong with it (truncated or corrupt
    pickle, wrong keys, shapes or labels).
    """
    folder = require_files(name, root)
    cls, remedy, fixture = _cifar_class(name, folder)
    meta = cls.meta
    key = "labels" if name == "cifar10" else "fine_labels"
    for file_name, md5 in [*cls.train_list, *cls.test_list, [meta["filename"], meta["md5"]]]:
        path = folder / cls.base_folder / file_name
        actual = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        if actual == md5:
            continue
        is_meta = file_name == meta["filename"]
        problem = _cifar_pickle_problem(
            path,
            key=meta["key"] if is_meta else key,
            meta=is_meta,
            num_classes=DATASETS[name].num_classes,
        )
        source = f"{FIXTURE_MARKER}'s record" if fixture else "torchvision's record of the file"
        raise DataFormatError(
            f"{path}: {problem or 'reads as a CIFAR pickle but was altered'}; its md5 {actual} "
            f"differs from {md5}, {source}. {remedy}"
        )
    return folder


def load_cifar(name: str, root: str | Path | None = None) -> RawPool:
    """CIFAR10 or CIFAR100 through torchvision (``download=False``): P = 50,000, T = 10,000.

    The expected files are checked first so a missing folder raises DatasetMissingError; a file
    that fails torchvision's md5 check raises DataFormatError naming it and what is wrong with it
    (:func:`check_cifar`). A fixture folder (with
    ``WEMEM_FIXTURE.json``) is read the same way, its files checked against the marker's md5s.
    """
    info = DATASETS[name]
    folder = require_files(name, root)
    cls, remedy, fixture = _cifar_class(name, folder)
    if fixture:
        log.warning("%s: fixture data (synthetic stand-in), not the real dataset: %s", name, folder)
    xs, ys = [], []
    for train in (True, False):
        try:
            ds = cls(str(folder), train=train, download=False)
        except (RuntimeError, *_PICKLE_ERRORS) as exc:
            check_cifar(name, root)  # raises naming the bad file, when it finds one
            raise DataFormatError(
                f"{name}: torchvision could not read {folder / cls.base_folder} ({exc}); the files "
                f"are corrupt or fail its md5 check. {remedy}"
            ) from exc
        data = np.asarray(ds.data)
        if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3):
            raise DataFormatError(
                f"{folder / cls.base_folder}: images are {data.dtype} {data.shape[1:]}; "
                "expected uint8 (32, 32, 3)"
            )
        xs.append(data)
        ys.append(np.asarray(ds.targets))
    y = check_labels(
        np.concatenate(ys), num_classes=info.num_classes, offset=0, source=folder / cls.base_folder
    )
    x = normalize_images(np.concatenate(xs), mean=info.mean, std=info.std)
    return RawPool(x=x, y=y, n_train=len(xs[0]))


def _images(folder: Path) -> list[Path]:
    """The files of ``folder`` that ImageFolder counts as images (by extension)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return [f for f in folder.iterdir() if f.suffix.lower() in IMG_EXTENSIONS]


def _cinic_listing(folder: Path) -> dict[str, list[tuple[str, int]]]:
    """(class folder, number of image files) of ``train/`` and ``test/``: a cheap cache key.

    Raises DataFormatError naming the folder when a split lacks a class folder, has another
    folder, or has a class folder without images.
    """
    listing = {}
    for split in _CINIC_SPLITS:
        part = folder / split
        if not part.is_dir():
            raise DataFormatError(f"{part}: not a folder; expected class folders of PNG images")
        found = sorted(d.name for d in part.iterdir() if d.is_dir())
        missing = [str(part / c) for c in CINIC_CLASSES if c not in found]
        extra = [str(part / c) for c in found if c not in CINIC_CLASSES]
        if missing or extra:
            what = "missing class folder" if missing else "unexpected folder"
            raise DataFormatError(
                f"cinic10: {what} {', '.join(missing or extra)}; {split}/ must hold exactly "
                f"the class folders {', '.join(CINIC_CLASSES)}"
            )
        listing[split] = [(c, len(_images(part / c))) for c in CINIC_CLASSES]
        empty = [c for c, n in listing[split] if n == 0]
        if empty:
            raise DataFormatError(f"{part / empty[0]}: no image files; expected PNG images")
    return listing


def check_cinic(root: str | Path | None = None) -> Path:
    """The cheap checks of a CINIC-10 folder; returns it. Each of train/ and test/ holds the ten
    class folders, each with images; the index file (when present) parses and indexes those
    images; the first image of every class folder decodes to 32x32. Reads 20 images, not all.

    Raises DatasetMissingError for missing folders, DataFormatError naming the bad one or file.
    """
    folder = require_files("cinic10", root)
    listing = _cinic_listing(folder)
    index = folder / CINIC_INDEX
    if index.exists():
        n_train, n_test = (sum(n for _, n in listing[split]) for split in _CINIC_SPLITS)
        _read_cinic_index(index, n_train, n_test)
    for split in _CINIC_SPLITS:
        for c in CINIC_CLASSES:
            _read_image(min(_images(folder / split / c)))
    return folder


def _read_cinic_index(path: Path, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)
        train_idx, test_idx = (np.asarray(a).astype(np.int64, casting="same_kind") for a in obj)
    except _PICKLE_ERRORS as exc:
        raise DataFormatError(
            f"{path}: expected a pickle of (train_idx, test_idx) integer arrays ({exc})"
        ) from exc
    for label, idx, n in (("train_idx", train_idx, n_train), ("test_idx", test_idx, n_test)):
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
            raise DataFormatError(
                f"{path}: {label} must be a 1-D array of indices in 0..{n - 1} "
                f"(the folder holds {n} images)"
            )
    return train_idx, test_idx


def _read_image(path: str | Path) -> np.ndarray:
    """(32, 32, 3) uint8 RGB; DataFormatError naming ``path`` when it is no such image."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise DataFormatError(
            f"{path}: not a readable image ({type(exc).__name__}: {exc}); expected a 32x32 PNG"
        ) from exc
    if arr.shape != (32, 32, 3):
        raise DataFormatError(f"{path}: image is {arr.shape[:2]}; expected 32x32")
    return arr


def _decode(samples: list[tuple[str, int]], desc: str) -> np.ndarray:
    x = np.empty((len(samples), 32, 32, 3), dtype=np.uint8)
    for k, (path, _) in enumerate(tqdm(samples, desc=desc, mininterval=5.0)):
        x[k] = _read_image(path)
    return x


def _build_cinic(folder: Path) -> dict[str, object]:
    try:
        from torchvision.datasets import ImageFolder

        train = ImageFolder(str(folder / "train"))
        test = ImageFolder(str(folder / "test"))
    except FileNotFoundError as exc:
        raise DataFormatError(f"cinic10: {exc}; expected class sub-folders of PNG images") from exc
    if train.classes != test.classes or len(train.classes) != DATASETS["cinic10"].num_classes:
        raise DataFormatError(
            f"{folder}: train/ has classes {train.classes} and test/ has {test.classes}; "
            "expected the same 10 class folders"
        )
    index = folder / CINIC_INDEX
    if index.exists():
        train_idx, test_idx = _read_cinic_index(index, len(train), len(test))
    else:
        log.warning("cinic10: %s not found; using all train/ and test/ images in order", index)
        train_idx, test_idx = np.arange(len(train)), np.arange(len(test))
    samples = [train.samples[i] for i in train_idx] + [test.samples[i] for i in test_idx]
    x = _decode(samples, desc="decoding CINIC-10")
    y = np.array([target for _, target in samples], dtype=np.int64)
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "n_train": len(train_idx)}


def load_cinic(root: str | Path | None = None) -> RawPool:
    """CINIC-10 from ImageFolder trees ``train/`` and ``test/`` (``valid/`` is unused).

    With ``train_test_idx.pkl``: P = train images in train_idx order (90,000), T = test images at
    test_idx (31,499). Without it: all train images, then all test images, in folder order. The
    decoded uint8 images are cached in ``.wemem_cache_<digest>.pt`` (keyed on the folder listing
    and the index file's sha256), so PIL decoding happens once.
    """
    info = DATASETS["cinic10"]
    folder = require_files("cinic10", root)
    index = folder / CINIC_INDEX
    key = digest_of(
        {
            "version": _CINIC_CACHE_VERSION,
            **_cinic_listing(folder),
            "index": sha256_file(index) if index.exists() else None,
        }
    )
    cache = folder / f".wemem_cache_{key}.pt"
    if cache.exists():
        log.info("cinic10: reading decoded images from %s", cache)
        data = torch.load(cache, weights_only=True)
    else:
        data = _build_cinic(folder)
        with atomic_path(cache) as tmp:
            torch.save(data, tmp)
        prune_caches(folder, keep=cache)
        log.info("cinic10: cached decoded images in %s", cache)
    y = check_labels(data["y"].numpy(), num_classes=info.num_classes, offset=0, source=folder)
    x = normalize_images(data["x"], mean=info.mean, std=info.std)
    return RawPool(x=x, y=y, n_train=int(data["n_train"]))


def load_digits_pool(*, pool_seed: int) -> RawPool:
    """sklearn's 8x8 digits (1,797 images, 10 classes), scaled to [0, 1], as (N, 1, 8, 8).

    P/T is a seeded 80/20 split (1,437 / 360), as for the tabular sets.
    """
    from sklearn.datasets import load_digits  # here: importing scikit-learn costs ~2.5 s

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    order, n_train = split_pool(len(y), seed=pool_seed)
    return RawPool(x=torch.from_numpy(np.ascontiguousarray(x[order])), y=y[order], n_train=n_train)
