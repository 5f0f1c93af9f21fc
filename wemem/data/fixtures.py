"""Small synthetic stand-ins for the six paper datasets, in their real on-disk formats.

``wemem data fixtures DIR`` (:func:`write_fixtures`) writes ``DIR/<name>/`` for cifar10, cifar100,
cinic10, texas100, location30 and purchase100 with exactly the files the real loaders read (CIFAR
python pickles, CINIC-10 PNG trees and its index file, the Texas/Purchase text files, the Location
``.npz``), the paper's class counts and input widths, but a few thousand rows at most. With
``WEMEM_DATA=DIR`` the paper profile then runs end to end on a CPU as a smoke test.

What the rows look like:

* Learnable class structure: images are a class colour plus a class pattern (8x8-pixel blocks),
  a per-image pattern and pixel noise; binary features follow per-class Bernoulli probabilities
  (shared background rates, raised on each class's characteristic features). 5 % of the rows are
  drawn from another class than their label (label noise), so members are not trivially separable.
* Coverage of the spec §5.2 splits: the labels are assigned so that, with the project's split
  settings (:data:`COVERAGE`: split seed 7, P/T seed 7 of the tabular sets, 90 % members, 34 % dev,
  up to 5 shadows), every class has at least ``min_rows`` rows in the members, dev and test parts
  of the victim and of every shadow. Other seeds give random splits, which usually but not surely
  cover every class.
* Determinism: every draw comes from ``np.random.default_rng([seed, <dataset number>])`` and no
  file carries a timestamp, so the same seed gives byte-identical files.

Each folder carries ``WEMEM_FIXTURE.json`` (:data:`~wemem.data.files.FIXTURE_MARKER`): the
generator, seed, sizes and the md5 of every file written. The CIFAR loader checks the batches
against those md5 sums instead of torchvision's, and the pool digest includes the marker's digest,
so cached models of a fixture never mix with those of the real dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import secrets
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wemem.data.files import FIXTURE_MARKER, SUMS_NAME, read_fixture_marker
from wemem.data.registry import DATASETS
from wemem.data.splits import make_splits
from wemem.data.tabular import split_pool
from wemem.errors import ParamsError, WememError

log = logging.getLogger(__name__)

GENERATOR = "wemem.data.fixtures"
FIXTURE_VERSION = 1
#: The paper datasets a fixture can stand in for, in the order they are written.
FIXTURE_NAMES = ("cifar10", "cifar100", "cinic10", "texas100", "location30", "purchase100")
#: Rows per class (P and T together) when ``per_class`` is not given: the smallest counts that
#: cover every part of :data:`COVERAGE` twice, plus some slack (tests/data/test_fixtures.py).
DEFAULT_PER_CLASS = {
    "cifar10": 60,
    "cifar100": 32,
    "cinic10": 60,
    "texas100": 28,
    "location30": 40,
    "purchase100": 28,
}
#: Share of the rows whose features come from another class than their label.
LABEL_NOISE = 0.05
#: The split settings whose parts every class covers: ``wemem.params.Settings``' split defaults
#: and ``load_pool``'s ``pool_seed``, with the most shadows a paper run uses.
COVERAGE = {
    "split_seed": 7,
    "pool_seed": 7,
    "n_shadows": 5,
    "member_fraction": 0.9,
    "dev_fraction": 0.34,
    "min_rows": 2,
}
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


# --- labels: every class in every part of the §5.2 splits ---------------------------------------


def split_parts(n_train: int, n_test: int) -> np.ndarray:
    """(N, 3 * models) bool: row r lies in part p (members, dev, test of victim, shadow 0, ...).

    The parts are those of :func:`wemem.data.splits.make_splits` with the :data:`COVERAGE`
    settings, in pool-row space.
    """
    splits = make_splits(
        n_train,
        n_test,
        n_shadows=COVERAGE["n_shadows"],
        seed=COVERAGE["split_seed"],
        member_fraction=COVERAGE["member_fraction"],
        dev_fraction=COVERAGE["dev_fraction"],
    )
    parts = np.zeros((n_train + n_test, 3 * len(splits.models)), dtype=bool)
    for m, model in enumerate(splits.models):
        for k, rows in enumerate((model.train, model.dev, model.test)):
            parts[rows, 3 * m + k] = True
    return parts


def cover_labels(
    parts: np.ndarray, num_classes: int, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """Labels (N,) with ``per_class`` rows each that put every class into every part.

    Greedy set cover, one row per class in turn: each class takes the free row that lies in the
    most parts it still lacks (``COVERAGE['min_rows']`` rows each), until it lacks none or has
    ``per_class`` rows. The remaining rows get the remaining labels in random order. Returns the
    labels and whether the cover is complete (it is not when ``per_class`` is too small).
    """
    n_rows, n_parts = parts.shape
    if n_rows != num_classes * per_class:
        raise ValueError(f"{n_rows} rows for {num_classes} classes x {per_class}")
    weight = parts.astype(np.float64)
    tie_break = rng.random(n_rows) * 1e-3
    labels = np.full(n_rows, -1, dtype=np.int64)
    lacking = np.full((num_classes, n_parts), COVERAGE["min_rows"], dtype=np.int64)
    taken = np.zeros(num_classes, dtype=np.int64)
    open_ = np.ones(num_classes, dtype=bool)
    while open_.any():
        for c in np.flatnonzero(open_):
            gain = weight @ (lacking[c] > 0) + tie_break
            gain[labels >= 0] = -np.inf
            row = int(np.argmax(gain))
            if gain[row] < 1 or taken[c] >= per_class:
                open_[c] = False
                continue
            labels[row] = c
            taken[c] += 1
            lacking[c] = np.maximum(lacking[c] - parts[row], 0)
            open_[c] = bool(lacking[c].any())
    rest = np.repeat(np.arange(num_classes), per_class - taken)
    free = np.flatnonzero(labels < 0)
    labels[rng.permutation(free)] = rng.permutation(rest)
    return labels, not lacking.any()


def draw_labels(name: str, per_class: int, n_test: int, rng: np.random.Generator) -> Labelled:
    """Stored labels (pool order) covering every split part, and the classes that draw the rows."""
    num_classes = DATASETS[name].num_classes
    n_train = num_classes * per_class - n_test
    y, covered = cover_labels(split_parts(n_train, n_test), num_classes, per_class, rng)
    if not covered:
        log.warning(
            "%s fixture: per_class=%d is too small for every class to have %d rows in every part "
            "of the victim and %d shadow splits",
            name,
            per_class,
            COVERAGE["min_rows"],
            COVERAGE["n_shadows"],
        )
    noisy = rng.random(len(y)) < LABEL_NOISE
    source = np.where(noisy, (y + rng.integers(1, num_classes, len(y))) % num_classes, y)
    return Labelled(y=y, source=source, n_train=n_train, covered=covered)


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
    order, _ = split_pool(len(labelled.y), seed=COVERAGE["pool_seed"])
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
    data_files = sorted(_relative_files(folder))
    (folder / SUMS_NAME).write_text(
        "".join(f"{_file_hash(folder / rel, 'sha256')}  {rel}\n" for rel in data_files)
    )


# --- one dataset folder, written atomically ------------------------------------------------------


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _file_hash(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def _test_share(name: str) -> float:
    """|T| / (|P| + |T|): the real pools' share for images; the loaders' 20 % for tabular sets."""
    info = DATASETS[name]
    if info.kind == "tabular":
        return 0.2
    n_train, n_test = info.pool_sizes
    return n_test / (n_train + n_test)


def _generate(folder: Path, name: str, *, seed: int, per_class: int) -> dict[str, object]:
    """Write the data files of ``name`` into ``folder``; return the marker's content."""
    info = DATASETS[name]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    n = info.num_classes * per_class
    if info.kind == "tabular":
        n_test = n - split_pool(n, seed=COVERAGE["pool_seed"])[1]
    else:
        n_test = round(n * _test_share(name))
    labelled = draw_labels(name, per_class, n_test, rng)
    if name == "cifar10":
        write_cifar10(folder, labelled, rng)
    elif name == "cifar100":
        write_cifar100(folder, labelled, rng)
    elif name == "cinic10":
        write_cinic(folder, labelled, rng)
    else:
        write_tabular(folder, name, labelled, rng)
    return {
        "generator": GENERATOR,
        "version": FIXTURE_VERSION,
        "note": "synthetic stand-in written by `wemem data fixtures`, not the real dataset",
        "dataset": name,
        "seed": seed,
        "per_class": per_class,
        "num_classes": info.num_classes,
        "input_shape": list(info.input_shape),
        "rows": {"train_pool": labelled.n_train, "test_pool": n_test},
        "label_noise": LABEL_NOISE,
        "coverage": {**COVERAGE, "complete": labelled.covered},
        "md5": {rel: _file_hash(folder / rel, "md5") for rel in _relative_files(folder)},
    }


