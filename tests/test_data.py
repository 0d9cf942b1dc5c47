"""Loading the real datasets, every way loading can fail, and where datasets are found."""

import gzip
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from mnist_bench.common import datasets
from mnist_bench.common.datasets import (
    ENV_VAR,
    FILE_NAMES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    DataError,
    IdxError,
    cache_dir,
    dataset_file,
    find_dataset_dir,
    load,
)
from mnist_bench.common.idx import decompress, parse_idx, read_bytes


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (type 0x08)."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def real_bytes(shared_data_dir: Path, file_name: str, name: str = "mnist") -> bytes:
    """Decompressed bytes of one shared dataset file."""
    return gzip.decompress((shared_data_dir / name / f"{file_name}.gz").read_bytes())


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of pixels / 255, from a histogram (no 376 MB float copy)."""
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255.0
    n = counts.sum()
    mean = (counts * values).sum() / n
    return mean, math.sqrt((counts * values**2).sum() / n - mean**2)


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    return load("mnist", shared_data_dir, download=False)


@pytest.fixture(scope="module")
def fashion(shared_data_dir):
    return load("fashion-mnist", shared_data_dir, download=False)


@pytest.fixture
def mnist_copy(tmp_path, shared_data_dir):
    """Build ``<tmp>/mnist`` linking the real files, with one file replaced.

    Call with a file name and the (decompressed) bytes to put in its place, or
    None to leave it out; returns the data root to pass as ``data_dir``.
    """

    def build(file_name: str, content: bytes | None, gz: bool = True) -> Path:
        folder = tmp_path / "mnist"
        folder.mkdir()
        for other in FILE_NAMES:
            if other != file_name:
                (folder / f"{other}.gz").symlink_to(shared_data_dir / "mnist" / f"{other}.gz")
        if content is not None:
            target = folder / (f"{file_name}.gz" if gz else file_name)
            target.write_bytes(gzip.compress(content, compresslevel=1) if gz else content)
        return tmp_path

    return build


# --- the real datasets -------------------------------------------------------


def test_mnist_counts_shapes_and_source(mnist, shared_data_dir):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    assert {a.dtype for a in (mnist.train_images, mnist.test_labels)} == {np.dtype(np.uint8)}
    assert mnist.source == shared_data_dir / "mnist"
    assert "train=60000" in repr(mnist)


def test_mnist_matches_readme_sanity_figures(mnist):
    train_mean, train_std = pixel_mean_std(mnist.train_images)
    test_mean, test_std = pixel_mean_std(mnist.test_images)
    assert (round(train_mean, 4), round(train_std, 4)) == (0.1307, 0.3081)
    assert (round(test_mean, 4), round(test_std, 4)) == (0.1325, 0.3105)
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_fashion_mnist_loads_with_balanced_classes(fashion):
    assert fashion.train_images.shape == (60000, 28, 28)
    assert fashion.test_images.shape == (10000, 28, 28)
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10


def test_env_var_locates_shared_data(data_locations, monkeypatch, shared_data_dir):
    monkeypatch.setenv(ENV_VAR, str(shared_data_dir))
    assert find_dataset_dir("mnist") == shared_data_dir / "mnist"
    assert find_dataset_dir("fashion-mnist") == shared_data_dir / "fashion-mnist"


def test_uncompressed_files_are_accepted(mnist_copy, shared_data_dir, mnist):
    root = mnist_copy(TEST_IMAGES, real_bytes(shared_data_dir, TEST_IMAGES), gz=False)
    (root / "mnist" / TEST_LABELS).write_bytes(real_bytes(shared_data_dir, TEST_LABELS))
    (root / "mnist" / f"{TEST_LABELS}.gz").unlink()
    loaded = load("mnist", root, download=False)
    assert np.array_equal(loaded.test_images, mnist.test_images)
    assert np.array_equal(loaded.test_labels, mnist.test_labels)


def test_uncompressed_file_wins_over_gz(tmp_path):
    (tmp_path / f"{TEST_LABELS}.gz").touch()
    assert dataset_file(tmp_path, TEST_LABELS) == tmp_path / f"{TEST_LABELS}.gz"
    (tmp_path / TEST_LABELS).touch()
    assert dataset_file(tmp_path, TEST_LABELS) == tmp_path / TEST_LABELS
    assert dataset_file(tmp_path, TRAIN_IMAGES) is None


# --- every failure has its own message ----------------------------------------


def test_missing_file_names_it_and_what_to_do(mnist_copy, data_locations):
    root = mnist_copy(TEST_LABELS, None)
    assert find_dataset_dir("mnist", root) is None
    with pytest.raises(DataError, match="not found") as info:
        load("mnist", root, download=False)
    message = str(info.value)
    assert f"missing: {TEST_LABELS}" in message
    assert str(root / "mnist") in message
    assert "--data-dir" in message and ENV_VAR in message


def test_nothing_anywhere_lists_searched_places(data_locations):
    with pytest.raises(DataError) as info:
        load("fashion-mnist", download=False)
    message = str(info.value)
    assert str(cache_dir("fashion-mnist")) in message
    assert str(data_locations.debian) in message
    assert "no such directory" in message


@pytest.mark.parametrize(
    "mangle, expected",
    [
        (lambda raw: raw[:-100], "truncated payload"),
        (lambda raw: raw[:6], "truncated header"),
        (lambda raw: b"", "empty"),
        (lambda raw: b"\x08\x03" + raw[2:], "wrong magic"),
        (lambda raw: raw[:2] + b"\x0a" + raw[3:], "unsupported type code 0x0A"),
        (lambda raw: raw + b"\x00\x01", "2 bytes of trailing garbage"),
    ],
    ids=["truncated-payload", "truncated-header", "empty", "wrong-magic", "bad-type", "trailing"],
)
def test_malformed_idx_raises_idx_error_naming_file(mnist_copy, shared_data_dir, mangle, expected):
    root = mnist_copy(TEST_LABELS, mangle(real_bytes(shared_data_dir, TEST_LABELS)))
    with pytest.raises(IdxError, match=expected) as info:
        load("mnist", root, download=False)
    assert str(root / "mnist" / f"{TEST_LABELS}.gz") in str(info.value)
    assert "re-download" in str(info.value)


def test_truncated_gzip_stream(tmp_path, shared_data_dir):
    root = tmp_path / "mnist"
    root.mkdir()
    for file_name in FILE_NAMES:
        (root / f"{file_name}.gz").symlink_to(shared_data_dir / "mnist" / f"{file_name}.gz")
    gz = (shared_data_dir / "mnist" / f"{TEST_LABELS}.gz").read_bytes()
    (root / f"{TEST_LABELS}.gz").unlink()
    (root / f"{TEST_LABELS}.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(IdxError, match="bad gzip stream") as info:
        load("mnist", tmp_path, download=False)
    assert f"{TEST_LABELS}.gz" in str(info.value)


def test_wrong_image_shape(mnist_copy):
    root = mnist_copy(TEST_IMAGES, idx_bytes(np.zeros((10000, 27, 28), np.uint8)))
    with pytest.raises(DataError, match=r"wrong shape.*\(10000, 27, 28\).*expected uint8 \(N, 28, 28\)") as info:
        load("mnist", root, download=False)
    assert TEST_IMAGES in str(info.value)


def test_wrong_label_shape(mnist_copy):
    root = mnist_copy(TEST_LABELS, idx_bytes(np.zeros((10000, 1), np.uint8)))
    with pytest.raises(DataError, match=r"wrong shape.*expected uint8 \(N,\)"):
        load("mnist", root, download=False)


def test_checksum_mismatch_on_one_altered_pixel(mnist_copy, shared_data_dir):
    images = parse_idx(decompress(real_bytes(shared_data_dir, TEST_IMAGES)))
    images[0, 14, 14] ^= 0xFF
    root = mnist_copy(TEST_IMAGES, idx_bytes(images))
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load("mnist", root, download=False)
    assert str(root / "mnist" / f"{TEST_IMAGES}.gz") in str(info.value)
    assert datasets.MD5["mnist"][TEST_IMAGES] in str(info.value)
    # verify=False is the escape hatch for deliberately altered copies.
    assert load("mnist", root, download=False, verify=False).test_images[0, 14, 14] == images[0, 14, 14]


def test_labels_out_of_range(mnist_copy, shared_data_dir):
    labels = parse_idx(decompress(real_bytes(shared_data_dir, TEST_LABELS)))
    labels[[3, 7]] = [10, 255]
    root = mnist_copy(TEST_LABELS, idx_bytes(labels))
    with pytest.raises(DataError, match=r"labels out of range: 2 labels above 9 \(max 255\)") as info:
        load("mnist", root, download=False)
    assert TEST_LABELS in str(info.value)


def test_image_and_label_counts_must_match(mnist_copy, shared_data_dir):
    labels = parse_idx(decompress(real_bytes(shared_data_dir, TEST_LABELS)))[:-1]
    root = mnist_copy(TEST_LABELS, idx_bytes(labels))
    with pytest.raises(DataError, match=f"10000 images in {TEST_IMAGES} but 9999 labels in {TEST_LABELS}"):
        load("mnist", root, download=False)


def test_another_datasets_files_fail_the_checksum(shared_data_dir):
    # A folder holding the files directly is accepted, so a wrong one must be caught.
    with pytest.raises(DataError, match="checksum mismatch.*another dataset"):
        load("fashion-mnist", shared_data_dir / "mnist", download=False)


def test_unknown_dataset_name_lists_allowed_ones(tmp_path):
    for call in (lambda: load("kmnist"), lambda: find_dataset_dir("kmnist"),
                 lambda: datasets.download("kmnist", tmp_path), lambda: cache_dir("kmnist")):
        with pytest.raises(DataError, match="unknown dataset 'kmnist'.*'mnist', 'fashion-mnist'"):
            call()


def test_idx_errors_name_the_path_and_reject_a_missing_file(tmp_path):
    with pytest.raises(IdxError, match=re.escape(f"{tmp_path / 'nope'}: cannot read")):
        read_bytes(tmp_path / "nope")
    (tmp_path / "short").write_bytes(b"\x00\x00")
    with pytest.raises(IdxError, match=re.escape(f"{tmp_path / 'short'}: truncated header")):
        parse_idx(read_bytes(str(tmp_path / "short")), str(tmp_path / "short"))


# --- where datasets are found ---------------------------------------------------


def placeholder_dataset(folder: Path, gz: bool = True) -> Path:
    """Empty stand-ins for the four files: the search only checks presence."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in FILE_NAMES:
        (folder / (f"{file_name}.gz" if gz else file_name)).touch()
    return folder


