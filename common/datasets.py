"""Locate, download, verify and load MNIST and Fashion-MNIST.

Each dataset is the four standard IDX files, gzipped (``<file>.gz``) or not
(``<file>``). Checksums are over the *decompressed* bytes, because copies in
circulation were recompressed and their gzip wrappers differ from the mirrors'.

Where a dataset is looked for, first match wins (see :func:`find_dataset_dir`):

1. an explicit ``data_dir`` (``<data_dir>/<name>/`` or ``<data_dir>`` itself);
2. ``$MNIST_BENCH_DATA/<name>/``;
3. the per-user cache ``$XDG_CACHE_HOME/mnist-bench/<name>/``
   (``~/.cache/mnist-bench/<name>/`` without it), where downloads go;
4. for Fashion-MNIST, the Debian package's ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mnist_bench.common.idx import GZIP_MAGIC, DataError, IdxError, decompress, parse_idx, read_bytes
from mnist_bench.common.model import IMAGE_SIZE, NUM_CLASSES

__all__ = [
    "DataError", "IdxError", "Dataset", "load", "download", "find_dataset_dir",
    "cache_dir", "dataset_file", "DATASET_NAMES", "FILE_NAMES", "MD5", "MIRRORS", "ENV_VAR",
]

MNIST = "mnist"
FASHION_MNIST = "fashion-mnist"
DATASET_NAMES = (MNIST, FASHION_MNIST)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE)

# MD5 of the decompressed files, per dataset and file.
MD5: dict[str, dict[str, str]] = {
    MNIST: {
        TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    },
    FASHION_MNIST: {
        TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
        TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
        TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Base URLs tried in order; each serves ``<base><file>.gz``.
MIRRORS: dict[str, tuple[str, ...]] = {
    MNIST: (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    FASHION_MNIST: (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
}

ENV_VAR = "MNIST_BENCH_DATA"
CACHE_SUBDIR = "mnist-bench"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# An unresponsive mirror costs at most these before the next one is tried: a connection
# (TCP and TLS) must open within CONNECT_TIMEOUT_S, and the server must send something at
# least every READ_TIMEOUT_S (a slow but live download is never cut off).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0

_FIX_HINT = (
    f"delete the file to re-download it, or pass --data-dir or set {ENV_VAR} "
    "to a directory holding a good copy"
)
_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays has no single truth value
class Dataset:
    """One dataset in memory: uint8 images (N, 28, 28), uint8 labels (N,) in 0..9."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_labels)}, "
            f"test={len(self.test_labels)}, source='{self.source}')"
        )


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        allowed = ", ".join(repr(n) for n in DATASET_NAMES)
        raise DataError(f"unknown dataset {name!r}; expected one of {allowed}")


def cache_dir(name: str) -> Path:
    """Per-user download folder: ``$XDG_CACHE_HOME/mnist-bench/<name>`` or ``~/.cache/...``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec requires.
    """
    _check_name(name)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / CACHE_SUBDIR / name


