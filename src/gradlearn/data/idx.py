"""The IDX file format of MNIST and Fashion-MNIST, read and written with full validation.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the data,
row-major and big-endian:

    offset 0   0x00 0x00        two zero bytes
    offset 2   type code        0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                0x0D float32, 0x0E float64
    offset 3   ndim             number of dimensions (>= 1)
    offset 4   ndim x uint32    the sizes, big-endian
    offset 4 + 4*ndim           prod(sizes) * itemsize bytes of data, nothing after

Files are read raw or gzip-compressed; compression is detected from the first two bytes
(0x1f 0x8b), never from the file name. Every inconsistency (bad magic, unknown type code,
truncated header or data, extra bytes, a broken gzip stream) raises :class:`DataError`
naming the file, what was expected and what was found, and the byte offset (in the
decompressed stream) where the file went wrong.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "load_idx", "save_idx", "IDX_TYPES"]


class DataError(ValueError):
    """A data file or data set that is missing, malformed or fails verification."""


# type code -> big-endian dtype of the stored data
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(d.kind, d.itemsize): code for code, d in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exactly(stream, buffer) -> int:
    """Fill ``buffer`` (a writable memoryview of bytes) from ``stream``; the number of bytes read."""
    view = memoryview(buffer).cast("B")
    total = 0
    while total < len(view):
        n = stream.readinto(view[total:])
        if not n:
            break
        total += n
    return total


def _count_rest(stream) -> int:
    """Bytes left in ``stream`` (read and discarded in chunks)."""
    extra = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return extra
        extra += len(chunk)


def load_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian, writable numpy array.

    The result has the file's shape and dtype (uint8 for MNIST images and labels).
    Raises :class:`DataError` for any malformed file, with the file name, the expected and
    found byte counts, and the offset where the content went wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IDX file")
    compressed = _is_gzip(path)
    what = f"{path}{' (gzip)' if compressed else ''}"
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as stream:
            return _parse_idx(stream, what)
    except DataError:
        raise
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(
            f"{what}: corrupted or truncated gzip stream ({type(exc).__name__}: {exc}); "
            "delete the file and fetch it again"
        ) from exc


def _parse_idx(stream, what: str) -> np.ndarray:
    magic = bytearray(4)
    got = _read_exactly(stream, magic)
    if got < 4:
        raise DataError(f"{what}: truncated header: expected a 4-byte magic number, found {got} bytes (file ends at offset {got})")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{what}: bad magic number 0x{bytes(magic).hex()}: bytes 0-1 must be 0x0000, found 0x{bytes(magic[:2]).hex()} "
            "at offset 0 (not an IDX file)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise DataError(f"{what}: unknown IDX type code 0x{code:02X} at offset 2 (expected one of {known})")
    if ndim == 0:
        raise DataError(f"{what}: number of dimensions at offset 3 is 0 (expected at least 1)")
    header_size = 4 + 4 * ndim
    dims_bytes = bytearray(4 * ndim)
    got = _read_exactly(stream, dims_bytes)
    if got < 4 * ndim:
        raise DataError(
            f"{what}: truncated header: {ndim} dimensions need {header_size} header bytes, "
            f"found {4 + got} (file ends at offset {4 + got})"
        )
    shape = tuple(int(d) for d in np.frombuffer(bytes(dims_bytes), dtype=">u4"))
    dtype = IDX_TYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    data_size = count * dtype.itemsize
    expected = header_size + data_size
    if data_size > 1 << 40:
        raise DataError(f"{what}: header declares shape {shape} ({data_size} bytes of data): implausible, corrupted header?")
    out = np.empty(shape, dtype=dtype.newbyteorder("="))
    got = _read_exactly(stream, out) if count else 0
    if got < data_size:
        raise DataError(
            f"{what}: truncated data: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes "
            f"({header_size} header + {data_size} data), found {header_size + got} "
            f"(file ends at offset {header_size + got}, {data_size - got} bytes short)"
        )
    extra = _count_rest(stream)
    if extra:
        raise DataError(
            f"{what}: over-long file: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes, "
            f"found {expected + extra} ({extra} unexpected bytes from offset {expected})"
        )
    if dtype.itemsize > 1 and np.little_endian:
        out.byteswap(inplace=True)  # the buffer was filled with big-endian bytes
    return out


def save_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: name ends in .gz).

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (cast int64 labels to
    uint8 first). Returns the path written.
    """
    path = Path(path)
    array = np.asarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _CODE_OF_KIND:
        raise DataError(
            f"save_idx({path}): IDX stores uint8, int8, int16, int32, float32 or float64, got {array.dtype} "
            "(cast first, e.g. labels.astype(np.uint8))"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"save_idx({path}): IDX needs 1 to 255 dimensions, got an array of shape {array.shape}")
    code = _CODE_OF_KIND[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with (gzip.open(tmp, "wb", compresslevel=6) if compress else open(tmp, "wb")) as f:
        f.write(header)
        f.write(payload)
    os.replace(tmp, path)
    return path
