"""Datasets: containers, the bundled loaders, the IDX reader, and the MNIST loaders with their
(offline-tested) download path."""

from __future__ import annotations

import gzip
import hashlib
import random
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from ssddl.exceptions import ConfigurationError
from ssddl.learning import data as data_mod
from ssddl.learning.data import (
    DATASETS,
    ArrayDataset,
    DatasetSplit,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    read_idx,
)

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, _TYPE_CODES[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def fake_mnist(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        IDX_FILES[0]: rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        IDX_FILES[1]: rng.integers(0, 10, size=n_train, dtype=np.uint8),
        IDX_FILES[2]: rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        IDX_FILES[3]: rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


def write_fake_mnist(root: Path, arrays: dict[str, np.ndarray], gz: tuple[bool, ...]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for (name, array), compressed in zip(arrays.items(), gz, strict=True):
        write_idx(root / name, array, gz=compressed)


# --------------------------------------------------------------------------------------------
# ArrayDataset / DatasetSplit
# --------------------------------------------------------------------------------------------


def small_dataset(n: int = 6) -> ArrayDataset:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return ArrayDataset(x, np.arange(n) % 3, 3, "toy")


def test_array_dataset_basics() -> None:
    ds = small_dataset()
    assert len(ds) == 6
    assert ds.input_shape == (3,)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    sub = ds.subset(np.array([4, 1]))
    assert len(sub) == 2 and sub.name == "toy" and sub.num_classes == 3
    np.testing.assert_array_equal(sub.x, ds.x[[4, 1]])
    np.testing.assert_array_equal(sub.y, [1, 1])
    assert len(ds.subset(np.array([], dtype=np.int64))) == 0


def test_array_dataset_converts_dtypes_and_is_read_only() -> None:
    x = np.ones((2, 2), dtype=np.float64)
    ds = ArrayDataset(x, np.array([0, 1], dtype=np.int32), 2)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        ds.x[0, 0] = 5.0
    x[0, 0] = 7.0  # the caller's array stays writable and does not alias a float64 → float32 copy
    assert ds.x[0, 0] == 1.0


def test_to_tensors_are_fresh_copies() -> None:
    ds = small_dataset()
    x, y = ds.to_tensors()
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    x[0, 0] = -1.0
    assert ds.x[0, 0] == 0.0


@pytest.mark.parametrize(
    ("x", "y", "k", "field"),
    [
        (np.zeros((3, 2), np.float32), np.zeros(2, np.int64), 2, "same length"),
        (np.zeros(3, np.float32), np.zeros(3, np.int64), 2, "ArrayDataset.x"),
        (np.zeros((3, 2), np.float32), np.zeros((3, 1), np.int64), 2, "ArrayDataset.y"),
        (np.zeros((3, 2), np.float32), np.zeros(3, np.float32), 2, "ArrayDataset.y"),
        (np.array([[0.0], [np.nan]], np.float32), np.zeros(2, np.int64), 2, "NaN"),
        (np.zeros((2, 1), np.float32), np.array([0, 2]), 2, r"outside \[0, 2\)"),
        (np.zeros((2, 1), np.float32), np.array([-1, 0]), 2, r"outside \[0, 2\)"),
        (np.zeros((2, 1), np.float32), np.array([0, 0]), 0, "num_classes"),
        (np.zeros((2, 1), np.float32), np.array([0, 0]), True, "num_classes"),
        ([[0.0], [1.0]], np.array([0, 0]), 2, "numpy array"),
        (np.array([["a"], ["b"]]), np.array([0, 0]), 2, "real numbers"),
    ],
)
def test_array_dataset_validation(x: object, y: object, k: object, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        ArrayDataset(x, y, k)  # type: ignore[arg-type]


def test_subset_validation() -> None:
    ds = small_dataset()
    with pytest.raises(ConfigurationError, match=r"\[0, 6\)"):
        ds.subset(np.array([6]))
    with pytest.raises(ConfigurationError, match="1-D integer"):
        ds.subset(np.array([0.5]))


def test_dataset_split_validation() -> None:
    a = small_dataset()
    with pytest.raises(ConfigurationError, match="classes"):
        DatasetSplit(a, ArrayDataset(a.x, a.y, 4))
    with pytest.raises(ConfigurationError, match="input shape"):
        DatasetSplit(a, ArrayDataset(np.zeros((2, 4), np.float32), np.zeros(2, np.int64), 3))


# --------------------------------------------------------------------------------------------
# digits and mnist1d
# --------------------------------------------------------------------------------------------


def test_digits_shapes_range_and_stratified_split() -> None:
    split = load_digits(seed=3)
    assert split.train.input_shape == (64,) and split.train.num_classes == 10
    assert split.train.name == split.test.name == "digits"
    assert len(split.train) + len(split.test) == 1797
    assert 0.19 < len(split.test) / 1797 < 0.21
    for ds in (split.train, split.test):
        assert ds.x.dtype == np.float32
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    train_counts = np.bincount(split.train.y, minlength=10)
    test_counts = np.bincount(split.test.y, minlength=10)
    ratio = test_counts / (train_counts + test_counts)
    assert np.all(np.abs(ratio - 0.2) < 0.01)
    # train and test are disjoint: no test row appears among the train rows
    train_rows = {
        row.tobytes() + bytes([lab]) for row, lab in zip(split.train.x, split.train.y, strict=True)
    }
    overlap = sum(
        row.tobytes() + bytes([lab]) in train_rows
        for row, lab in zip(split.test.x, split.test.y, strict=True)
    )
    assert overlap <= 5  # digits holds a handful of exact duplicate images


def test_digits_reproducible_and_seed_dependent() -> None:
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.y, c.train.y)
    assert len(load_digits(seed=0, test_fraction=0.5).test) in range(890, 910)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, True, "0.2"])
def test_digits_rejects_bad_test_fraction(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="test_fraction"):
        load_digits(test_fraction=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True, None])
