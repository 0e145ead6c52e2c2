"""Named data sets, each returned as ``(train, test)`` :class:`Dataset` splits.

Image sets give ``x`` as float32 NCHW scaled to [0, 1] and ``y`` as int64 class indices;
toy problems give 2-D points (float32 ``(N, 2)``) with int64 labels, and
``function_regression`` float32 ``(N, 1)`` inputs and targets.

Where the files are looked for (MNIST, Fashion-MNIST), in order:

1. ``$GRADLEARN_DATA/<name>`` (``name`` = ``mnist``, ``fashion-mnist``, ``cifar10``),
2. ``~/.cache/gradlearn/<name>``,
3. for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``
   (``apt-get install dataset-fashion-mnist``).

A folder counts when it holds all four IDX files (standard names such as
``train-images-idx3-ubyte.gz``, raw or gzip; a single file matching
``train-images-idx3-ubyte*`` is accepted too, e.g. ``...-first10k.gz``). When none does,
the files are downloaded into the first folder, verified (see :mod:`.download`). Offline,
:class:`DataError` lists every folder searched and how to get the files.

Randomness (toy problems, the digits split) comes from ``generator``: an int seed (the
default 0, so a data set is the same on every call) or a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..backend import resolve_generator
from .download import RemoteFile, fetch_files, mirror_urls
from .idx import DataError, load_idx

__all__ = [
    "Dataset",
    "mnist",
    "fashion_mnist",
    "digits",
    "cifar10",
    "xor",
    "two_spirals",
    "moons",
    "circles",
    "function_regression",
    "load_dataset",
    "DATASET_NAMES",
    "FASHION_MNIST_DEBIAN_DIR",
]

FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Dataset:
    """Examples ``x`` and targets ``y`` as two arrays indexed together.

    ``len(ds)`` is the number of examples; ``ds[i]`` is ``(x[i], y[i])`` for an int, a slice
    or an index array; ``classes`` names the classes (None for regression).
    """

    def __init__(self, x, y, classes=None, name: str = ""):
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise DataError(f"Dataset {name!r}: x has {len(x)} examples but y has {len(y)}")
        self.x, self.y = x, y
        self.classes = tuple(classes) if classes is not None else None
        self.name = name

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __iter__(self):
        return zip(self.x, self.y)

    def __repr__(self) -> str:
        classes = f", {len(self.classes)} classes" if self.classes is not None else ""
        return (
            f"Dataset({self.name!r}, x={tuple(self.x.shape)} {self.x.dtype}, "
            f"y={tuple(self.y.shape)} {self.y.dtype}{classes})"
        )


# ------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files
# ------------------------------------------------------------------------------------------

# Decompressed sizes and SHA-256 digests. MNIST t10k and all of Fashion-MNIST were computed
# here from real copies (MNIST t10k: /work/shared/data/mnist; Fashion-MNIST: Debian's
# dataset-fashion-mnist package). The MNIST *training* digests could not be computed here
# (only its first 10,000 images were at hand); they are the published values, identical in
# several independent public projects that also publish exactly our t10k digests.
_MNIST_FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", 47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", 60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", 7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", 10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
_FASHION_FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", 47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", 60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", 7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", 10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
_FASHION_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# role -> stem; a file is accepted as <stem>.gz, <stem>, or a unique match of <stem>*
_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _search_folders(name: str, extra=()) -> list[Path]:
    folders = []
    root = os.environ.get("GRADLEARN_DATA")
    if root:
        folders.append(Path(root).expanduser() / name)
    folders.append(Path.home() / ".cache" / "gradlearn" / name)
    folders.extend(Path(f) for f in extra)
    return folders


def _find_idx_files(folder: Path) -> dict:
    """role -> path of the files present in ``folder`` (missing roles absent)."""
    found = {}
    if not folder.is_dir():
        return found
    for role, stem in _IDX_STEMS.items():
        for exact in (folder / f"{stem}.gz", folder / stem):
            if exact.is_file():
                found[role] = exact
                break
        else:
            matches = sorted(
                p for p in folder.glob(f"{stem}*") if p.is_file() and not p.name.endswith((".part", ".tmp"))
            )
            if len(matches) > 1:
                names = ", ".join(p.name for p in matches)
                raise DataError(f"{folder}: several files could be the {role.replace('_', ' ')}: {names}; keep one")
            if matches:
                found[role] = matches[0]
    return found


def _load_idx_split(images_path: Path, labels_path: Path, split: str, name: str, classes) -> Dataset:
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{name}/{split}: {images_path.name} holds {len(images)} images but {labels_path.name} {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(classes):
        bad = int(np.argmax(labels >= len(classes)))
        raise DataError(f"{labels_path}: label {labels[bad]} of example {bad} (offset {8 + bad}) is not below {len(classes)}")
    x = np.multiply(images[:, None], np.float32(1 / 255), dtype=np.float32)
    return Dataset(x, labels.astype(np.int64), classes, name=f"{name}/{split}")


def _idx_dataset(name, title, path, download, base_url, timeout, progress, files, mirrors, classes, extra_folders=(), advice=""):
    roles = tuple(_IDX_STEMS)
    wanted = ", ".join(f.name for f in files.values())
    if path is not None:
        folder = Path(path).expanduser()
        found = _find_idx_files(folder)
        missing = [_IDX_STEMS[r] + "[.gz]" for r in roles if r not in found]
        if missing:
            raise DataError(f"{title}: {folder} lacks {', '.join(missing)} (expected {wanted})")
    else:
        searched = _search_folders(name, extra_folders)
        notes = []
        for folder in searched:
            found = _find_idx_files(folder)
            if len(found) == len(roles):
                break
            missing = [files[r].name for r in roles if r not in found]
            notes.append(f"  {folder}: " + ("no such folder" if not folder.is_dir() else "missing " + ", ".join(missing)))
        else:
            urls = mirror_urls(name, mirrors, base_url)
            how = (
                f"To get it, put {wanted} in one of those folders (or set GRADLEARN_DATA=<dir> and use <dir>/{name}, "
                f"or call {name.replace('-', '_')}(path=<folder>)){advice}; downloads come from "
                f"{', '.join(urls)} (the GRADLEARN_DATA_URL environment variable or base_url= chooses another)."
            )
            header = f"{title} not found. Searched, in order:\n" + "\n".join(notes)
            if not download:
                raise DataError(f"{header}\nDownloading is off (download=False). {how}")
            dest = searched[0]
            try:
                fetch_files([files[r] for r in roles], dest, urls, timeout=timeout, progress=progress)
            except (DataError, OSError) as exc:
                raise DataError(f"{header}\nDownloading into {dest} failed: {exc}\n{how}") from exc
            found = _find_idx_files(dest)
    train = _load_idx_split(found["train_images"], found["train_labels"], "train", name, classes)
    test = _load_idx_split(found["test_images"], found["test_labels"], "test", name, classes)
    return train, test


def mnist(path=None, *, download: bool = True, base_url: str | None = None, timeout: float = 30.0, progress: bool = True):
    """MNIST handwritten digits: ``(train, test)``, x float32 (N, 1, 28, 28) in [0, 1], y int64 0-9.

    ``path``: a folder holding the four IDX files (e.g. ``/work/shared/data/mnist``, whose
    training files carry a ``-first10k`` suffix); otherwise the standard folders are
    searched and, when absent, the files are downloaded (``download=False`` forbids it;
    ``base_url`` or ``$GRADLEARN_DATA_URL`` picks the mirror), verified by decompressed
    size and SHA-256.
    """
    return _idx_dataset("mnist", "MNIST", path, download, base_url, timeout, progress, _MNIST_FILES, _MNIST_MIRRORS, DIGIT_CLASSES)


def fashion_mnist(path=None, *, download: bool = True, base_url: str | None = None, timeout: float = 30.0, progress: bool = True):
    """Zalando's Fashion-MNIST: ``(train, test)``, x float32 (N, 1, 28, 28) in [0, 1], y int64 0-9.

    Looked for as in :func:`mnist`, then in Debian's ``/usr/share/datasets/fashion-mnist``
    (``apt-get install dataset-fashion-mnist``); downloaded from Zalando's GitHub or S3
    mirror when absent, verified by decompressed size and SHA-256.
    """
    advice = f", or install Debian's package: apt-get install dataset-fashion-mnist (files in {FASHION_MNIST_DEBIAN_DIR})"
    return _idx_dataset(
        "fashion-mnist", "Fashion-MNIST", path, download, base_url, timeout, progress,
        _FASHION_FILES, _FASHION_MIRRORS, FASHION_CLASSES, (FASHION_MNIST_DEBIAN_DIR,), advice,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits
# ------------------------------------------------------------------------------------------


def digits(test_fraction: float = 0.2, generator=0):
    """scikit-learn's 1,797 8x8 digits: x float32 (N, 1, 8, 8) in [0, 1] (pixel / 16), y int64 0-9.

    The split is stratified (each class split ``1 - test_fraction`` / ``test_fraction``) and
    fixed by ``generator`` (seed 0 by default); both splits keep the original order.
    Needs scikit-learn (``pip install 'gradlearn[digits]'``); no download.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "digits() reads scikit-learn's embedded 8x8 digits: install the extra with "
            "pip install 'gradlearn[digits]' (or pip install scikit-learn)"
        ) from exc
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    images = np.asarray(bunch.images)
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = _rng(generator)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test_mask[members[: int(round(test_fraction * len(members)))]] = True
    x = (images / 16.0).astype(np.float32)[:, None]
    train = Dataset(x[~test_mask], labels[~test_mask], DIGIT_CLASSES, name="digits/train")
    test = Dataset(x[test_mask], labels[test_mask], DIGIT_CLASSES, name="digits/test")
    return train, test


