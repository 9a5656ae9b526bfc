"""Datasets as plain arrays: the bundled ones (scikit-learn digits, MNIST-1D generated offline)
and the IDX ones (MNIST, Fashion-MNIST) read from a directory, optionally downloaded into it.

Every loader returns a :class:`DatasetSplit` of two immutable :class:`ArrayDataset`. Randomness
(train/test split, MNIST-1D generation) comes from the ``seed`` argument only; the global
``random`` / ``np.random`` / torch states are never changed.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import os
import random
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import torch

from ssddl.exceptions import ConfigurationError

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetSplit",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "read_idx",
]

DATASETS = ("digits", "mnist1d", "mnist", "fashion-mnist")


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class ArrayDataset:
    """A labelled dataset held in memory: ``x`` float32 of shape ``(N, *input_shape)``,
    ``y`` int64 of shape ``(N,)`` with labels in ``[0, num_classes)``.

    The arrays are stored as read-only views, so a dataset cannot be changed through its
    fields. They are not copied when they already have the right dtype: do not modify arrays
    after handing them to a dataset. ``x`` of another real dtype is converted to float32 and
    integer ``y`` to int64.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str = ""

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray):
            raise ConfigurationError(
                f"ArrayDataset.x must be a numpy array, got {type(x).__name__}"
            )
        if not isinstance(y, np.ndarray):
            raise ConfigurationError(
                f"ArrayDataset.y must be a numpy array, got {type(y).__name__}"
            )
        if x.dtype.kind not in "fiub":
            raise ConfigurationError(f"ArrayDataset.x must hold real numbers, got dtype {x.dtype}")
        if y.dtype.kind not in "iu":
            raise ConfigurationError(
                f"ArrayDataset.y must hold integer class labels, got dtype {y.dtype}"
            )
        if x.ndim < 2:
            raise ConfigurationError(
                f"ArrayDataset.x must have shape (N, *input_shape) with at least 2 dimensions, "
                f"got shape {x.shape}"
            )
        if y.ndim != 1:
            raise ConfigurationError(f"ArrayDataset.y must have shape (N,), got shape {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ConfigurationError(
                f"ArrayDataset.x has {x.shape[0]} samples but ArrayDataset.y has {y.shape[0]} "
                "labels; they must have the same length"
            )
        if (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, int | np.integer)
            or self.num_classes < 1
        ):
            raise ConfigurationError(
                f"ArrayDataset.num_classes must be an integer >= 1, got {self.num_classes!r}"
            )
        if not isinstance(self.name, str):
            raise ConfigurationError(f"ArrayDataset.name must be a str, got {self.name!r}")
        x = np.asarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise ConfigurationError("ArrayDataset.x holds NaN or infinite values")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ConfigurationError(
                f"ArrayDataset.y holds labels outside [0, {self.num_classes}) "
                f"(min {int(y.min())}, max {int(y.max())})"
            )
        y = np.asarray(y, dtype=np.int64)
        object.__setattr__(self, "x", _readonly(x))
        object.__setattr__(self, "y", _readonly(y))
        object.__setattr__(self, "num_classes", int(self.num_classes))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, ``x.shape[1:]``."""
        return tuple(int(d) for d in self.x.shape[1:])

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        """The samples at ``indices`` (a 1-D integer array, in that order), as a new dataset."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ConfigurationError(
                f"subset indices must be a 1-D integer array, got dtype {idx.dtype}, "
                f"shape {idx.shape}"
            )
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ConfigurationError(
                f"subset indices must lie in [0, {len(self)}), got min {int(idx.min())}, "
                f"max {int(idx.max())}"
            )
        return ArrayDataset(self.x[idx], self.y[idx], self.num_classes, self.name)

    def to_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh (writable, owned) tensors ``(x float32, y int64)``."""
        return torch.from_numpy(self.x.copy()), torch.from_numpy(self.y.copy())


@dataclass(frozen=True)
class DatasetSplit:
    """A train and a test set with the same classes and input shape."""

    train: ArrayDataset
    test: ArrayDataset

    def __post_init__(self) -> None:
        if not isinstance(self.train, ArrayDataset) or not isinstance(self.test, ArrayDataset):
            raise ConfigurationError("DatasetSplit.train and .test must be ArrayDataset")
        if self.train.num_classes != self.test.num_classes:
            raise ConfigurationError(
                f"DatasetSplit.train has {self.train.num_classes} classes but .test has "
                f"{self.test.num_classes}"
            )
        if self.train.input_shape != self.test.input_shape:
            raise ConfigurationError(
                f"DatasetSplit.train has input shape {self.train.input_shape} but .test has "
                f"{self.test.input_shape}"
            )


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_seed(seed: object, *, bound: int = 2**63) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < bound:
        raise ConfigurationError(f"seed must be an integer in [0, {bound}), got {seed!r}")
    return int(seed)


def _check_fraction(test_fraction: object) -> float:
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, float | int)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ConfigurationError(
            f"test_fraction must be a number in the open interval (0, 1), got {test_fraction!r}"
        )
    return float(test_fraction)


# --------------------------------------------------------------------------------------------
# Bundled datasets
# --------------------------------------------------------------------------------------------


def load_digits(*, seed: int = 0, test_fraction: float = 0.2) -> DatasetSplit:
    """scikit-learn's 8x8 digits (1797 samples, 10 classes, bundled, no download).

    ``x`` is scaled to [0, 1] with shape ``(N, 64)``. The split is stratified: from every class
    ``round(test_fraction * n_c)`` samples (at least one, leaving at least one) go to the test
    set, chosen by ``np.random.default_rng(seed)``; both sets come out shuffled.
    """
    from sklearn.datasets import load_digits as _sklearn_digits

    seed = _check_seed(seed)
    test_fraction = _check_fraction(test_fraction)
    bunch = _sklearn_digits()
    x = np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)
    y = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = min(max(round(test_fraction * members.size), 1), members.size - 1)
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    return DatasetSplit(
        train=ArrayDataset(x[train], y[train], 10, "digits"),
        test=ArrayDataset(x[test], y[test], 10, "digits"),
    )


def load_mnist1d(
    *, seed: int = 0, num_samples: int = 5000, test_fraction: float = 0.2
) -> DatasetSplit:
    """MNIST-1D (Greydanus 2020), generated offline with ``mnist1d.data.make_dataset``.

    Uses the package's default arguments with ``seed``, ``num_samples`` and the train split
    (``1 - test_fraction``) overridden; the dataset's URL is never used. ``x`` has shape
    ``(N, 40)``. ``num_samples`` is rounded down to a multiple of 10 (samples per class).

    ``make_dataset`` seeds the global ``random`` and ``np.random`` generators; their states are
    saved before and restored after, so the caller's global state is unchanged. Generating
    5,000 samples takes about 2.4 s (the package transforms each sample in Python), so a process
    keeps the last few generated sets (:func:`_mnist1d_arrays`) and each call gets its own
    copies (about 1 MB), so no caller can change what the next one gets, not even one that
    makes its dataset's arrays writeable again (``ssddl reproduce --quick`` loads MNIST-1D 30
    times for 2 seeds).
    """
    seed = _check_seed(seed, bound=2**32)  # np.random.seed accepts 32-bit seeds only
    test_fraction = _check_fraction(test_fraction)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 10:
        raise ConfigurationError(f"num_samples must be an integer >= 10, got {num_samples!r}")
    total = (num_samples // 10) * 10
    n_train = int(total * (1.0 - test_fraction))
    if not 0 < n_train < total:
        raise ConfigurationError(
            f"num_samples={num_samples} with test_fraction={test_fraction} leaves an empty "
            "train or test set; use more samples"
        )
    x, y, x_test, y_test = (a.copy() for a in _mnist1d_arrays(seed, num_samples, test_fraction))
    return DatasetSplit(
        train=ArrayDataset(x, y, 10, "mnist1d"), test=ArrayDataset(x_test, y_test, 10, "mnist1d")
    )


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(
    seed: int, num_samples: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``make_dataset``'s train and test arrays (float32 ``x``, int64 ``y``), cached, read-only
    (:func:`load_mnist1d` hands out copies)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    args.train_split = 1.0 - test_fraction
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = (
        np.asarray(raw["x"], dtype=np.float32),
        np.asarray(raw["y"], dtype=np.int64),
        np.asarray(raw["x_test"], dtype=np.float32),
        np.asarray(raw["y_test"], dtype=np.int64),
    )
    for array in arrays:
        array.setflags(write=False)
    return arrays


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 20


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _read_up_to(stream: _Reader, size: int) -> bytes:
    """Read ``size`` bytes or until EOF, in chunks (no up-front allocation of ``size``)."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _parse_idx(stream: _Reader, where: str) -> np.ndarray:
    magic = _read_up_to(stream, 4)
    if len(magic) < 4:
        raise ConfigurationError(f"IDX file {where} is truncated: {len(magic)} bytes, no header")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise ConfigurationError(
            f"IDX file {where} has a bad magic number 0x{magic.hex()}: expected 0x0000, a type "
            "code (08, 09, 0B, 0C, 0D or 0E) and the number of dimensions; "
            "is it an MNIST-style IDX file?"
        )
    dtype = _IDX_DTYPES[magic[2]]
    ndim = magic[3]
    if ndim == 0:
        raise ConfigurationError(f"IDX file {where} declares 0 dimensions")
    header = _read_up_to(stream, 4 * ndim)
    if len(header) < 4 * ndim:
        raise ConfigurationError(
            f"IDX file {where} is truncated inside its header ({ndim} dimensions declared)"
        )
    dims = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = 1
    for d in dims:
        count *= d
    nbytes = count * dtype.itemsize
    data = _read_up_to(stream, nbytes)
    if len(data) < nbytes:
        raise ConfigurationError(
            f"IDX file {where} is truncated: its header declares shape {dims} "
            f"({nbytes} data bytes) but only {len(data)} bytes follow"
        )
    if stream.read(1):
        raise ConfigurationError(
            f"IDX file {where} has trailing bytes after the {nbytes} data bytes its header "
            f"declares (shape {dims})"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed: detected from its first bytes).

    Returns a native-endian array of the declared type and shape. A malformed file (bad magic
    number, truncated header or data, trailing bytes, broken gzip stream) raises
    :class:`~ssddl.exceptions.ConfigurationError` naming the path.
    """
    p = Path(path)
    try:
        with p.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not compressed:
                return _parse_idx(raw, str(p))
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                return _parse_idx(unzipped, str(p))
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ConfigurationError(f"IDX file {p} is not a valid gzip stream: {exc}") from exc
    except FileNotFoundError as exc:
        raise ConfigurationError(f"IDX file {p} does not exist") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read IDX file {p}: {exc}") from exc


# The four files of an MNIST-style dataset, without the ".gz" suffix.
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class _IdxSource:
    """Where an MNIST-style dataset is published: mirrors (tried in order, each ending in "/")
    and the MD5 of each ``<name>.gz`` file."""

    title: str
    mirrors: tuple[str, ...]
    md5: tuple[tuple[str, str], ...]

    def checksum(self, filename: str) -> str:
        return dict(self.md5)[filename]


# The MD5 checksums are the published ones (the same as torchvision's resource lists).
_SOURCES: dict[str, _IdxSource] = {
    "mnist": _IdxSource(
        title="MNIST",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5=(
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": _IdxSource(
        title="Fashion-MNIST",
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        md5=(
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
}
_DOWNLOAD_TIMEOUT_S = 60.0
_MAX_DOWNLOAD_BYTES = 64 << 20  # the largest official file (Fashion-MNIST train images) is 26 MB


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    """The one place that opens a URL (tests replace it)."""
    if not url.startswith(("https://", "http://", "file://")):
        raise ConfigurationError(f"refusing to fetch {url}: only https, http and file URLs")
    response: IO[bytes] = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - scheme checked
    return response


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest`` atomically: into a temporary file in the same directory,
    checked against ``md5``, then renamed. On any failure the temporary file is removed."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)  # integrity against the published MD5s
        size = 0
        with os.fdopen(fd, "wb") as out, _urlopen(url, _DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise ConfigurationError(f"more than {_MAX_DOWNLOAD_BYTES} bytes; not the file")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != md5:
            raise ConfigurationError(
                f"MD5 checksum mismatch (got {digest.hexdigest()}, expected {md5})"
            )
        tmp.chmod(0o644)  # mkstemp makes it 0600; a dataset file is not a secret
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _find_idx(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download_missing(source: _IdxSource, root: Path, missing: Sequence[str]) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the data directory {root}: {exc}") from exc
    failed: list[str] = []
    first_errors: list[str] = []
    for name in missing:
        filename = f"{name}.gz"
        errors: list[str] = []
        for mirror in source.mirrors:
            url = mirror + filename
            try:
                _fetch(url, root / filename, source.checksum(filename))
                break
            except (OSError, http.client.HTTPException, ConfigurationError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            failed.append(filename)
            first_errors = first_errors or errors
    if failed:
        raise ConfigurationError(
            f"could not download the {source.title} file(s) {', '.join(failed)} into {root} "
            f"from any mirror ({'; '.join(first_errors)}). If this machine is offline, copy the "
            f"four files {', '.join(f + '.gz' for f in _IDX_FILES)} (or their uncompressed "
            f"versions) into {root} by hand and load with download=False."
        )


def _images_and_labels(
    images: np.ndarray, labels: np.ndarray, where: str, name: str
) -> ArrayDataset:
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ConfigurationError(
            f"{where}: the images file must hold uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ConfigurationError(
            f"{where}: the labels file must hold uint8 labels of shape (N,), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ConfigurationError(
            f"{where}: the images file holds {images.shape[0]} images but the labels file "
            f"holds {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= 10:
        raise ConfigurationError(f"{where}: label {int(labels.max())} is outside [0, 10)")
    x = (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return ArrayDataset(x, labels.astype(np.int64), 10, name)


def _load_idx_dataset(key: str, root: str | os.PathLike[str], download: bool) -> DatasetSplit:
    source = _SOURCES[key]
    directory = Path(root).expanduser()
    missing = [name for name in _IDX_FILES if _find_idx(directory, name) is None]
    if missing and download:
        _download_missing(source, directory, missing)
        missing = [name for name in _IDX_FILES if _find_idx(directory, name) is None]
    if missing:
        raise ConfigurationError(
            f"{source.title} file(s) missing from {directory}: {', '.join(missing)} "
            f"(raw or .gz). Put the four IDX files {', '.join(_IDX_FILES)} (each optionally "
            f"gzip-compressed with a .gz suffix) in that directory, or load with download=True "
            f"to fetch them from {source.mirrors[0]}"
        )
    paths = [_find_idx(directory, name) for name in _IDX_FILES]
    arrays = [read_idx(p) for p in paths if p is not None]
    return DatasetSplit(
        train=_images_and_labels(
            arrays[0], arrays[1], f"{source.title} train set in {directory}", key
        ),
        test=_images_and_labels(
            arrays[2], arrays[3], f"{source.title} test set in {directory}", key
        ),
    )


def load_mnist(root: str | os.PathLike[str], *, download: bool = False) -> DatasetSplit:
    """MNIST from the four IDX files in ``root`` (each raw or ``.gz``); the official
    60000/10000 split. Images come as float32 ``(N, 1, 28, 28)`` in [0, 1].

    With ``download=True`` missing files are first fetched into ``root`` from the official
    mirrors, MD5-checked against the published checksums and written atomically.
    """
    return _load_idx_dataset("mnist", root, download)


def load_fashion_mnist(root: str | os.PathLike[str], *, download: bool = False) -> DatasetSplit:
    """Fashion-MNIST, as :func:`load_mnist` (same file names and format, its own mirrors)."""
    return _load_idx_dataset("fashion-mnist", root, download)


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> DatasetSplit:
    """Load one of :data:`DATASETS` by name.

    ``seed`` and ``test_fraction`` choose the split of ``digits`` and the generation and split
    of ``mnist1d``; ``mnist`` and ``fashion-mnist`` use their official split and need ``root``.
    """
    if name == "digits":
        return load_digits(seed=seed, test_fraction=test_fraction)
    if name == "mnist1d":
        return load_mnist1d(seed=seed, test_fraction=test_fraction)
    if name in ("mnist", "fashion-mnist"):
        if root is None:
            raise ConfigurationError(
                f"dataset {name!r} is read from IDX files: pass root=<directory> "
                "(and download=True to fetch them)"
            )
        return _load_idx_dataset(name, root, download)
    raise ConfigurationError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