def test_digits_rejects_bad_seed(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="seed"):
        load_digits(seed=bad)  # type: ignore[arg-type]


def test_mnist1d_offline_reproducible_and_global_rng_untouched() -> None:
    np.random.seed(123)
    random.seed(123)
    np_before = np.random.get_state()
    py_before = random.getstate()
    torch_before = torch.get_rng_state()
    a = load_mnist1d(seed=5, num_samples=200)
    assert np.random.get_state()[1].tolist() == np_before[1].tolist()
    assert np.random.get_state()[2] == np_before[2]
    assert random.getstate() == py_before
    assert torch.equal(torch.get_rng_state(), torch_before)
    b = load_mnist1d(seed=5, num_samples=200)
    c = load_mnist1d(seed=6, num_samples=200)
    assert a.train.input_shape == (40,) and a.train.num_classes == 10
    assert len(a.train) == 160 and len(a.test) == 40
    assert a.train.x.dtype == np.float32 and a.train.y.dtype == np.int64
    assert set(np.unique(a.train.y)) <= set(range(10))
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)


def test_mnist1d_is_generated_once_per_process_and_each_load_gets_its_own_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mnist1d.data

    from ssddl.learning import data as data_mod

    calls = []
    real = mnist1d.data.make_dataset
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda args: calls.append(1) or real(args))
    data_mod._mnist1d_arrays.cache_clear()
    a = load_mnist1d(seed=7, num_samples=100)
    kept = a.train.x.copy(), a.test.y.copy()
    for array in (a.train.x, a.train.y, a.test.x, a.test.y):  # a caller set on changing them
        array.setflags(write=True)
        array[:] = 0
    b = load_mnist1d(seed=7, num_samples=100)
    assert len(calls) == 1
    np.testing.assert_array_equal(b.train.x, kept[0])  # the next load gets the generated data
    np.testing.assert_array_equal(b.test.y, kept[1])
    assert not b.train.x.flags.writeable  # and, like every dataset's, read-only
    load_mnist1d(seed=7, num_samples=100, test_fraction=0.5)  # another set: generated
    assert len(calls) == 2
    data_mod._mnist1d_arrays.cache_clear()
    c = load_mnist1d(seed=7, num_samples=100)
    np.testing.assert_array_equal(b.train.x, c.train.x)  # the cache changes no value
    np.testing.assert_array_equal(b.test.y, c.test.y)


def test_mnist1d_argument_checks() -> None:
    with pytest.raises(ConfigurationError, match="num_samples"):
        load_mnist1d(num_samples=5)
    with pytest.raises(ConfigurationError, match="seed"):
        load_mnist1d(seed=2**32)


# --------------------------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path: Path, gz: bool, dtype: type) -> None:
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3", array, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # writable


