"""IDX reading and writing: round trips, and every way a file can be broken."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from gradlearn.data import DataError, load_idx, save_idx

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip_every_type(tmp_path, rng, dtype, name):
    if np.dtype(dtype).kind == "f":
        array = rng.standard_normal((3, 5, 7)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=(3, 5, 7), endpoint=True).astype(dtype)
    path = save_idx(tmp_path / name, array)
    back = load_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 0  # writable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_header_layout_is_big_endian(tmp_path):
    path = save_idx(tmp_path / "v.idx", np.array([1, 258], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])


def test_compression_detected_by_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_raw = save_idx(tmp_path / "raw.gz", array, compress=False)
    raw_named_gz = save_idx(tmp_path / "compressed.idx", array, compress=True)
    np.testing.assert_array_equal(load_idx(gz_named_raw), array)
    np.testing.assert_array_equal(load_idx(raw_named_gz), array)


def test_one_dimensional_and_empty(tmp_path):
    np.testing.assert_array_equal(load_idx(save_idx(tmp_path / "l.idx", np.arange(10, dtype=np.uint8))), np.arange(10))
    empty = load_idx(save_idx(tmp_path / "e.idx", np.zeros((0, 28, 28), np.uint8)))
    assert empty.shape == (0, 28, 28)


def test_save_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="int64"):
        save_idx(tmp_path / "x.idx", np.arange(3))


def _good_bytes():
    return bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))  # 12 header + 6 data


def _write(tmp_path, content, compress=False, name="bad.idx"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_good_reference_file_loads(tmp_path, compress):
    np.testing.assert_array_equal(load_idx(_write(tmp_path, _good_bytes(), compress)), np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "content, patterns",
    [
        (b"\x01\x02" + _good_bytes()[2:], ["bad magic", "offset 0", "0x0102"]),
        (b"\x00\x00\x07\x02" + _good_bytes()[4:], ["type code 0x07", "offset 2"]),
        (b"\x00\x00\x08\x00", ["dimensions at offset 3 is 0"]),
        (b"\x00\x00", ["truncated header", "found 2 bytes"]),
        (_good_bytes()[:9], ["truncated header", "need 12 header bytes", "found 9", "offset 9"]),
        (_good_bytes()[:15], ["truncated data", "needs 18 bytes", "found 15", "offset 15", "3 bytes short"]),
        (_good_bytes() + b"\x00" * 5, ["over-long", "needs 18 bytes", "found 23", "5 unexpected bytes from offset 18"]),
        (b"", ["truncated header", "found 0 bytes"]),
    ],
    ids=["bad-magic", "type-code", "zero-dims", "short-magic", "short-dims", "short-data", "extra-bytes", "empty"],
)
def test_corruption_is_reported_with_file_and_offset(tmp_path, content, patterns, compress):
    path = _write(tmp_path, content, compress)
    with pytest.raises(DataError) as info:
        load_idx(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"
    assert isinstance(info.value, ValueError)


def test_broken_gzip_stream(tmp_path):
    garbage = _write(tmp_path, b"\x1f\x8b" + bytes(range(40)), name="garbage.gz")
    with pytest.raises(DataError, match="corrupted or truncated gzip") as info:
        load_idx(garbage)
    assert str(garbage) in str(info.value)
    whole = gzip.compress(_good_bytes() * 50)
    cut = _write(tmp_path, whole[: len(whole) // 2], name="cut.gz")
    with pytest.raises(DataError, match="gzip"):
        load_idx(cut)


def test_corrupted_gzip_checksum(tmp_path):
    whole = bytearray(gzip.compress(_good_bytes()))
    whole[-8] ^= 0xFF  # the CRC32 of the trailer
    with pytest.raises(DataError, match="gzip"):
        load_idx(_write(tmp_path, bytes(whole), name="crc.gz"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such IDX file"):
        load_idx(tmp_path / "nope.idx")


def test_real_mnist_test_set():
    path = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"real MNIST not at hand ({SHARED_MNIST} absent: it exists only in the project's shared workspace)")
    images = load_idx(path)
    labels = load_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.max() == 9
    np.testing.assert_array_equal(labels[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    # the digest our download table uses for this file
    header = bytes([0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28])
    digest = hashlib.sha256(header + images.tobytes()).hexdigest()
    assert digest == "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