# ------------------------------------------------------------------------------------------
# CIFAR-10, binary version
# ------------------------------------------------------------------------------------------

_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = ("test_batch.bin",)


def _cifar_records(path: Path) -> int:
    if not path.is_file():
        raise DataError(f"{path}: missing CIFAR-10 batch file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty file (expected records of {_CIFAR_RECORD} bytes)")
    if size % _CIFAR_RECORD:
        full = size // _CIFAR_RECORD
        raise DataError(
            f"{path}: size {size} bytes is not a multiple of {_CIFAR_RECORD} (1 label + 3072 pixel bytes per record): "
            f"record {full} at offset {full * _CIFAR_RECORD} has only {size % _CIFAR_RECORD} bytes"
        )
    return size // _CIFAR_RECORD


def _cifar_split(folder: Path, names, split: str) -> Dataset:
    paths = [folder / n for n in names]
    counts = [_cifar_records(p) for p in paths]
    x = np.empty((sum(counts), 3, 32, 32), dtype=np.float32)
    y = np.empty(sum(counts), dtype=np.int64)
    start = 0
    for p, count in zip(paths, counts):
        records = np.fromfile(p, dtype=np.uint8).reshape(count, _CIFAR_RECORD)
        labels = records[:, 0]
        if int(labels.max()) >= 10:
            bad = int(np.argmax(labels >= 10))
            raise DataError(f"{p}: label {labels[bad]} in record {bad} at offset {bad * _CIFAR_RECORD} (labels are 0-9)")
        pixels = records[:, 1:].reshape(count, 3, 32, 32)  # 1024 red, 1024 green, 1024 blue, row-major
        np.multiply(pixels, np.float32(1 / 255), out=x[start : start + count], dtype=np.float32)
        y[start : start + count] = labels
        start += count
    return Dataset(x, y, CIFAR10_CLASSES, name=f"cifar10/{split}")


