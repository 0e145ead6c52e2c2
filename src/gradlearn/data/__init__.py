"""Data: the IDX format, named data sets, a prefetching DataLoader that resumes exactly, transforms.

    train, test = gl.data.mnist()                          # or load_dataset("fashion-mnist"), digits(), moons(), ...
    norm = gl.data.Standardize.fit(train.x)                # training statistics only
    loader = gl.data.DataLoader(train, 128, generator=np.random.default_rng(0),
                                transform=gl.data.Compose([gl.data.RandomCrop(28, padding=2), norm]))
    for x, y in loader: ...                                # float32 NCHW x, int64 y

Errors about files and data sets raise :class:`DataError` (a ``ValueError``).
"""

from .datasets import (
    DATASET_NAMES,
    FASHION_MNIST_DEBIAN_DIR,
    Dataset,
    circles,
    cifar10,
    digits,
    fashion_mnist,
    function_regression,
    load_dataset,
    mnist,
    moons,
    two_spirals,
    xor,
)
from .download import RemoteFile, download_file, fetch_files
from .idx import DataError, load_idx, save_idx
from .loader import DataLoader
from .transforms import ColorJitter, Compose, GaussianNoise, RandomCrop, RandomHorizontalFlip, Standardize, Transform

__all__ = [
    "DataError",
    "load_idx",
    "save_idx",
    "Dataset",
    "DATASET_NAMES",
    "FASHION_MNIST_DEBIAN_DIR",
    "load_dataset",
    "mnist",
    "fashion_mnist",
    "digits",
    "cifar10",
    "xor",
    "two_spirals",
    "moons",
    "circles",
    "function_regression",
    "RemoteFile",
    "download_file",
    "fetch_files",
    "DataLoader",
    "Transform",
    "Standardize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "GaussianNoise",
    "Compose",
]
