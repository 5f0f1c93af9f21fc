import hashlib
import io
import json
import logging
import os
import pickle
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from wemem.cache import FORMAT, TAG, Cache, decode, digest, encode, payload_type, verify


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


# ----------------------------------------------------------------------------- plain-data payloads


@payload_type
@dataclass
class _Payload:
    arrays: dict
    label: str
    count: int
    nested: list = field(default_factory=list)
    extra: np.ndarray | None = None


def _arrays() -> dict:
    big_endian = np.arange(6, dtype=">f8").reshape(2, 3)
    return {
        "bool": np.array([True, False, True]),
        "int64": np.arange(5, dtype=np.int64),
        "uint8": np.array([[0, 255], [7, 9]], dtype=np.uint8),
        "float32": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        "float64": np.array([np.pi, -0.0, np.inf, np.nan]),
        "zero_d": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "strided": np.arange(20, dtype=np.float64).reshape(4, 5)[::2, 1::2],  # not contiguous
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "big_endian": big_endian,
    }


def _assert_same_array(got, want, what):
    assert isinstance(got, np.ndarray), what
    assert got.dtype == want.dtype and got.shape == want.shape, what
    np.testing.assert_array_equal(got, want, err_msg=what)


def test_dataclass_with_numpy_arrays_round_trips(tmp_path):
    c = Cache(tmp_path)
    inner = _Payload({"x": np.ones(2, dtype=np.float32)}, "inner", 0)
    obj = {
        "payload": _Payload(
            _arrays(), "outer", 7, nested=[inner, (np.int64(3), np.float32(0.5))], extra=None
        ),
        "state": {"w": torch.arange(4.0)},
        "tagged": {TAG: "not a tag of ours", "v": np.bool_(True)},
        "scalars": [np.float64(1.25), np.int32(-2), np.bool_(False), 4, 1.0, "s", None, b"b"],
    }
    key = c.key("dense", {"k": 1})
    c.save("dense", key, obj, {"k": 1})
    back = c.load("dense", key)

    got = back["payload"]
    assert type(got) is _Payload and (got.label, got.count, got.extra) == ("outer", 7, None)
    for name, want in _arrays().items():
        _assert_same_array(got.arrays[name], want, name)
    assert type(got.nested[0]) is _Payload and got.nested[0].label == "inner"
    _assert_same_array(got.nested[0].arrays["x"], np.ones(2, dtype=np.float32), "inner x")
    assert got.nested[1] == (3, 0.5) and type(got.nested[1]) is tuple
    assert torch.equal(back["state"]["w"], torch.arange(4.0))
    assert back["tagged"] == {TAG: "not a tag of ours", "v": True}
    assert back["scalars"] == [1.25, -2, False, 4, 1.0, "s", None, b"b"]
    assert all(type(v) in (float, int, bool, str, bytes, type(None)) for v in back["scalars"])


def test_only_registered_dataclasses_are_stored_or_built(tmp_path):
    @dataclass
    class Unregistered:
        x: int

    with pytest.raises(TypeError, match="not registered"):
        Cache(tmp_path).save("dense", "ab" * 32, {"x": Unregistered(1)}, {})
    with pytest.raises(TypeError, match="cannot store"):
        encode({"x": object()})
    with pytest.raises(ValueError, match="no imported module registered"):
        decode({TAG: "dataclass", "name": "os.system", "fields": {}})


def _plant(cache: Cache, kind: str, spec: dict, payload: bytes, **sidecar) -> tuple[Path, Path]:
    """Write ``payload`` into the slot of ``spec`` with a sidecar that matches its sha256."""
    key = cache.key(kind, spec)
    folder = cache.root / kind / key[:2]
    folder.mkdir(parents=True, exist_ok=True)
    info = {"kind": kind, "key": key, "spec": spec, "sha256": hashlib.sha256(payload).hexdigest()}
    (folder / f"{key}.pt").write_bytes(payload)
    (folder / f"{key}.json").write_text(json.dumps({**info, **sidecar}))
    return folder / f"{key}.pt", folder / f"{key}.json"