def dataset_file(directory: str | os.PathLike, file_name: str) -> Path | None:
    """The path of ``file_name`` in ``directory``, uncompressed or ``.gz``; None if absent.

    The uncompressed file wins when both exist (no decompression needed).
    """
    for candidate in (Path(directory) / file_name, Path(directory) / f"{file_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(directory: Path) -> list[str]:
    return [f for f in FILE_NAMES if dataset_file(directory, f) is None]


def _candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    # An explicit data_dir is authoritative: silently loading from elsewhere
    # would hide a typo in the path the caller asked for.
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root / name, root]
    dirs = []
    env_root = os.environ.get(ENV_VAR)
    if env_root:
        dirs.append(Path(env_root).expanduser() / name)
    dirs.append(cache_dir(name))
    if name == FASHION_MNIST:
        dirs.append(DEBIAN_FASHION_MNIST_DIR)
    return dirs


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the first folder holding all four files of dataset ``name``, or None.

    With ``data_dir``, only ``<data_dir>/<name>`` and then ``data_dir`` itself
    are searched. Without it: ``$MNIST_BENCH_DATA/<name>``, the per-user cache
    (:func:`cache_dir`), then for Fashion-MNIST :data:`DEBIAN_FASHION_MNIST_DIR`.
    Folders with only some of the files are skipped. Raises :class:`DataError`
    for an unknown name.
    """
    _check_name(name)
    for directory in _candidate_dirs(name, data_dir):
        if directory.is_dir() and not _missing_files(directory):
            return directory
    return None


def _download_target(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is None:
        return cache_dir(name)
    root = Path(data_dir).expanduser()
    # Complete a partial copy where it lies rather than start a second one.
    if not (root / name).is_dir() and len(_missing_files(root)) < len(FILE_NAMES):
        return root
    return root / name


def _not_found_message(name: str, data_dir: str | os.PathLike | None) -> str:
    lines = [f"dataset {name!r} not found; looked in:"]
    for directory in _candidate_dirs(name, data_dir):
        if not directory.is_dir():
            lines.append(f"  {directory} (no such directory)")
        else:
            lines.append(f"  {directory} (missing: {', '.join(_missing_files(directory))})")
    lines.append(
        f"pass --data-dir or set {ENV_VAR} to a directory with a '{name}/' folder "
        "holding the four IDX files, or allow downloading"
    )
    return "\n".join(lines)


def _read_checked(name: str, path: Path, file_name: str) -> tuple[np.ndarray, str]:
    """Parse one file, check its shape and values, return it with its MD5."""
    try:
        raw = read_bytes(path)
        array = parse_idx(raw, path)
    except IdxError as exc:
        raise IdxError(f"{exc}; {_FIX_HINT}") from exc
    digest = hashlib.md5(raw).hexdigest()
    del raw  # the array is a copy; free the bytes before the next file
    is_images = "images" in file_name
    expected = f"uint8 (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})" if is_images else "uint8 (N,)"
    shape_ok = array.shape[1:] == IMAGE_SHAPE if is_images else array.ndim == 1
    if array.dtype != np.uint8 or not shape_ok:
        raise DataError(
            f"{path}: wrong shape for {name} {file_name}: got {array.dtype} {array.shape}, "
            f"expected {expected}; {_FIX_HINT}"
        )
    if not is_images and array.size and int(array.max()) >= NUM_CLASSES:
        bad = int(np.count_nonzero(array >= NUM_CLASSES))
        raise DataError(
            f"{path}: labels out of range: {bad} labels above {NUM_CLASSES - 1} "
            f"(max {int(array.max())}); {_FIX_HINT}"
        )
    return array, digest


def _download_for_load(name: str, dest: Path, say: Callable[[str], None] | None) -> Path:
    # load()'s ``download`` flag shadows the function of that name.
    return download(name, dest, say=say)


def load(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    verify: bool = True,
    say: Callable[[str], None] | None = None,
) -> Dataset:
    """Load dataset ``name`` ("mnist" or "fashion-mnist") into memory.

    Finds the files with :func:`find_dataset_dir`; if they are nowhere and
    ``download`` is true, fetches them (into ``<data_dir>/<name>`` when
    ``data_dir`` is given, else the per-user cache). Each file is decompressed
    once, parsed, checked (images uint8 (N, 28, 28), labels uint8 (N,) in 0..9,
    equal image and label counts) and, if ``verify``, its decompressed MD5 is
    compared with :data:`MD5`. Shape and value checks run before the checksum
    so their messages stay specific. Every failure raises :class:`DataError`
    naming the file and what to do.
    """
    _check_name(name)
    directory = find_dataset_dir(name, data_dir)
    if directory is None:
        if not download:
            raise DataError(_not_found_message(name, data_dir))
        try:
            directory = _download_for_load(name, _download_target(name, data_dir), say)
        except DataError as exc:
            raise DataError(f"{_not_found_message(name, data_dir)}\ndownloading failed: {exc}") from exc

    arrays: dict[str, np.ndarray] = {}
    digests: dict[str, tuple[Path, str]] = {}
    for file_name in FILE_NAMES:
        path = dataset_file(directory, file_name)
        if path is None:  # removed between the search and now
            raise DataError(f"{directory}: {file_name} disappeared while loading")
        arrays[file_name], digest = _read_checked(name, path, file_name)
        digests[file_name] = (path, digest)

    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        if len(arrays[images]) != len(arrays[labels]):
            raise DataError(
                f"{directory}: {len(arrays[images])} images in {images} but "
                f"{len(arrays[labels])} labels in {labels}; {_FIX_HINT}"
            )

    if verify:
        for file_name, (path, digest) in digests.items():
            if digest != MD5[name][file_name]:
                raise DataError(
                    f"{path}: checksum mismatch: decompressed md5 {digest}, expected "
                    f"{MD5[name][file_name]} for {name} {file_name} (corrupt, or another "
                    f"dataset's file); {_FIX_HINT}"
                )

    return Dataset(
        name=name,
        train_images=arrays[TRAIN_IMAGES],
        train_labels=arrays[TRAIN_LABELS],
        test_images=arrays[TEST_IMAGES],
        test_labels=arrays[TEST_LABELS],
        source=directory,
    )


def _with_read_timeout(connection_class: type, read_timeout: float) -> type:
    """``connection_class`` whose socket, once connected with the request's timeout, waits ``read_timeout`` per read."""

    class TimedConnection(connection_class):
        def connect(self) -> None:
            super().connect()
            self.sock.settimeout(read_timeout)

    return TimedConnection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.connection = _with_read_timeout(http.client.HTTPConnection, read_timeout)

    def http_open(self, req):
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.connection = _with_read_timeout(http.client.HTTPSConnection, read_timeout)

    def https_open(self, req):
        return self.do_open(self.connection, req, context=self._context)