def cifar10(path=None):
    """CIFAR-10, binary version: x float32 (N, 3, 32, 32) in [0, 1], y int64 0-9.

    ``path``: a folder with ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``
    (or the ``cifar-10-batches-bin`` folder inside it); default: ``$GRADLEARN_DATA/cifar10``
    then ``~/.cache/gradlearn/cifar10``. Each record is 1 label byte and 3072 pixel bytes;
    sizes and labels are validated (errors name the file and the offset). No download
    (get https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and unpack it there).
    """
    folders = [Path(path).expanduser()] if path is not None else _search_folders("cifar10")
    candidates = [c for f in folders for c in (f, f / "cifar-10-batches-bin")]
    for folder in candidates:
        if all((folder / n).is_file() for n in _CIFAR_TRAIN + _CIFAR_TEST):
            return _cifar_split(folder, _CIFAR_TRAIN, "train"), _cifar_split(folder, _CIFAR_TEST, "test")
    listing = "\n".join(f"  {c}" for c in candidates)
    raise DataError(
        f"CIFAR-10 not found: no folder holds {', '.join(_CIFAR_TRAIN + _CIFAR_TEST)}. Searched:\n{listing}\n"
        "Get https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, unpack it into one of those folders "
        "or pass cifar10(path=<folder>)."
    )


