"""Downloading from mirrors, against HTTP servers on 127.0.0.1 only."""

import contextlib
import functools
import gzip
import hashlib
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mnist_bench.common import datasets
from mnist_bench.common.datasets import FILE_NAMES, MD5, TEST_LABELS, DataError, dataset_file, download, load
from mnist_bench.common.idx import read_bytes


def md5_of(path: Path) -> str:
    """MD5 of the decompressed bytes: what the published checksums cover."""
    return hashlib.md5(read_bytes(path)).hexdigest()

TIMEOUT_S = 10


class QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def half_body_handler(body: bytes, announce_length: bool) -> type[BaseHTTPRequestHandler]:
    """A handler that sends half of ``body`` and then closes the connection."""

    class HalfBodyHandler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            if announce_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    return HalfBodyHandler


@contextlib.contextmanager
def serve(handler) -> str:
    """Run ``handler`` on 127.0.0.1 at a free port in a thread; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval keeps shutdown() (once per test) from costing 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_dir(directory: Path):
    return serve(functools.partial(QuietFileHandler, directory=str(directory)))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(dest: Path) -> list[str]:
    """Temp files a download left behind (there should be none)."""
    return sorted(p.name for p in dest.iterdir() if p.name.endswith(".part"))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # A proxy from the environment must not intercept requests to 127.0.0.1.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory, shared_data_dir) -> Path:
    """A copy of the four MNIST .gz files to serve (in tmp, never in the repo)."""
    folder = tmp_path_factory.mktemp("mirror")
    for file_name in FILE_NAMES:
        shutil.copy(shared_data_dir / "mnist" / f"{file_name}.gz", folder)
    return folder


@pytest.fixture(scope="module")
def mirror(mirror_dir):
    with serve_dir(mirror_dir) as url:
        yield url


@pytest.fixture
def dest_missing_test_labels(tmp_path, mirror_dir) -> Path:
    """A download folder already holding every MNIST file but the test labels."""
    dest = tmp_path / "dest"
    dest.mkdir()
    for file_name in FILE_NAMES:
        if file_name != TEST_LABELS:
            shutil.copy(mirror_dir / f"{file_name}.gz", dest)
    return dest


def test_download_into_empty_cache_then_load(data_locations, mirror):
    dest = datasets.cache_dir("mnist")
    assert download("mnist", dest, mirrors=[mirror], read_timeout=TIMEOUT_S) == dest
    for file_name in FILE_NAMES:
        path = dest / f"{file_name}.gz"
        assert md5_of(path) == MD5["mnist"][file_name]
    assert leftovers(dest) == []
    loaded = load("mnist", download=False)
    assert loaded.source == dest
    assert loaded.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_load_downloads_missing_files_into_cache(data_locations, monkeypatch, mirror):
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (mirror,))
    loaded = load("mnist")
    assert loaded.source == datasets.cache_dir("mnist")
    assert loaded.test_images.shape == (10000, 28, 28)


def test_failed_mirrors_fall_through_to_a_good_one(dest_missing_test_labels, mirror):
    dest = dest_missing_test_labels
    download("mnist", dest, mirrors=[closed_port_url(), f"{mirror}no-such-folder/", mirror], read_timeout=TIMEOUT_S)
    assert md5_of(dest / f"{TEST_LABELS}.gz") == MD5["mnist"][TEST_LABELS]
    assert leftovers(dest) == []


def test_present_files_are_kept_and_only_missing_ones_fetched(dest_missing_test_labels, tmp_path):
    dest = dest_missing_test_labels
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    sparse_mirror = tmp_path / "sparse"
    sparse_mirror.mkdir()
    shutil.copy(dest / f"{FILE_NAMES[0]}.gz", sparse_mirror)  # present, so never requested
    with serve_dir(sparse_mirror) as url, pytest.raises(DataError, match="404"):
        download("mnist", dest, mirrors=[url], read_timeout=TIMEOUT_S)
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before


def corrupt_gz(mirror_dir: Path, kind: str) -> bytes:
    raw = gzip.decompress((mirror_dir / f"{TEST_LABELS}.gz").read_bytes())
    if kind == "altered-label":
        return gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10]))
    if kind == "truncated-gzip":
        return gzip.compress(raw)[:-20]
    return b"<html>not the file you want</html>"


@pytest.mark.parametrize("kind, expected", [
    ("altered-label", "checksum mismatch"),
    ("truncated-gzip", "bad gzip stream"),
    ("html-page", "checksum mismatch"),
])
def test_corrupt_mirror_leaves_no_final_file(dest_missing_test_labels, mirror_dir, tmp_path, kind, expected):
    dest = dest_missing_test_labels
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    (bad_mirror / f"{TEST_LABELS}.gz").write_bytes(corrupt_gz(mirror_dir, kind))
    with serve_dir(bad_mirror) as url, pytest.raises(DataError, match=expected) as info:
        download("mnist", dest, mirrors=[url], read_timeout=TIMEOUT_S)
    assert f"{url}{TEST_LABELS}.gz" in str(info.value)
    assert dataset_file(dest, TEST_LABELS) is None
    assert leftovers(dest) == []


def test_corrupt_mirror_falls_through_to_good_one(dest_missing_test_labels, mirror_dir, mirror, tmp_path):
    dest = dest_missing_test_labels
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    (bad_mirror / f"{TEST_LABELS}.gz").write_bytes(corrupt_gz(mirror_dir, "altered-label"))
    with serve_dir(bad_mirror) as bad_url:
        download("mnist", dest, mirrors=[bad_url, mirror], read_timeout=TIMEOUT_S)
    assert md5_of(dest / f"{TEST_LABELS}.gz") == MD5["mnist"][TEST_LABELS]


@pytest.mark.parametrize("announce_length", [True, False], ids=["with-length", "no-length"])
def test_interrupted_download_leaves_no_final_file(dest_missing_test_labels, mirror_dir, announce_length):
    dest = dest_missing_test_labels
    body = (mirror_dir / f"{TEST_LABELS}.gz").read_bytes()
    with serve(half_body_handler(body, announce_length)) as url, pytest.raises(DataError) as info:
        download("mnist", dest, mirrors=[url], read_timeout=TIMEOUT_S)
    assert f"{url}{TEST_LABELS}.gz" in str(info.value)
    assert dataset_file(dest, TEST_LABELS) is None
    assert leftovers(dest) == []


def test_all_mirrors_failing_lists_each_url_and_error(tmp_path, mirror):
    urls = [closed_port_url(), f"{mirror}missing/"]
    with pytest.raises(DataError, match="could not download mnist") as info:
        download("mnist", tmp_path / "dest", mirrors=urls, read_timeout=TIMEOUT_S)
    message = str(info.value)
    assert f"{urls[0]}{FILE_NAMES[0]}.gz" in message
    assert f"{urls[1]}{FILE_NAMES[0]}.gz: HTTP Error 404" in message
    assert "MNIST_BENCH_DATA" in message


def test_failed_download_in_load_explains_both(data_locations, monkeypatch):
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", (closed_port_url(),))
    with pytest.raises(DataError, match="(?s)not found.*downloading failed.*could not download"):
        load("fashion-mnist")


@contextlib.contextmanager
def silent_server() -> str:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte: a hung mirror."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # the kernel completes the handshake; nobody ever answers
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


def test_unresponsive_mirror_times_out_and_says_so(dest_missing_test_labels, mirror):
    """A mirror that accepts and never answers costs read_timeout, not minutes, and is reported as it happens."""
    import time

    heard = []
    with silent_server() as hung:
        started = time.monotonic()
        download("mnist", dest_missing_test_labels, mirrors=[hung, mirror], connect_timeout=2, read_timeout=0.5,
                 say=heard.append)
        waited = time.monotonic() - started
    assert md5_of(dest_missing_test_labels / f"{TEST_LABELS}.gz") == MD5["mnist"][TEST_LABELS]
    assert waited < 5, waited  # the hung mirror was given up after ~0.5 s (the old single timeout was 60 s)
    assert heard[0] == f"downloading {hung}{TEST_LABELS}.gz"
    assert "timed out" in heard[1] and f"trying {mirror}" in heard[1], heard
    assert heard[2] == f"downloading {mirror}{TEST_LABELS}.gz"


def test_unresponsive_only_mirror_fails_with_timeout(tmp_path):
    with silent_server() as hung, pytest.raises(DataError, match="timed out"):
        download("mnist", tmp_path / "dest", mirrors=[hung], connect_timeout=2, read_timeout=0.3)
