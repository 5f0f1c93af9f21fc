import torch

from wemem.cache import Cache, digest


def test_get_or_compute_hits_after_first_miss(tmp_path):
    c = Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3)}

    a, hit_a = c.get_or_compute("dense", {"lr": 0.1}, compute)
    b, hit_b = c.get_or_compute("dense", {"lr": 0.1}, compute)
    assert (hit_a, hit_b) == (False, True) and len(calls) == 1
    assert torch.equal(a["w"], b["w"])
    c.get_or_compute("dense", {"lr": 0.2}, compute)
    assert len(calls) == 2


def test_key_is_canonical_and_kind_specific(tmp_path):
    c = Cache(tmp_path)
    assert c.key("dense", {"a": 1, "b": 2}) == c.key("dense", {"b": 2, "a": 1})
    assert c.key("dense", {"a": 1}) != c.key("pruned", {"a": 1})
    assert digest({"x": [1, 2]}) != digest({"x": [2, 1]})


def test_corrupted_or_truncated_entry_is_detected_and_recomputed(tmp_path):
    c = Cache(tmp_path)
    c.get_or_compute("dense", {"k": 1}, lambda: {"w": torch.ones(100)})
    (payload,) = (tmp_path / "dense").rglob("*.pt")
    payload.write_bytes(payload.read_bytes()[:50])
    calls = []
    obj, hit = c.get_or_compute("dense", {"k": 1}, lambda: calls.append(1) or {"w": torch.zeros(1)})
    assert not hit and calls == [1] and obj["w"].tolist() == [0.0]


def test_no_temporary_files_left(tmp_path):
    c = Cache(tmp_path)
    c.save("dense", "ab" * 32, {"x": 1}, {"spec": 1})
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