def _fetch(url: str, out_path: Path, connect_timeout: float, read_timeout: float) -> None:
    """Stream ``url`` into ``out_path``; raise if the body is shorter than announced."""
    opener = urllib.request.build_opener(_HTTPHandler(read_timeout), _HTTPSHandler(read_timeout))
    with opener.open(url, timeout=connect_timeout) as response, open(out_path, "wb") as out:
        announced = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
        received = out.tell()
    # http.client does not flag an early close itself; the length does.
    if announced is not None and announced.isdigit() and received != int(announced):
        raise DataError(f"connection closed after {received} of {announced} bytes")


def _fetch_verified(url: str, dest: Path, file_name: str, expected_md5: str, timeouts: tuple[float, float]) -> Path:
    """Download one file into a temp file in ``dest``, verify it, rename it into place."""
    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{file_name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _fetch(url, tmp, *timeouts)
        data = tmp.read_bytes()
        digest = hashlib.md5(decompress(data, "downloaded file")).hexdigest()
        if digest != expected_md5:
            raise DataError(f"checksum mismatch: decompressed md5 {digest}, expected {expected_md5}")
        final = dest / (f"{file_name}.gz" if data.startswith(GZIP_MAGIC) else file_name)
        # Atomic on one filesystem: the final name only ever holds a verified file.
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def download(
    name: str,
    dest: str | os.PathLike,
    mirrors: Iterable[str] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Download the files of dataset ``name`` missing from ``dest``; return ``dest``.

    Each missing ``<file>`` is fetched as ``<mirror><file>.gz`` from ``mirrors``
    (base URLs, default :data:`MIRRORS`) in order, streamed into a hidden temp
    file in ``dest``, its decompressed MD5 checked, and only then renamed into
    place, so an interrupted or bad download never leaves a file under the
    final name and a rerun resumes with the files still missing. Files already
    present are not checked or fetched again. A mirror that does not connect
    within ``connect_timeout`` seconds, or goes ``read_timeout`` seconds without
    sending, counts as failed; ``say`` (if given) hears of each file fetched and
    each mirror given up, so a slow network is never silent. Raises :class:`DataError` listing
    every URL tried and its error when all mirrors fail for a file, or if
    ``dest`` cannot be created.
    """
    _check_name(name)
    bases = list(MIRRORS[name] if mirrors is None else mirrors)
    if not bases:
        raise DataError(f"no mirrors given to download {name!r} from")
    dest = Path(dest).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create download folder {dest}: {exc}") from exc

    say = say or (lambda message: None)
    for file_name in _missing_files(dest):
        errors = []
        for index, base in enumerate(bases):
            url = f"{base.rstrip('/')}/{file_name}.gz"
            say(f"downloading {url}")
            try:
                _fetch_verified(url, dest, file_name, MD5[name][file_name], (connect_timeout, read_timeout))
                break
            except (OSError, ValueError, http.client.HTTPException, DataError) as exc:
                errors.append(f"  {url}: {exc}")
                retry = f"; trying {bases[index + 1]}" if index + 1 < len(bases) else ""
                say(f"  failed: {exc}{retry}")
        else:
            raise DataError(
                f"could not download {name} {file_name} into {dest}; tried:\n"
                + "\n".join(errors)
                + f"\ncheck the network, or put the four files in {dest} by hand, or pass "
                f"--data-dir or set {ENV_VAR} to a directory holding them"
            )
    return dest
