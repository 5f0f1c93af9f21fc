"""The on-disk formats of the dataset fixtures (:mod:`wemem.data.fixtures`) and their rows.

One writer per format: the CIFAR-10/100 python pickles (:func:`write_cifar10`,
:func:`write_cifar100`), the CINIC-10 PNG trees and their index file (:func:`write_cinic`) and the
Texas/Location/Purchase files with their ``SHA256SUMS`` (:func:`write_tabular`), with the class
structure the rows are drawn from (:class:`ImageClasses`, :func:`class_features`). Every draw
comes from the ``rng`` passed in and no file carries a timestamp, so the same draws give
byte-identical files. The labels (:class:`Labelled`) are chosen by :mod:`wemem.data.fixtures`,
which imports this module (never the other way round).
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wemem.data.files import SUMS_NAME
from wemem.data.registry import DATASETS
from wemem.data.tabular import split_pool

#: ``load_pool``'s ``pool_seed``: the tabular files' rows are ordered so that this seed's
#: P/T split gives the fixture's pool (:data:`wemem.data.fixtures.COVERAGE` repeats it).
POOL_SEED = 7
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the fixed zip-entry time of the .npz (zip's earliest date)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: CIFAR-100's superclasses and their fine classes; both label lists are alphabetical, as in
#: the real ``meta`` file.
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
#: WordNet ids of the ImageNet synsets CINIC-10 draws each class from (its file-name prefixes).
CINIC_SYNSETS = {
    "airplane": "n02691156",
    "automobile": "n02958343",
    "bird": "n01503061",
    "cat": "n02121808",
    "deer": "n02430045",
    "dog": "n02084071",
    "frog": "n01639765",
    "horse": "n02374451",
    "ship": "n04194289",
    "truck": "n04490091",
}


@dataclass(frozen=True)
class Labelled:
    """A fixture's pool before it is written: stored labels and the class each row is drawn from.

    ``y`` (N,) are the labels written to disk, pool order (P rows first); ``source`` (N,) the class
    whose distribution generated the row (``y`` except for the label-noise rows); ``n_train`` = |P|.
    """

    y: np.ndarray
    source: np.ndarray
    n_train: int
    covered: bool


# --- features -----------------------------------------------------------------------------------


def _blocks(a: np.ndarray) -> np.ndarray:
    """(n, 4, 4, 3) → (n, 32, 32, 3): each value fills an 8x8 block."""
    return np.repeat(np.repeat(a, 8, axis=1), 8, axis=2)


@dataclass(frozen=True)
class ImageClasses:
    """What makes a class in the image fixtures: a colour (C, 1, 1, 3) and a pattern of 8x8-pixel
    blocks (C, 32, 32, 3), both float32 on the 0..255 scale."""

    colour: np.ndarray
    pattern: np.ndarray

    @classmethod
    def draw(cls, num_classes: int, rng: np.random.Generator) -> ImageClasses:
        """Colours within 128 +- 16 per channel, patterns with standard deviation 14."""
        colour = 128 + rng.uniform(-16, 16, size=(num_classes, 1, 1, 3)).astype(np.float32)
        pattern = 14 * _blocks(rng.standard_normal((num_classes, 4, 4, 3), dtype=np.float32))
        return cls(colour=colour, pattern=pattern)

    def sample(self, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 (N, 32, 32, 3): class colour + class pattern + own pattern + pixel noise."""
        x = self.colour[source] + self.pattern[source]
        x += 32 * _blocks(rng.standard_normal((len(source), 4, 4, 3), dtype=np.float32))
        x += 40 * rng.standard_normal(x.shape, dtype=np.float32)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


#: Bernoulli profile of each tabular set: background rate, share of characteristic features per
#: class and how much those are raised.
PROFILES = {
    "texas100": {"density": 0.03, "marked": 0.02, "lift": 0.16},
    "location30": {"density": 0.15, "marked": 0.10, "lift": 0.22},
    "purchase100": {"density": 0.10, "marked": 0.08, "lift": 0.25},
}