# ------------------------------------------------------------------------------------------
# Toy problems, made on the fly
# ------------------------------------------------------------------------------------------


def _rng(generator) -> np.random.Generator:
    return resolve_generator(generator)


def _balanced_labels(n: int, classes: int, rng) -> np.ndarray:
    """n labels, as balanced as possible, in random order."""
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def _points(name, make, n, n_test, generator, classes):
    if n < 1:
        raise DataError(f"{name}: n must be at least 1, got {n}")
    rng = _rng(generator)
    n_test = n if n_test is None else n_test
    splits = []
    for split, count in (("train", n), ("test", n_test)):
        y = _balanced_labels(count, len(classes), rng)
        x = make(y, rng).astype(np.float32)
        splits.append(Dataset(x, y, classes, name=f"{name}/{split}"))
    return tuple(splits)


def xor(n: int | None = None, noise: float = 0.1, n_test: int | None = None, generator=0):
    """The XOR problem: label = x1 XOR x2 on the corners of the unit square.

    ``n=None`` (default): the four corners (0,0)->0, (0,1)->1, (1,0)->1, (1,1)->0, for both
    train and test (the classic problem is to fit these four). Otherwise ``n`` points, each a
    random corner plus Gaussian noise of std ``noise``, and ``n_test`` (default ``n``) more.
    """
    if n is None:
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        y = np.array([0, 1, 1, 0], dtype=np.int64)
        return Dataset(x, y, ("0", "1"), "xor/train"), Dataset(x.copy(), y.copy(), ("0", "1"), "xor/test")

    def make(y, rng):
        first = rng.integers(0, 2, size=len(y))
        corners = np.stack([first, first ^ y], axis=1).astype(np.float64)
        return corners + noise * rng.standard_normal(corners.shape)

    return _points("xor", make, n, n_test, generator, ("0", "1"))


def two_spirals(n: int = 1000, noise: float = 0.05, turns: float = 1.5, n_test: int | None = None, generator=0):
    """Two interleaved spirals (Lang & Witbrock's benchmark), within the unit disc.

    Class k's points are ``(-1)^k r (cos t, sin t)`` with ``t = 2 pi turns r`` and radius
    ``r = sqrt(u)``, u uniform in [0, 1] (uniform density along the arm), plus Gaussian
    noise of std ``noise``. x float32 (n, 2), y int64 in {0, 1}, balanced.
    """

    def make(y, rng):
        r = np.sqrt(rng.random(len(y)))
        t = 2 * np.pi * turns * r
        sign = 1.0 - 2.0 * y
        x = np.stack([sign * r * np.cos(t), sign * r * np.sin(t)], axis=1)
        return x + noise * rng.standard_normal(x.shape)

    return _points("two-spirals", make, n, n_test, generator, ("0", "1"))


def moons(n: int = 1000, noise: float = 0.1, n_test: int | None = None, generator=0):
    """Two interleaving half circles: class 0 on (cos a, sin a), class 1 on (1 - cos a, 0.5 - sin a), a in [0, pi].

    Plus Gaussian noise of std ``noise``. x float32 (n, 2), y int64 in {0, 1}, balanced.
    """

    def make(y, rng):
        a = np.pi * rng.random(len(y))
        upper = np.stack([np.cos(a), np.sin(a)], axis=1)
        lower = np.stack([1.0 - np.cos(a), 0.5 - np.sin(a)], axis=1)
        x = np.where(y[:, None] == 0, upper, lower)
        return x + noise * rng.standard_normal(x.shape)

    return _points("moons", make, n, n_test, generator, ("0", "1"))


