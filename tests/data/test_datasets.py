"""Named data sets: real MNIST / Fashion-MNIST where at hand, the search order, digits, CIFAR-10, toy problems."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from gradlearn.data import (
    DATASET_NAMES,
    DataError,
    Dataset,
    cifar10,
    circles,
    datasets,
    digits,
    fashion_mnist,
    function_regression,
    load_dataset,
    mnist,
    moons,
    save_idx,
    two_spirals,
    xor,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GRADLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GRADLEARN_DATA_URL", "http://127.0.0.1:9/")  # never used: download=False below
    return tmp_path


def _write_mnist_like(folder, n_train=5, n_test=3, suffix="", seed=0, label_max=10):
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, label_max, n_train, dtype=np.uint8)
    test_x = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    test_y = rng.integers(0, label_max, n_test, dtype=np.uint8)
    save_idx(folder / f"train-images-idx3-ubyte{suffix}.gz", train_x)
    save_idx(folder / f"train-labels-idx1-ubyte{suffix}.gz", train_y)
    save_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    save_idx(folder / "t10k-labels-idx1-ubyte", test_y)  # raw, no .gz
    return train_x, train_y, test_x, test_y


# --- real data -----------------------------------------------------------------------------


def test_real_mnist_from_the_shared_folder():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not at hand: {SHARED_MNIST} exists only in the project's shared workspace")
    train, test = mnist(path=SHARED_MNIST)
    assert train.x.shape == (10000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    np.testing.assert_array_equal(train.y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])  # the famous first digits
    np.testing.assert_array_equal(test.y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.classes == tuple("0123456789") and len(train) == 10000


def test_real_fashion_mnist_from_debian(monkeypatch, tmp_path):
    if not (datasets.FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GRADLEARN_DATA", raising=False)
    train, test = fashion_mnist(download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(train.y).tolist() == [6000] * 10 and np.bincount(test.y).tolist() == [1000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


# --- the search order and folder conventions -----------------------------------------------


def test_search_order_env_before_cache(isolated):
    env_folder, cache_folder = isolated / "data" / "mnist", isolated / "home" / ".cache" / "gradlearn" / "mnist"
    env_folder.mkdir(parents=True)
    cache_folder.mkdir(parents=True)
    from_env = _write_mnist_like(env_folder, seed=1)
    from_cache = _write_mnist_like(cache_folder, seed=2)
    train, test = mnist(download=False)
    np.testing.assert_array_equal(train.y, from_env[1])
    np.testing.assert_allclose(test.x[:, 0], from_env[2] / np.float32(255), rtol=1e-6)
    (env_folder / "t10k-labels-idx1-ubyte").unlink()  # incomplete: the next folder is used
    train, _ = mnist(download=False)
    np.testing.assert_array_equal(train.y, from_cache[1])


def test_suffixed_training_files_are_globbed(tmp_path):
    written = _write_mnist_like(tmp_path, suffix="-first10k")
    train, test = mnist(path=tmp_path)
    assert train.name == "mnist/train" and len(train) == 5 and len(test) == 3
    np.testing.assert_array_equal(train.y, written[1])


def test_ambiguous_and_missing_files(tmp_path):
    _write_mnist_like(tmp_path, suffix="-a")
    save_idx(tmp_path / "train-images-idx3-ubyte-b.gz", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(DataError, match="several files could be the train images"):
        mnist(path=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"lacks train-images-idx3-ubyte\[.gz\]"):
        mnist(path=empty)


def test_inconsistent_files(tmp_path):
    _write_mnist_like(tmp_path)
    save_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="holds 5 images but train-labels-idx1-ubyte.gz 4 labels"):
        mnist(path=tmp_path)
    save_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2, 12, 3, 4], np.uint8))
    with pytest.raises(DataError, match="label 12 of example 2 .offset 10. is not below 10"):
        mnist(path=tmp_path)


# --- digits ------------------------------------------------------------------------------


def test_digits_split_is_stratified_and_seeded():
    pytest.importorskip("sklearn", reason="digits() needs scikit-learn")
    train, test = digits()
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert len(train) + len(test) == 1797
    assert 0.0 == train.x.min() and train.x.max() == 1.0
    counts = np.bincount(train.y, minlength=10) + np.bincount(test.y, minlength=10)
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), np.round(0.2 * counts))
    again_train, again_test = digits()
    np.testing.assert_array_equal(again_test.x, test.x)
    other_train, _ = digits(generator=1)
    assert not np.array_equal(other_train.y, train.y) or not np.array_equal(other_train.x, train.x)
    # no example is in both splits (images of the two splits as byte strings)
    train_rows = {row.tobytes() for row in train.x.reshape(len(train), -1)}
    overlap = sum(row.tobytes() in train_rows for row in test.x.reshape(len(test), -1))
    assert overlap <= 5  # the raw data has a few exact duplicates; a leaking split would give hundreds


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"gradlearn\[digits\]"):
        digits()


# --- CIFAR-10 ----------------------------------------------------------------------------


def _cifar_records(labels, rng):
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], pixels], axis=1), pixels


def _write_cifar(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    all_pixels, all_labels = [], []
    for i in range(1, 6):
        labels = rng.integers(0, 10, 2)
        records, pixels = _cifar_records(labels, rng)
        records.tofile(folder / f"data_batch_{i}.bin")
        all_pixels.append(pixels)
        all_labels.append(labels)
    records, test_pixels = _cifar_records([9, 0, 3], rng)
    records.tofile(folder / "test_batch.bin")
    return np.concatenate(all_pixels), np.concatenate(all_labels), test_pixels


def test_cifar10_layout(tmp_path, rng):
    pixels, labels, test_pixels = _write_cifar(tmp_path / "cifar-10-batches-bin", rng)
    train, test = cifar10(tmp_path)  # finds the cifar-10-batches-bin folder inside
    assert train.x.shape == (10, 3, 32, 32) and train.x.dtype == np.float32
    np.testing.assert_array_equal(train.y, labels)
    np.testing.assert_array_equal(test.y, [9, 0, 3])
    # record layout: 1024 red, 1024 green, 1024 blue bytes, each plane row-major
    k, c, row, col = 7, 1, 5, 30
    assert train.x[k, c, row, col] == np.float32(pixels[k, c * 1024 + row * 32 + col] / np.float32(255))
    np.testing.assert_allclose(test.x.reshape(3, -1) * 255, test_pixels, atol=1e-4)
    assert train.classes[0] == "airplane"


def test_cifar10_errors(tmp_path, rng):
    folder = tmp_path / "c"
    _write_cifar(folder, rng)
    data = (folder / "data_batch_3.bin").read_bytes()
    (folder / "data_batch_3.bin").write_bytes(data + b"\x01\x02")
    with pytest.raises(DataError, match=r"data_batch_3.bin: size 6148 bytes is not a multiple of 3073.*record 2 at offset 6146 has only 2 bytes"):
        cifar10(folder)
    bad = bytearray(data)
    bad[3073] = 10
    (folder / "data_batch_3.bin").write_bytes(bytes(bad))
    with pytest.raises(DataError, match=r"data_batch_3.bin: label 10 in record 1 at offset 3073"):
        cifar10(folder)
    with pytest.raises(DataError, match="(?s)CIFAR-10 not found.*cifar-10-binary.tar.gz"):
        cifar10(tmp_path / "nowhere")


# --- toy problems ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [two_spirals, moons, circles, lambda **k: xor(n=101, **k)])
def test_toy_shapes_balance_and_determinism(make):
    train, test = make(generator=7)
    assert isinstance(train, Dataset) and train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.shape[1] == 2 and len(train) == len(test) and len(train) in (101, 1000)
    assert abs(int(np.sum(train.y == 0)) - int(np.sum(train.y == 1))) <= 1
    again, _ = make(generator=7)
    np.testing.assert_array_equal(again.x, train.x)
    np.testing.assert_array_equal(again.y, train.y)
    other, _ = make(generator=8)
    assert not np.array_equal(other.x, train.x)
    assert not np.array_equal(test.x, train.x)
    from_generator, _ = make(generator=np.random.default_rng(7))
    np.testing.assert_array_equal(from_generator.x, train.x)


def test_toy_geometry_without_noise():
    train, _ = circles(500, noise=0.0, factor=0.3)
    radius = np.hypot(train.x[:, 0], train.x[:, 1])
    np.testing.assert_allclose(radius, np.where(train.y == 0, 1.0, 0.3), rtol=1e-6)

    train, _ = moons(500, noise=0.0)
    centre = np.where(train.y[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    np.testing.assert_allclose(np.hypot(*(train.x - centre).T), 1.0, rtol=1e-6)
    assert np.all(train.x[train.y == 0, 1] >= -1e-6) and np.all(train.x[train.y == 1, 1] <= 0.5 + 1e-6)

    turns = 1.5
    train, _ = two_spirals(500, noise=0.0, turns=turns)
    radius = np.hypot(train.x[:, 0], train.x[:, 1]).astype(np.float64)
    assert radius.max() <= 1.0 + 1e-6
    point = np.where(train.y[:, None] == 0, train.x, -train.x)  # class 1 is class 0 rotated by pi
    angle = 2 * np.pi * turns * radius
    np.testing.assert_allclose(point, np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1), atol=1e-5)

    train, _ = xor(n=200, noise=0.0)
    assert set(map(tuple, train.x.tolist())) <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    np.testing.assert_array_equal(train.y, np.logical_xor(train.x[:, 0], train.x[:, 1]))


def test_classic_xor():
    train, test = xor()
    np.testing.assert_array_equal(train.x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(train.y, [0, 1, 1, 0])
    np.testing.assert_array_equal(test.x, train.x)


def test_function_regression():
    train, test = function_regression("sin", n=300)
    assert train.x.shape == (300, 1) and train.y.shape == (300, 1) and train.y.dtype == np.float32
    np.testing.assert_allclose(train.y, np.sin(train.x.astype(np.float64)), atol=1e-6)
    assert train.x.min() >= -math.pi and train.x.max() <= math.pi
    np.testing.assert_allclose(test.x[:, 0], np.linspace(-math.pi, math.pi, 300), rtol=1e-6)
    noisy, _ = function_regression("sin", n=20000, noise=0.1, generator=3)
    residual = noisy.y[:, 0] - np.sin(noisy.x[:, 0].astype(np.float64))
    assert abs(residual.std() - 0.1) < 0.005
    cubic, _ = function_regression(lambda x: x**3, n=50, interval=(-2, 2))
    np.testing.assert_allclose(cubic.y, cubic.x.astype(np.float64) ** 3, rtol=1e-5)
    with pytest.raises(DataError, match="unknown fn 'tan'.*sin"):
        function_regression("tan")


def test_load_dataset_by_name():
    assert DATASET_NAMES == ("mnist", "fashion-mnist", "digits", "cifar10", "xor", "two-spirals", "moons", "circles", "function-regression")
    train, _ = load_dataset("two_spirals", n=50, generator=1)
    np.testing.assert_array_equal(train.x, two_spirals(50, generator=1)[0].x)
    with pytest.raises(DataError) as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASET_NAMES)


def test_dataset_indexing():
    ds = Dataset(np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6), classes=["a", "b"], name="t")
    x, y = ds[2]
    np.testing.assert_array_equal(x, [4, 5])
    assert y == 2 and len(ds) == 6 and len(ds[1:4][0]) == 3
    assert "x=(6, 2) float32" in repr(ds)
    with pytest.raises(DataError, match="x has 3 examples but y has 2"):
        Dataset(np.zeros((3, 1)), np.zeros(2))
