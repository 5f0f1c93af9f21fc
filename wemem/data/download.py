"""Download a dataset on request (``wemem data fetch NAME``); nothing else in wemem downloads.

Every file comes through :func:`_download` (a module-level function so tests can replace it):
urllib with a connect timeout (:data:`CONNECT_TIMEOUT`), a timeout on each read
(:data:`READ_TIMEOUT`) and a total deadline (:data:`DEADLINE`), all module values a test may
lower. CIFAR archives are md5-checked against torchvision's record and their extracted batches
too. For the tabular sets the first fetch records each file's sha256 in
``<dataset folder>/SHA256SUMS``; later fetches and every parse (see :mod:`wemem.data.tabular`)
verify against it.

A fetch that fails (timeout, refused connection, DNS or HTTP error, truncated download, checksum
mismatch, unexpected archive) leaves no partial file and removes the folders it created; it raises
:class:`~wemem.errors.DatasetMissingError` (the download) or
:class:`~wemem.errors.DataFormatError` (what was downloaded) with one line that says what failed
and how to fetch the files by hand.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from wemem.data.files import record_sums, verify_sums
from wemem.data.registry import DatasetInfo, dataset_dir, dataset_info, resolve_file
from wemem.data.tabular import TEXAS_SUFFIXES
from wemem.errors import DataFormatError, DatasetMissingError, WememError
from wemem.io import atomic_path

log = logging.getLogger(__name__)

#: Seconds to wait for a connection (and TLS handshake) to a server.
CONNECT_TIMEOUT = 30.0
#: Seconds to wait for each read once connected (the answer's headers, then each chunk).
READ_TIMEOUT = 60.0
#: Seconds one download may take in all (CINIC-10, ~690 MB, at 64 KB/s); checked after each read.
DEADLINE = 3 * 3600.0

_NUS = "https://www.comp.nus.edu.sg/~reza/files/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"
URLS: dict[str, str] = {
    "cifar10": _TORONTO + "cifar-10-python.tar.gz",
    "cifar100": _TORONTO + "cifar-100-python.tar.gz",
    "cinic10": "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
    "texas100": _NUS + "dataset_texas.tgz",
    "purchase100": _NUS + "dataset_purchase.tgz",
    "location30": "https://github.com/jjy1994/MemGuard/raw/master/data/location/data_complete.npz",
}
#: How to do by hand what the fetch of each dataset does (``{url}``, ``{folder}`` filled in).
BY_HAND: dict[str, str] = {
    "cifar10": "download {url} and extract it into {folder} (it holds cifar-10-batches-py/)",
    "cifar100": "download {url} and extract it into {folder} (it holds cifar-100-python/)",
    "cinic10": "download {url} and extract it into {folder} (train/, test/, valid/)",
    "texas100": "download {url}, extract it and copy its texas/100/feats and labels into "
    "{folder}/texas/100/",
    "purchase100": "download {url}, extract it and save its dataset_purchase file as "
    "{folder}/purchase100.txt",
    "location30": "download {url} and save it as {folder}/data_complete.npz",
}


class _Failed(Exception):
    """A download that went wrong in a way urllib does not report (truncated, too slow)."""


class _ReadTimeout:
    """Connect under the request's timeout, then wait at most :data:`READ_TIMEOUT` per read."""

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(READ_TIMEOUT)


class _HTTPConnection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context)


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` (atomically: a partial download never has the final name).

    Raises DatasetMissingError saying what failed; no partial file is left.
    """
    log.info("downloading %s -> %s", url, dest)
    end = time.monotonic() + DEADLINE
    opener = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)
    request = urllib.request.Request(url, headers={"User-Agent": "wemem"})
    try:
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            with opener.open(request, timeout=min(CONNECT_TIMEOUT, DEADLINE)) as response:
                got = 0
                while chunk := response.read1(1 << 20):
                    f.write(chunk)
                    got += len(chunk)
                    if time.monotonic() > end:
                        raise _Failed(f"not finished within the {DEADLINE:g} s deadline")
                left = getattr(response, "length", None)
                if left:  # http.client ends a short read silently
                    raise _Failed(f"truncated: got {got} of {got + left} bytes")
    except (OSError, http.client.HTTPException, _Failed) as exc:
        raise DatasetMissingError(f"downloading {url} failed: {_why(exc, url)}") from exc


def _why(exc: BaseException, url: str) -> str:
    """One line on why a download failed."""
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve host {host!r} ({reason.strerror})"
        if isinstance(reason, ConnectionRefusedError):
            return f"{host} refused the connection"
        if isinstance(reason, TimeoutError):
            return f"no connection to {host} within {CONNECT_TIMEOUT:g} s"
        exc = reason if isinstance(reason, BaseException) else exc
    elif isinstance(exc, TimeoutError):
        return f"{host} sent nothing for {READ_TIMEOUT:g} s"
    elif isinstance(exc, http.client.IncompleteRead):
        return f"truncated: got {len(exc.partial)} bytes, {exc.expected} more expected"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive, refusing absolute paths, '..' and links out of ``dest``."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError) as exc:  # a truncated .gz ends in EOFError
        raise DataFormatError(f"{archive.name}: not a readable tar archive ({exc})") from exc


def _listing(folder: Path) -> str:
    return ", ".join(str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))) or "nothing"


def _fetch_cifar(name: str, folder: Path) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import check_integrity

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    parts = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    if all(check_integrity(folder / cls.base_folder / f, md5) for f, md5 in parts):
        log.info("%s: batches already in %s (md5-checked)", name, folder)
        return
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
        archive = Path(tmp) / cls.filename
        _download(URLS[name], archive)
        if not check_integrity(archive, cls.tgz_md5):
            raise DataFormatError(f"{cls.filename}: md5 differs from {cls.tgz_md5} (torchvision)")
        _extract(archive, folder)
    bad = [f for f, md5 in parts if not check_integrity(folder / cls.base_folder / f, md5)]
    if bad:
        raise DataFormatError(f"{name}: {', '.join(bad)} missing or failing their md5 check")


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
    On failure no partial file is left and the folders this call created are removed.

    Raises:
        DatasetMissingError: the download failed (timeout, refused, DNS, HTTP, truncated).
        DataFormatError: what arrived is wrong (checksum, archive), or a tabular file disagrees
            with its recorded SHA256SUMS entry.
        Either message is one line ending with how to fetch the files by hand.
    """
    info = dataset_info(name)
    folder = dataset_dir(name, root)
    if info.offline:
        log.info("%s: nothing to fetch (%s)", name, info.obtain)
        return folder
    created = next((p for p in reversed((folder, *folder.parents)) if not p.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if name in ("cifar10", "cifar100"):
            _fetch_cifar(name, folder)
        elif name == "cinic10":
            _fetch_cinic(folder)
        else:
            _fetch_tabular(name, info, folder)
    except BaseException as exc:  # Ctrl-C too: leave nothing half made
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, WememError):
            by_hand = BY_HAND[name].format(url=URLS[name], folder=folder)
            why = str(exc).rstrip(".")
            raise type(exc)(f"{name}: fetch failed: {why}. To fetch by hand: {by_hand}.") from exc
        raise
    log.info("%s: ready in %s", name, folder)
    return folder