def test_read_idx_detects_gzip_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(5, dtype=np.uint8)
    path = tmp_path / "labels"  # gzip data without a .gz suffix
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_empty_dimension(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(path).shape == (0, 28, 28)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "truncated"),
        (b"\x00\x00\x08", "truncated"),
        (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "bad magic"),
        (b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00", "bad magic"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x02" + (1).to_bytes(4, "big"), "inside its header"),
        (b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"\x00\x01", "truncated"),
        (b"\x00\x00\x0c\x01" + (1).to_bytes(4, "big") + b"\x00\x01", "truncated"),
        (b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00\x01", "trailing"),
        # a bogus huge size must fail cleanly without allocating it
        (b"\x00\x00\x0e\x03" + (2**32 - 1).to_bytes(4, "big") * 3, "truncated"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_malformed(tmp_path: Path, content: bytes, message: str, gz: bool) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(ConfigurationError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_broken_gzip(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConfigurationError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ConfigurationError, match="gzip"):
        read_idx(path)


def test_read_idx_missing_file_or_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match="cannot read IDX file"):
        read_idx(tmp_path)


# --------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST from a directory
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gz", [(False, False, False, False), (True, True, True, True), (True, False, False, True)]
)
@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_load_mnist_from_directory(tmp_path: Path, gz: tuple[bool, ...], loader: object) -> None:
    arrays = fake_mnist()
    write_fake_mnist(tmp_path, arrays, gz)
    split = loader(tmp_path)  # type: ignore[operator]
    assert split.train.x.shape == (12, 1, 28, 28) and split.test.x.shape == (5, 1, 28, 28)
    assert split.train.x.dtype == np.float32
    assert split.train.x.min() >= 0.0 and split.train.x.max() <= 1.0
    np.testing.assert_array_equal(
        split.train.x[:, 0], arrays[IDX_FILES[0]].astype(np.float32) / 255.0
    )
    np.testing.assert_array_equal(split.test.y, arrays[IDX_FILES[3]])
    assert split.train.num_classes == 10
    assert split.train.name == ("mnist" if loader is load_mnist else "fashion-mnist")


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, fake_mnist(), (True,) * 4)
    assert load_dataset("mnist", root=tmp_path).train.name == "mnist"
    assert load_dataset("fashion-mnist", root=str(tmp_path)).test.name == "fashion-mnist"
    assert load_dataset("digits", seed=1).train.name == "digits"
    assert DATASETS == ("digits", "mnist1d", "mnist", "fashion-mnist")
    with pytest.raises(ConfigurationError, match="root="):
        load_dataset("mnist")
    with pytest.raises(ConfigurationError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_load_mnist1d_via_load_dataset_uses_test_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake(**kwargs: object) -> str:
        seen.update(kwargs)
        return "ok"

    monkeypatch.setattr(data_mod, "load_mnist1d", fake)
    assert load_dataset("mnist1d", seed=4, test_fraction=0.3) == "ok"  # type: ignore[comparison-overlap]
    assert seen == {"seed": 4, "test_fraction": 0.3}


def test_missing_files_error_names_files_and_directory(tmp_path: Path) -> None:
    arrays = fake_mnist()
    del arrays[IDX_FILES[3]]
    for name, array in arrays.items():
        write_idx(tmp_path / name, array, gz=True)
    with pytest.raises(ConfigurationError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "t10k-labels-idx1-ubyte" in message
    assert "download=True" in message
    assert "missing from" in message and "train-images-idx3-ubyte," not in message.split("(")[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({IDX_FILES[1]: np.zeros(11, np.uint8)}, "12 images but the labels file holds 11"),
        ({IDX_FILES[0]: np.zeros((12, 28 * 28), np.uint8)}, r"shape \(N, 28, 28\)"),
        ({IDX_FILES[2]: np.zeros((5, 27, 28), np.uint8)}, r"shape \(N, 28, 28\)"),
        ({IDX_FILES[2]: np.zeros((5, 28, 28), np.float32)}, "uint8 images"),
        ({IDX_FILES[3]: np.zeros((5, 1), np.uint8)}, r"shape \(N,\)"),
        ({IDX_FILES[3]: np.full(5, 10, np.uint8)}, r"outside \[0, 10\)"),
    ],
)
def test_load_mnist_rejects_inconsistent_files(
    tmp_path: Path, change: dict[str, np.ndarray], message: str
) -> None:
    arrays = fake_mnist()
    arrays.update(change)
    write_fake_mnist(tmp_path, arrays, (True, False, True, False))
    with pytest.raises(ConfigurationError, match=message) as info:
        load_mnist(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_mnist_rejects_corrupt_file(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, fake_mnist(), (False,) * 4)
    path = tmp_path / IDX_FILES[0]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConfigurationError, match="truncated") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# Download (never over the network: file:// mirrors and a replaced URL opener)
# --------------------------------------------------------------------------------------------


def make_mirror(directory: Path, arrays: dict[str, np.ndarray]) -> tuple[str, dict[str, str]]:
    """Write ``<name>.gz`` files into ``directory``; return its file:// URL and their MD5s."""
    directory.mkdir(parents=True)
    md5 = {}
    for name, array in arrays.items():
        path = write_idx(directory / name, array, gz=True)
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return directory.as_uri() + "/", md5


def use_source(
    monkeypatch: pytest.MonkeyPatch, key: str, mirrors: tuple[str, ...], md5: dict[str, str]
) -> None:
    source = data_mod._IdxSource(title=key.upper(), mirrors=mirrors, md5=tuple(md5.items()))
    monkeypatch.setitem(data_mod._SOURCES, key, source)


def test_published_checksums_cover_the_four_files() -> None:
    for source in data_mod._SOURCES.values():
        names = [name for name, _ in source.md5]
        assert names == [f"{n}.gz" for n in IDX_FILES]
        assert all(len(digest) == 32 for _, digest in source.md5)
        assert all(m.endswith("/") and m.startswith("http") for m in source.mirrors)


@pytest.mark.parametrize("key", ["mnist", "fashion-mnist"])
def test_download_from_local_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    arrays = fake_mnist(seed=7)
    url, md5 = make_mirror(tmp_path / "mirror", arrays)
    use_source(monkeypatch, key, (url,), md5)
    root = tmp_path / "data" / "nested"  # created on demand
    split = load_dataset(key, root=root, download=True)
    np.testing.assert_array_equal(split.train.y, arrays[IDX_FILES[1]])
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{n}.gz" for n in IDX_FILES)
    # a second call finds the files and does not fetch again
    monkeypatch.setattr(data_mod, "_urlopen", _offline)
    assert len(load_dataset(key, root=root, download=True).test) == 5


def test_download_fetches_only_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = fake_mnist(seed=8)
    url, md5 = make_mirror(tmp_path / "mirror", arrays)
    use_source(monkeypatch, "mnist", (url,), md5)
    root = tmp_path / "data"
    root.mkdir()
    write_idx(root / IDX_FILES[0], arrays[IDX_FILES[0]])  # present, uncompressed
    fetched: list[str] = []
    real = data_mod._urlopen

    def spy(u: str, timeout: float) -> object:
        fetched.append(u.rsplit("/", 1)[1])
        return real(u, timeout)

    monkeypatch.setattr(data_mod, "_urlopen", spy)
    load_mnist(root, download=True)
    assert fetched == [f"{n}.gz" for n in IDX_FILES[1:]]


def test_download_falls_back_to_next_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, md5 = make_mirror(tmp_path / "mirror", fake_mnist())
    dead = (tmp_path / "empty").as_uri() + "/"
    use_source(monkeypatch, "mnist", (dead, url), md5)
    assert len(load_mnist(tmp_path / "data", download=True).train) == 12


def test_download_checksum_mismatch_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, md5 = make_mirror(tmp_path / "mirror", fake_mnist())
    md5[f"{IDX_FILES[2]}.gz"] = "0" * 32
    use_source(monkeypatch, "mnist", (url,), md5)
    root = tmp_path / "data"
    with pytest.raises(ConfigurationError, match="checksum mismatch") as info:
        load_mnist(root, download=True)
    assert f"{IDX_FILES[2]}.gz" in str(info.value) and str(root) in str(info.value)
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted(f"{n}.gz" for n in (IDX_FILES[0], IDX_FILES[1], IDX_FILES[3]))


def _offline(url: str, timeout: float) -> object:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_download_offline_gives_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_mod, "_urlopen", _offline)
    root = tmp_path / "mnist"
    with pytest.raises(ConfigurationError) as info:
        load_mnist(root, download=True)
    message = str(info.value)
    assert str(root) in message
    for name in IDX_FILES:
        assert f"{name}.gz" in message
    assert "name resolution" in message and "download=False" in message
    assert not any(root.iterdir())  # no partial files