def class_features(source: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, width) 0/1 rows drawn from per-class Bernoulli probabilities (:data:`PROFILES`)."""
    info, profile = DATASETS[name], PROFILES[name]
    width = info.input_shape[0]
    base = profile["density"] * rng.uniform(0.25, 1.75, size=width)
    marked = rng.random((info.num_classes, width)) < profile["marked"]
    probs = np.where(marked, base + profile["lift"], base).astype(np.float32)
    return (rng.random((len(source), width), dtype=np.float32) < probs[source]).astype(np.uint8)


# --- writers: one per on-disk format ------------------------------------------------------------


def _pickle(path: Path, obj: object) -> None:
    """Pickle with protocol 2, as the Python 2 originals (str keys: what torchvision reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _image_names(label_names: list[str], y: np.ndarray, rng: np.random.Generator) -> list[str]:
    """CIFAR-style file names, e.g. ``airplane_s_000123.png``, unique within the file."""
    ids = rng.choice(1_000_000, size=len(y), replace=False)
    return [
        f"{label_names[c]}_s_{i:06d}.png" for c, i in zip(y.tolist(), ids.tolist(), strict=True)
    ]


def _cifar_data(labelled: Labelled, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 3072) uint8 rows as in the CIFAR batches: the R, G, B planes of each image in turn."""
    x = ImageClasses.draw(num_classes, rng).sample(labelled.source, rng)
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def write_cifar10(folder: Path, labelled: Labelled, rng: np.random.Generator) -> None:
    """``cifar-10-batches-py/``: ``data_batch_1..5`` (P in five near-equal parts), ``test_batch``
    (T) and ``batches.meta``, pickled dicts as in the real archive (``labels`` a list)."""
    base, y = folder / "cifar-10-batches-py", labelled.y
    data = _cifar_data(labelled, 10, rng)
    names = _image_names(list(CIFAR10_CLASSES), y, rng)
    batches = np.array_split(np.arange(labelled.n_train), 5)
    files = [(f"data_batch_{i}", f"training batch {i} of 5", b) for i, b in enumerate(batches, 1)]
    files.append(("test_batch", "testing batch 1 of 1", np.arange(labelled.n_train, len(y))))
    for file_name, batch_label, rows in files:
        batch = {
            "batch_label": batch_label,
            "labels": y[rows].tolist(),
            "data": data[rows],
            "filenames": [names[r] for r in rows],
        }
        _pickle(base / file_name, batch)
    meta = {"num_cases_per_batch": len(batches[0]), "label_names": list(CIFAR10_CLASSES)}
    _pickle(base / "batches.meta", {**meta, "num_vis": 3072})


def write_cifar100(folder: Path, labelled: Labelled, rng: np.random.Generator) -> None:
    """``cifar-100-python/``: ``train`` (P), ``test`` (T) with fine and coarse labels, and
    ``meta`` with both label-name lists, pickled dicts as in the real archive."""
    base, y = folder / "cifar-100-python", labelled.y
    fine = sorted(f for group in CIFAR100_SUPERCLASSES.values() for f in group)
    coarse = sorted(CIFAR100_SUPERCLASSES)
    coarse_of = np.empty(len(fine), dtype=np.int64)
    for k, group in enumerate(coarse):
        coarse_of[[fine.index(f) for f in CIFAR100_SUPERCLASSES[group]]] = k
    data = _cifar_data(labelled, 100, rng)
    names = _image_names(fine, y, rng)
    for file_name, batch_label, rows in (
        ("train", "training batch 1 of 1", np.arange(labelled.n_train)),
        ("test", "testing batch 1 of 1", np.arange(labelled.n_train, len(y))),
    ):
        batch = {
            "filenames": [names[r] for r in rows],
            "batch_label": batch_label,
            "fine_labels": y[rows].tolist(),
            "coarse_labels": coarse_of[y[rows]].tolist(),
            "data": data[rows],
        }
        _pickle(base / file_name, batch)
    _pickle(base / "meta", {"fine_label_names": fine, "coarse_label_names": coarse})


def _cinic_names(part: str, cls: str, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` sorted CINIC-10 file names: about 2/9 ``cifar10-<part>-<k>.png`` (CIFAR images), the
    rest ``<synset>_<k>.png`` (ImageNet images), as in the real folders."""
    n_cifar = (2 * n + 8) // 9
    ids = rng.choice(100_000, size=n, replace=False).tolist()
    names = [f"cifar10-{part}-{k}.png" for k in ids[:n_cifar]]
    names += [f"{CINIC_SYNSETS[cls]}_{k}.png" for k in ids[n_cifar:]]
    return sorted(names)


def _write_pngs(folder: Path, names: list[str], images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, pixels in zip(names, images, strict=True):
        Image.fromarray(pixels).save(folder / file_name, format="PNG")


def _cinic_part(
    folder: Path,
    part: str,
    y: np.ndarray,
    x: np.ndarray,
    extra: int,
    classes: ImageClasses,
    rng: np.random.Generator,
) -> np.ndarray:
    """Write ``part/<class>/*.png`` holding the rows ``x`` (labels ``y``) plus ``extra`` unused
    images per class (at least one in a class without rows); return each row's index in
    ImageFolder order (class, then file name)."""
    index = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c, cls in enumerate(CINIC_SYNSETS):
        rows = np.flatnonzero(y == c)
        n_extra = extra if len(rows) else max(extra, 1)  # ImageFolder needs no empty class
        n = len(rows) + n_extra
        names = _cinic_names(part, cls, n, rng)
        slots = rng.permutation(n)  # the file positions of this class's rows, then the extras
        images = np.empty((n, 32, 32, 3), dtype=np.uint8)
        images[slots[: len(rows)]] = x[rows]
        if n_extra:
            images[slots[len(rows) :]] = classes.sample(np.full(n_extra, c), rng)
        _write_pngs(folder / part / cls, names, images)
        index[rows] = offset + slots[: len(rows)]
        offset += n
    return index


def write_cinic(folder: Path, labelled: Labelled, rng: np.random.Generator) -> None:
    """``train/``, ``test/`` and ``valid/`` ImageFolder trees of PNGs, and ``train_test_idx.pkl``:
    (train_idx, test_idx) into the ImageFolder order of train/ and test/, as the authors' file.

    P is all of train/ in train_idx order; T is the test/ images at test_idx; test/ also holds
    unused images, as the real one (90,000 images, 31,499 indexed), and valid/ is never read.
    """
    y, n_train = labelled.y, labelled.n_train
    classes = ImageClasses.draw(10, rng)
    x = classes.sample(labelled.source, rng)
    extra = max(1, len(y) // 100)
    train_idx = _cinic_part(folder, "train", y[:n_train], x[:n_train], 0, classes, rng)
    test_idx = _cinic_part(folder, "test", y[n_train:], x[n_train:], extra, classes, rng)
    valid_y = np.repeat(np.arange(10), extra)
    _cinic_part(folder, "valid", valid_y, classes.sample(valid_y, rng), 0, classes, rng)
    _pickle(folder / "train_test_idx.pkl", (train_idx, test_idx))


def _csv_rows(x: np.ndarray) -> np.ndarray:
    """uint8 0/1 (n, d) → (n, 2d) bytes ``0,1,...,0\\n`` per row."""
    out = np.full((x.shape[0], 2 * x.shape[1]), ord(","), dtype=np.uint8)
    out[:, 0::2] = x + ord("0")
    out[:, -1] = ord("\n")
    return out


def _lines(values: np.ndarray) -> bytes:
    return "".join(f"{v}\n" for v in values.tolist()).encode()


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed, keys ``<name>.npy``) with fixed zip-entry times."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            with zf.open(entry, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def write_tabular(folder: Path, name: str, labelled: Labelled, rng: np.random.Generator) -> None:
    """Texas100 ``texas/100/feats`` + ``labels``, Location30 ``data_complete.npz`` (x float64,
    y 1-based) or Purchase100 ``purchase100.txt`` (label, then 600 features), file rows in the
    order that ``split_pool(N, seed=7)`` turns into this pool; and ``SHA256SUMS``, as a fetch."""
    order, _ = split_pool(len(labelled.y), seed=POOL_SEED)
    y = np.empty_like(labelled.y)
    source = np.empty_like(labelled.source)
    y[order], source[order] = labelled.y + 1, labelled.source
    x = class_features(source, name, rng)
    if name == "texas100":
        (folder / "texas" / "100").mkdir(parents=True)
        (folder / "texas" / "100" / "feats").write_bytes(_csv_rows(x).tobytes())
        (folder / "texas" / "100" / "labels").write_bytes(_lines(y))
    elif name == "location30":
        _write_npz(folder / "data_complete.npz", x=x.astype(np.float64), y=y)
    else:
        rows = _csv_rows(x)
        prefixes = [f"{v},".encode() for v in y.tolist()]
        lines = (p + r.tobytes() for p, r in zip(prefixes, rows, strict=True))
        (folder / "purchase100.txt").write_bytes(b"".join(lines))
    data_files = sorted(relative_files(folder))
    (folder / SUMS_NAME).write_text(
        "".join(f"{file_hash(folder / rel, 'sha256')}  {rel}\n" for rel in data_files)
    )


# --- file listing and hashes -------------------------------------------------------------------


def relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def file_hash(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()