class _RunsCode:
    """Unpickling this runs a shell command (what a hostile cache file could hold)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _hostile(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "boom": _RunsCode(marker)}, buf)
    return buf.getvalue()


def test_the_hostile_pickle_is_armed(tmp_path):
    pickle.loads(pickle.dumps(_RunsCode(tmp_path / "control")))  # what an unsafe load does
    assert (tmp_path / "control").exists()


def test_a_payload_that_would_run_code_is_refused_and_recomputed(tmp_path, caplog):
    c = Cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    payload, meta = _plant(c, "dense", {"k": 1}, _hostile(marker), format=FORMAT)
    assert c.contains("dense", c.key("dense", {"k": 1}))
    with caplog.at_level(logging.WARNING, logger="wemem.cache"):
        assert c.load("dense", c.key("dense", {"k": 1})) is None
    assert not marker.exists()
    assert "not plain data" in caplog.text
    assert not payload.exists() and not meta.exists()  # removed, like a corrupted entry

    _plant(c, "dense", {"k": 1}, _hostile(marker), format=FORMAT)
    obj, hit = c.get_or_compute("dense", {"k": 1}, lambda: {"w": torch.zeros(1)})
    assert not hit and obj["w"].tolist() == [0.0] and not marker.exists()
    assert c.load("dense", c.key("dense", {"k": 1}))["w"].tolist() == [0.0]


def test_an_old_format_entry_is_stale_and_never_unpickled(tmp_path, caplog):
    c = Cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    _plant(c, "pruned", {"k": 2}, _hostile(marker))  # format 1: no "format" in the sidecar
    key = c.key("pruned", {"k": 2})
    assert not c.contains("pruned", key)
    with caplog.at_level(logging.WARNING, logger="wemem.cache"):
        assert c.load("pruned", key) is None
    assert "stale" in caplog.text and "format 1" in caplog.text
    assert not marker.exists()

    calls = []
    obj, hit = c.get_or_compute("pruned", {"k": 2}, lambda: calls.append(1) or {"v": np.arange(3)})
    assert not hit and calls == [1] and not marker.exists()
    again, hit = c.get_or_compute("pruned", {"k": 2}, lambda: calls.append(1))
    assert hit and calls == [1]
    _assert_same_array(again["v"], np.arange(3), "v")
    assert (
        json.loads(next((tmp_path / "cache" / "pruned").rglob("*.json")).read_text())["format"]
        == FORMAT
    )


def test_format_is_part_of_the_key(tmp_path, monkeypatch):
    import wemem.cache as wcache

    before = Cache(tmp_path).key("dense", {"a": 1})
    monkeypatch.setattr(wcache, "FORMAT", FORMAT + 1)
    assert Cache(tmp_path).key("dense", {"a": 1}) != before


def test_verify_rehashes_encoded_payloads(tmp_path):
    c = Cache(tmp_path)
    c.save("dense", c.key("dense", {"a": 1}), {"a": np.arange(3)}, {"a": 1})
    assert len(verify(tmp_path)["ok"]) == 1


def _compute_slowly(root: str, marker: str) -> int:
    """Worker of the lock test: get_or_compute an entry whose computation takes a moment and
    records that it ran."""
    import time
    from pathlib import Path

    from wemem.cache import Cache

    def compute():
        with open(marker, "a") as f:
            f.write("computed\n")
        time.sleep(1.0)
        return {"x": 1}

    obj, hit = Cache(Path(root)).get_or_compute("dense", {"entry": 1}, compute)
    return int(hit)


def test_an_entry_missed_by_two_processes_is_computed_once(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    marker = tmp_path / "computed.txt"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        hits = list(pool.map(_compute_slowly, [str(tmp_path / "c")] * 2, [str(marker)] * 2))
    assert marker.read_text().count("computed") == 1
    assert sorted(hits) == [0, 1]  # one computed it, the other waited and read it


# ----------------------------------------------------------------------------- damaged entries

_MALFORMED = {
    "not JSON": "{not json",
    "a JSON array": "[]",
    "a JSON string": '"x"',
    "a JSON number": "3",
    "JSON null": "null",
    "an empty object": "{}",
    "too deeply nested": "[" * 100_000 + "]" * 100_000,
}


def _damaged_sidecars(info: dict) -> dict[str, str]:
    """Sidecar texts that must make the entry of ``info`` corrupted."""
    bad = dict(_MALFORMED)
    for name in ("kind", "key", "spec", "sha256"):
        bad[f"no {name}"] = json.dumps({k: v for k, v in info.items() if k != name})
    for name, value in (("sha256", 5), ("spec", []), ("format", "2"), ("kind", None)):
        bad[f"{name} of the wrong type"] = json.dumps({**info, name: value})
    bad["another entry's"] = json.dumps({**info, "key": "cd" * 32})
    return bad


def _one_entry(root: Path) -> tuple[Cache, str, Path, Path]:
    c = Cache(root)
    key = c.key("dense", {"k": 1})
    c.save("dense", key, {"w": np.arange(3)}, {"k": 1})
    return c, key, *c._paths("dense", key)


def test_every_malformed_sidecar_is_a_corrupted_entry(tmp_path, caplog, monkeypatch):
    import wemem.cache as wcache

    _, _, _, meta = _one_entry(tmp_path / "probe")
    cases = _damaged_sidecars(json.loads(meta.read_text()))
    monkeypatch.setattr(wcache, "_CORRUPTED", [])
    for i, (what, text) in enumerate(cases.items()):
        c, key, payload, meta = _one_entry(tmp_path / f"c{i}")
        name = f"dense/{key}"
        meta.write_text(text)
        assert c.contains("dense", key), what  # present; the load decides
        assert verify(c.root)["corrupted"] == [name], what
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wemem.cache"):
            assert c.load("dense", key) is None, what
        assert "removing it and recomputing" in caplog.text, what
        assert not payload.exists() and not meta.exists(), what
        assert wcache.corrupted_entries()[-1][0] == name, what
        obj, hit = c.get_or_compute("dense", {"k": 1}, lambda: {"w": np.zeros(1)})
        assert not hit and obj["w"].tolist() == [0.0], what

        meta.write_text(text)  # verify --fix removes it too
        assert verify(c.root, fix=True)["corrupted"] == [name], what
        assert verify(c.root) == {"ok": [], "corrupted": [], "incomplete": [], "stray": []}
    assert len(wcache.corrupted_entries()) == len(cases)


def test_the_cli_reports_and_fixes_a_malformed_sidecar(tmp_path, capsys):
    from wemem import cli

    c, key, _, meta = _one_entry(tmp_path / "cache")
    meta.write_text("[]")
    args = ["cache", "verify", "--dir", str(c.root)]
    assert cli.main(args) == 1
    assert "corrupted (found): 1" in capsys.readouterr().out
    assert cli.main([*args, "--fix"]) == 0
    assert cli.main(args) == 0
    assert "0 entries ok" in capsys.readouterr().out


def test_a_same_length_byte_flip_is_found(tmp_path):
    c, key, payload, _ = _one_entry(tmp_path)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    assert verify(tmp_path)["corrupted"] == [f"dense/{key}"]
    assert c.load("dense", key) is None and not payload.exists()


def test_verify_of_a_missing_folder_is_an_error(tmp_path, capsys):
    from wemem import cli
    from wemem.errors import WememError

    with pytest.raises(WememError, match="not a folder"):
        verify(tmp_path / "nowhere")
    assert cli.main(["cache", "verify", "--dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere is not a folder" in err
    assert not (tmp_path / "nowhere").exists()


def test_a_corrupted_entry_is_recorded_for_the_run(tmp_path, monkeypatch):
    import wemem.cache as wcache

    monkeypatch.setattr(wcache, "_CORRUPTED", [])
    monkeypatch.setenv("WEMEM_CACHE_LOG", str(tmp_path / "access.log"))
    monkeypatch.setenv("WEMEM_CACHE_EVENTS", str(tmp_path / "events.log"))
    c, key, payload, _ = _one_entry(tmp_path / "cache")
    payload.write_bytes(payload.read_bytes()[:-1])
    c.get_or_compute("dense", {"k": 1}, lambda: {"w": np.zeros(1)})
    reason = "is corrupted (its payload's sha256 differs)"
    assert wcache.corrupted_entries() == [(f"dense/{key}", reason)]
    assert (tmp_path / "events.log").read_text() == f"corrupted dense/{key} {reason}\n"
    assert wcache.read_access_log(tmp_path / "access.log") == [f"dense/{key}"]

    monkeypatch.delenv("WEMEM_CACHE_EVENTS")
    payload.write_bytes(b"")
    assert c.load("dense", key) is None
    assert len(wcache.corrupted_entries()) == 2
    assert (tmp_path / "events.log").read_text().count("\n") == 1
