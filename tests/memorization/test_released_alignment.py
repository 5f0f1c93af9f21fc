"""Alignment of a released mem-score file with its pool: name, share with m ≥ τ, order."""

import numpy as np
import pytest

from wemem.errors import DataFormatError, ParamsError
from wemem.memorization import released, tau


def _class_structured(n, c, *, spread, seed=0):
    """(scores, labels): class means drawn with sd ``spread`` around 0.4, within-class sd 0.11
    (the released CIFAR10-ResNet18 file's sd, spec §3.2)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    means = rng.normal(0.4, spread, c)
    return means[labels] + rng.normal(0, 0.11, n), labels


def _with_share(scores, *, tau_value, share):
    """A monotone map of ``scores`` onto [0, 1] with exactly ``share`` of them ≥ ``tau_value``
    (ranks unchanged, so the class dependence is the same)."""
    s = tau.normalize_minmax(scores)
    t = np.sort(s)[s.size - round(share * s.size)]
    return np.where(s < t, s / t * tau_value, tau_value + (s - t) / (1 - t) * (1 - tau_value))


def test_class_dependence_hand_worked():
    # ranks 1..4, centred ±1.5, ±0.5: total 5, class sums −2 and 2 → (4/2 + 4/2) / 5
    d = released.class_dependence([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1])
    assert d.observed == pytest.approx(0.8) and d.permutations == released.N_PERMUTATIONS
    # ties share their average rank (1.5, 1.5, 3.5, 3.5): the classes explain everything
    assert released.class_dependence([1.0, 1.0, 2.0, 2.0], [3, 3, 7, 7]).observed == 1.0
    assert released.class_dependence([0.5] * 4, [0, 0, 1, 1]).z == 0.0  # constant scores
    with pytest.raises(ParamsError, match="labels"):
        released.class_dependence([1.0, 2.0], [0, 1, 1])
    with pytest.raises(ParamsError, match="class"):
        released.class_dependence([1.0, 2.0], [0, 0])


@pytest.mark.parametrize("n, c, spread", [(20_000, 10, 0.01), (20_000, 100, 0.02)])
def test_threshold_passes_weakly_structured_files_and_fails_shuffled_ones(n, c, spread):
    """Justifies MIN_Z: class means only 0.01–0.02 apart in sd (classes explain ~1–3 % of the
    variance) still lie far above it, while every shuffle of the same file lies far below."""
    scores, labels = _class_structured(n, c, spread=spread)
    assert released.class_dependence(scores, labels).z > 3 * released.MIN_Z
    rng = np.random.default_rng(1)
    z = [released.class_dependence(rng.permutation(scores), labels).z for _ in range(8)]
    assert max(z) < released.MIN_Z / 2 and abs(np.mean(z)) < 1.5  # a draw of the null


def test_aligned_file_passes_and_permuted_rows_fail(tmp_path):
    scores, labels = _class_structured(5_000, 10, spread=0.05)
    path = tmp_path / "memscore_texas_columnfc.csv"
    a = released.check_alignment(scores, labels, path=path, dataset="texas100", arch="fc")
    assert a.share is None and not a.name_checked  # no released Texas file: (a), (b) skipped
    assert a.dependence.z >= released.MIN_Z
    moved = np.random.default_rng(3).permutation(scores)
    with pytest.raises(DataFormatError) as err:
        released.check_alignment(moved, labels, path=path, dataset="texas100", arch="fc")
    msg = str(err.value)
    assert str(path) in msg and "texas100" in msg
    assert "row i must be the score of pool row i" in msg.lower()
    assert released.expected_order("texas100") in msg


def test_share_identifies_the_dataset_arch_file(tmp_path):
    raw, labels = _class_structured(50_000, 10, spread=0.03)
    good = _with_share(raw, tau_value=0.5, share=0.176)  # CIFAR10-ResNet18, spec §2.4
    name = released.released_filename("cifar10", "resnet18")
    a = released.check_alignment(
        good, labels, path=tmp_path / name, dataset="cifar10", arch="resnet18"
    )
    assert a.name_checked and a.share == pytest.approx(0.176, abs=1e-9)
    # the same scores claimed as the VGG16bn file (5.0 % at τ = 0.5): wrong share
    vgg = tmp_path / released.released_filename("cifar10", "vgg16bn")
    with pytest.raises(DataFormatError, match=r"17\.60%.*5\.0%.*matches the share of \(cifar10, "):
        released.check_alignment(good, labels, path=vgg, dataset="cifar10", arch="vgg16bn")
    # 0.3 % off is already too far (DenseNet121 is 17.9 %)
    off = _with_share(raw, tau_value=0.5, share=0.179)
    with pytest.raises(DataFormatError, match="not the released file of"):
        released.check_alignment(
            off, labels, path=tmp_path / name, dataset="cifar10", arch="resnet18"
        )
    # right share, rows in another order: the order check catches it
    with pytest.raises(DataFormatError, match="torchvision CIFAR-10 training split"):
        released.check_alignment(
            np.random.default_rng(5).permutation(good),
            labels,
            path=tmp_path / name,
            dataset="cifar10",
            arch="resnet18",
        )


def test_file_name_must_be_the_released_one_unless_opted_out(tmp_path):
    raw, labels = _class_structured(4_008, 30, spread=0.05)
    scores = _with_share(raw, tau_value=0.6, share=0.055)  # Location-FC
    kw = {"dataset": "location30", "arch": "fc"}
    with pytest.raises(DataFormatError, match="memscore_location_columnfc.csv"):
        released.check_alignment(scores, labels, path=tmp_path / "scores.csv", **kw)
    a = released.check_alignment(
        scores, labels, path=tmp_path / "scores.csv", require_official_name=False, **kw
    )
    assert not a.name_checked and a.share == pytest.approx(0.055, abs=1e-3)
    released.check_alignment(scores, labels, path=tmp_path / "memscore_location_columnfc.csv", **kw)


def test_expected_order_names_every_dataset():
    assert "train_idx" in released.expected_order("cinic10")
    assert "location.pkl" in released.expected_order("location30")
    assert "cifar-100-python/train" in released.expected_order("cifar100")
    assert "synthetic" in released.expected_order("synthetic")