class _Response:
    """A fake HTTP response serving ``payload`` and then failing, like a dropped connection."""

    def __init__(self, payload: bytes, fail: bool) -> None:
        self.payload, self.fail, self.sent = payload, fail, False

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            if self.fail:
                raise ConnectionResetError("connection reset by peer")
            return b""
        self.sent = True
        return self.payload

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def test_download_interrupted_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = {f"{n}.gz": gzip.compress(idx_bytes(a)) for n, a in fake_mnist().items()}
    md5 = {name: hashlib.md5(p).hexdigest() for name, p in payloads.items()}
    use_source(monkeypatch, "mnist", ("https://mirror.invalid/",), md5)
    monkeypatch.setattr(
        data_mod,
        "_urlopen",
        lambda u, timeout: _Response(payloads[u.rsplit("/", 1)[1]], fail="t10k" in u),
    )
    root = tmp_path / "data"
    with pytest.raises(ConfigurationError, match="connection reset"):
        load_mnist(root, download=True)
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{n}.gz" for n in IDX_FILES[:2])
    # the connection comes back: the remaining files are fetched and everything loads
    monkeypatch.setattr(
        data_mod, "_urlopen", lambda u, timeout: _Response(payloads[u.rsplit("/", 1)[1]], False)
    )
    assert len(load_mnist(root, download=True).test) == 5


def test_urlopen_refuses_other_schemes() -> None:
    with pytest.raises(ConfigurationError, match="only https, http and file"):
        data_mod._urlopen("ftp://example.org/x", 1.0)