def test_resolution_order_explicit_env_cache_debian(data_locations, monkeypatch, tmp_path):
    name = "fashion-mnist"
    explicit = placeholder_dataset(tmp_path / "explicit" / name)
    env = placeholder_dataset(data_locations.env / name)
    cache = placeholder_dataset(data_locations.xdg / "mnist-bench" / name)
    debian = placeholder_dataset(data_locations.debian, gz=False)
    monkeypatch.setenv(ENV_VAR, str(data_locations.env))

    assert find_dataset_dir(name, tmp_path / "explicit") == explicit
    assert find_dataset_dir(name) == env
    monkeypatch.delenv(ENV_VAR)
    assert find_dataset_dir(name) == cache
    for stub in cache.iterdir():
        stub.unlink()
    assert find_dataset_dir(name) == debian
    debian.joinpath(TEST_LABELS).unlink()
    assert find_dataset_dir(name) is None


def test_cache_under_home_when_xdg_unset_or_relative(data_locations, monkeypatch):
    home_cache = placeholder_dataset(data_locations.home / ".cache" / "mnist-bench" / "mnist")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("mnist") == home_cache
    assert find_dataset_dir("mnist") == home_cache
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    assert cache_dir("mnist") == home_cache


def test_partial_folders_are_skipped(data_locations, monkeypatch):
    env = placeholder_dataset(data_locations.env / "mnist")
    (env / f"{TRAIN_IMAGES}.gz").unlink()
    cache = placeholder_dataset(data_locations.xdg / "mnist-bench" / "mnist")
    monkeypatch.setenv(ENV_VAR, str(data_locations.env))
    assert find_dataset_dir("mnist") == cache


def test_explicit_dir_is_authoritative_and_may_hold_files_directly(data_locations, monkeypatch, tmp_path):
    placeholder_dataset(data_locations.env / "mnist")
    monkeypatch.setenv(ENV_VAR, str(data_locations.env))
    assert find_dataset_dir("mnist", tmp_path / "empty") is None
    flat = placeholder_dataset(tmp_path / "flat")
    assert find_dataset_dir("mnist", flat) == flat


def test_debian_folder_only_serves_fashion_mnist(data_locations):
    placeholder_dataset(data_locations.debian)
    assert find_dataset_dir("mnist") is None
    assert find_dataset_dir("fashion-mnist") == data_locations.debian