def circles(n: int = 1000, noise: float = 0.05, factor: float = 0.5, n_test: int | None = None, generator=0):
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor`` (0 < factor < 1).

    Plus Gaussian noise of std ``noise``. x float32 (n, 2), y int64 in {0, 1}, balanced.
    """
    if not 0.0 < factor < 1.0:
        raise DataError(f"circles: factor must be in (0, 1), got {factor}")

    def make(y, rng):
        a = 2 * np.pi * rng.random(len(y))
        radius = np.where(y == 0, 1.0, factor)
        x = radius[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
        return x + noise * rng.standard_normal(x.shape)

    return _points("circles", make, n, n_test, generator, ("outer", "inner"))


_FUNCTIONS = {
    "sin": (np.sin, (-math.pi, math.pi)),
    "cos": (np.cos, (-math.pi, math.pi)),
    "abs": (np.abs, (-1.0, 1.0)),
    "square": (np.square, (-1.0, 1.0)),
    "step": (lambda x: (x > 0).astype(np.float64), (-1.0, 1.0)),
    "sinc": (np.sinc, (-4.0, 4.0)),
    "gaussian": (lambda x: np.exp(-0.5 * x * x), (-3.0, 3.0)),
}


def function_regression(
    fn="sin", n: int = 256, noise: float = 0.0, n_test: int | None = None, interval=None, generator=0
):
    """1-D regression of ``y = fn(x)``: the universal-approximation demonstration.

    ``fn``: one of 'sin', 'cos' (on [-pi, pi]), 'abs', 'square', 'step' (on [-1, 1]),
    'sinc' (sin(pi x)/(pi x) on [-4, 4]), 'gaussian' (exp(-x^2/2) on [-3, 3]), or a callable
    (``interval`` then defaults to [-1, 1]). Train: ``n`` inputs uniform on the interval,
    targets plus Gaussian noise of std ``noise``. Test: ``n_test`` (default ``n``) evenly
    spaced inputs, exact targets (to plot the fit). x, y float32 (N, 1).
    """
    if callable(fn):
        func, default_interval, label = fn, (-1.0, 1.0), getattr(fn, "__name__", "custom")
    elif fn in _FUNCTIONS:
        (func, default_interval), label = _FUNCTIONS[fn], fn
    else:
        raise DataError(f"function_regression: unknown fn {fn!r}; choose one of {', '.join(_FUNCTIONS)} or pass a callable")
    low, high = interval if interval is not None else default_interval
    rng = _rng(generator)
    x_train = rng.uniform(low, high, size=(n, 1))
    y_train = func(x_train) + noise * rng.standard_normal(x_train.shape)
    x_test = np.linspace(low, high, n if n_test is None else n_test)[:, None]
    y_test = func(x_test)
    f32 = np.float32
    return (
        Dataset(x_train.astype(f32), np.asarray(y_train).astype(f32), None, name=f"function-regression-{label}/train"),
        Dataset(x_test.astype(f32), np.asarray(y_test).astype(f32), None, name=f"function-regression-{label}/test"),
    )


# ------------------------------------------------------------------------------------------

_DATASETS = {
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "digits": digits,
    "cifar10": cifar10,
    "xor": xor,
    "two-spirals": two_spirals,
    "moons": moons,
    "circles": circles,
    "function-regression": function_regression,
}
DATASET_NAMES = tuple(_DATASETS)


def load_dataset(name: str, **kwargs):
    """The ``(train, test)`` splits of the data set called ``name`` (see ``DATASET_NAMES``).

    Underscores and hyphens are interchangeable (``fashion_mnist`` = ``fashion-mnist``);
    keyword arguments go to the data set's function.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in _DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASET_NAMES)}")
    return _DATASETS[key](**kwargs)
