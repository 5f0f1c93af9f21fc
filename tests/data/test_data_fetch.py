"""fetch(): archive handling and the SHA256SUMS record-then-verify logic, offline.

``wemem.data.download._download`` is replaced by a function that copies a locally built archive, so
nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import wemem.data.download as fetch_mod
from wemem.data import fetch, load_pool
from wemem.errors import DataFormatError, DatasetMissingError, ParamsError


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


# ----------------------------------------------------------------------------- failures, offline
# Local servers on 127.0.0.1 (ephemeral ports) play the broken sites; the timeouts are lowered so
# each failure shows within about a second.

NETWORK_SETS = ["cifar10", "cifar100", "cinic10", "texas100", "purchase100", "location30"]


@pytest.fixture
def quick(monkeypatch):
    """Short timeouts; returns a function that points a dataset's URL at ``base``."""
    monkeypatch.setattr(fetch_mod, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(fetch_mod, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(fetch_mod, "DEADLINE", 2.0)

    def point(name: str, base: str) -> str:
        url = f"{base}/{fetch_mod.URLS[name].rsplit('/', 1)[1]}"
        monkeypatch.setitem(fetch_mod.URLS, name, url)
        return url

    return point


@pytest.fixture
def silent_server():
    """A TCP server that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for s in [*held, server]:
        s.close()


class _Site(http.server.BaseHTTPRequestHandler):
    """``/missing/...``: 404; ``/truncated/...``: half the body it announces; ``/drip/...``: one
    byte every 50 ms; anything else: the whole body."""

    body = b""

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        if mode == "missing":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(self.body[: len(self.body) // 2])
        elif mode == "drip":
            for i in range(len(self.body)):
                self.wfile.write(self.body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (drip) breaks the pipe; that is the point


@pytest.fixture
def site():
    """An HTTP server on 127.0.0.1; set ``site.body`` to what it serves."""
    handler = type("Handler", (_Site,), {"body": b"x" * 2000})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    server.handler = handler
    yield server
    server.shutdown()
    server.server_close()


def _fails(name: str, root: Path, error: type, match: str) -> str:
    """Fetch ``name``; assert it fails quickly with a one-line ``error`` and leaves no folder."""
    start = time.monotonic()
    with pytest.raises(error, match=match) as info:
        fetch(name, root=root)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert "\n" not in message
    assert (
        message.startswith(f"{name}: fetch failed: ") and "To fetch by hand: download " in message
    )
    assert not root.exists()
    return message


@pytest.mark.parametrize("name", NETWORK_SETS)
def test_a_server_that_never_answers_times_out(name, tmp_path, quick, silent_server) -> None:
    if name.startswith("cifar"):
        import torchvision.datasets  # noqa: F401 - imported here so the clock measures the fetch
    url = quick(name, silent_server)
    message = _fails(name, tmp_path / "data", DatasetMissingError, "sent nothing for 0.5 s")
    assert url in message


@pytest.mark.parametrize("name", ["cifar10", "purchase100", "location30"])
def test_a_refused_connection_fails_at_once(name, tmp_path, quick) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again: nobody listens there
    quick(name, f"http://127.0.0.1:{port}")
    _fails(name, tmp_path / "data", DatasetMissingError, "refused the connection")


@pytest.mark.parametrize("name", ["cifar10", "purchase100", "location30"])
def test_a_truncated_download_fails_and_leaves_nothing(name, tmp_path, quick, site) -> None:
    quick(name, f"{site.base}/truncated")
    _fails(name, tmp_path / "data", DatasetMissingError, "truncated: got 1000 of 2000 bytes")


def test_an_http_error_fails(tmp_path, quick, site) -> None:
    quick("cinic10", f"{site.base}/missing")
    _fails("cinic10", tmp_path / "data", DatasetMissingError, "HTTP 404")


def test_a_download_past_the_deadline_fails(tmp_path, quick, site, monkeypatch) -> None:
    monkeypatch.setattr(fetch_mod, "DEADLINE", 0.3)
    quick("location30", f"{site.base}/drip")
    _fails("location30", tmp_path / "data", DatasetMissingError, "0.3 s deadline")


def test_a_dns_failure_fails(tmp_path, quick, monkeypatch) -> None:
    def unknown(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    quick("texas100", "http://no-such-host.invalid")
    _fails("texas100", tmp_path / "data", DatasetMissingError, "cannot resolve host")


def test_a_cifar_archive_with_the_wrong_md5_is_refused(tmp_path, quick, site) -> None:
    quick("cifar10", f"{site.base}/whole")
    _fails("cifar10", tmp_path / "data", DataFormatError, "md5 differs")


def test_a_failure_keeps_a_folder_it_did_not_create(tmp_path, quick, silent_server) -> None:
    folder = tmp_path / "data" / "purchase100"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    quick("purchase100", silent_server)
    with pytest.raises(DatasetMissingError, match="sent nothing"):
        fetch("purchase100", root=tmp_path / "data")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]  # no partial file, no temp folder


def test_the_cli_prints_one_line(tmp_path, quick, silent_server, capsys) -> None:
    from wemem import cli

    quick("location30", silent_server)
    assert cli.main(["data", "fetch", "location30", "--root", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wemem: error: location30: fetch failed: ")
    assert not (tmp_path / "data").exists()


def test_cifar_archive_is_md5_checked_and_extracted(tmp_path, quick, site, monkeypatch) -> None:
    from torchvision.datasets import CIFAR10

    batches = {f"b{i}": f"batch {i}".encode() for i in range(3)}
    md5s = {n: hashlib.md5(b).hexdigest() for n, b in batches.items()}
    archive = make_tgz(
        tmp_path / "c.tgz", {f"cifar-10-batches-py/{n}": b for n, b in batches.items()}
    )
    site.handler.body = archive.read_bytes()
    monkeypatch.setattr(CIFAR10, "train_list", [["b0", md5s["b0"]]])
    monkeypatch.setattr(CIFAR10, "test_list", [["b1", md5s["b1"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "b2", "key": "k", "md5": md5s["b2"]})
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(site.handler.body).hexdigest())
    quick("cifar10", f"{site.base}/whole")
    folder = fetch("cifar10", root=tmp_path / "data")
    assert sorted(p.name for p in (folder / "cifar-10-batches-py").iterdir()) == ["b0", "b1", "b2"]
    assert [p.name for p in folder.iterdir()] == ["cifar-10-batches-py"]  # no archive left
    site.handler.body = b""
    fetch("cifar10", root=tmp_path / "data")  # complete: nothing downloaded