def _check_target(target: Path) -> None:
    """A fixture may replace an absent or empty folder or an older fixture, nothing else."""
    if not target.exists():
        return
    if not target.is_dir():
        raise WememError(f"fixtures: {target} exists and is not a folder")
    if any(target.iterdir()) and not (target / FIXTURE_MARKER).is_file():
        raise WememError(
            f"fixtures: {target} holds files but no {FIXTURE_MARKER}, so it may be the real "
            "dataset; refusing to replace it (choose another DIR, or delete that folder)"
        )


def _swap_in(staged: Path, target: Path) -> None:
    """Put ``staged`` at ``target`` by renames; a previous fixture there is removed after."""
    if not target.exists():
        staged.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    staged.rename(target)
    shutil.rmtree(old)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(root: Path, name: str) -> None:
    """Remove staging folders ``.<name>.fixture-<pid>-*`` that an interrupted run left behind."""
    for stale in root.glob(f".{name}.fixture-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if stale.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            log.info("removing %s, left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)


def write_dataset(root: Path, name: str, *, seed: int, per_class: int) -> Path:
    """Write ``root/<name>`` (files and marker) into a hidden staging folder next to it, then
    rename it into place, so an interrupted run leaves no half-written dataset folder."""
    target = root / name
    _check_target(target)
    _remove_stale(root, name)
    staged = root / f".{name}.fixture-{os.getpid()}-{secrets.token_hex(4)}"
    staged.mkdir()
    try:
        marker = _generate(staged, name, seed=seed, per_class=per_class)
        text = json.dumps(marker, indent=1, sort_keys=True) + "\n"
        (staged / FIXTURE_MARKER).write_text(text)
        _swap_in(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    log.info("%s: fixture written to %s", name, target)
    return target


def _check_args(seed: object, per_class: object, only: object) -> tuple[str, ...]:
    for field, value, low in (("seed", seed, 0), ("per_class", per_class, 1)):
        if value is None and field == "per_class":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ParamsError(
                f"fixtures: {field} {value!r} is not allowed; must be an int >= {low}"
            )
    if only is None:
        return FIXTURE_NAMES
    names = [only] if isinstance(only, str) else list(only)
    unknown = [n for n in names if n not in FIXTURE_NAMES]
    if unknown or not names:
        raise ParamsError(
            f"fixtures: only={names!r} is not allowed; choose from {', '.join(FIXTURE_NAMES)}"
        )
    return tuple(n for n in FIXTURE_NAMES if n in names)


def write_fixtures(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int | None = None,
    only: str | list[str] | tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Write the fixtures of the six paper datasets (or those in ``only``) under ``root``.

    Args:
        root: the data root to fill; ``root/<name>/`` is what ``WEMEM_DATA=root`` makes the
            loaders read. An existing fixture folder is replaced; a folder without the marker
            (possibly the real dataset) is refused.
        seed: the one seed of every draw; the same seed gives byte-identical files.
        per_class: rows per class in P and T together (default :data:`DEFAULT_PER_CLASS`).
            CINIC-10's unused test/ and valid/ images come on top.
        only: dataset names to write (default all six).

    Returns:
        {name: dataset folder}, in :data:`FIXTURE_NAMES` order.

    Raises:
        ParamsError: unknown name or bad seed/per_class.
        WememError: ``root`` is not a writable folder, or a target holds non-fixture files.
    """
    names = _check_args(seed, per_class, only)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise WememError(f"fixtures: {root} is a file, not a folder")
    written: dict[str, Path] = {}
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in names:
            k = per_class if per_class is not None else DEFAULT_PER_CLASS[name]
            written[name] = write_dataset(root, name, seed=seed, per_class=k)
    except OSError as exc:
        raise WememError(f"fixtures: cannot write under {root}: {exc}") from exc
    return written


def describe(folder: Path) -> dict[str, object]:
    """The marker of a fixture folder (what ``wemem data fixtures`` prints); {} when absent."""
    return read_fixture_marker(folder) or {}
