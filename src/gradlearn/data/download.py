"""Downloading data files safely: verified before they are put in place.

A download goes to a temporary file next to its destination, is verified, and only then
renamed to its final name (``os.replace``, atomic on one file system), so an interrupted,
truncated or corrupted transfer never leaves a file that a later run would trust.

Verification is on the *decompressed* content (its size and SHA-256): mirrors recompress
the same data differently (Debian's Fashion-MNIST ``.gz`` files differ byte-wise from
Zalando's, their content does not), so a digest of the ``.gz`` would reject good copies.

Where files come from: each data set lists mirrors (base URLs). ``GRADLEARN_DATA_URL``
replaces them all with one mirror root, files being fetched from
``$GRADLEARN_DATA_URL/<dataset>/<file>``; a ``base_url=`` argument names the folder URL
itself (``<base_url>/<file>``). Tests point either at a local HTTP server.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from .idx import DataError

__all__ = ["RemoteFile", "download_file", "fetch_files", "mirror_urls", "DATA_URL_ENV"]

DATA_URL_ENV = "GRADLEARN_DATA_URL"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name on the mirror and on disk, and its decompressed size and SHA-256.

    ``sha256=None`` means the digest is unknown: the file is then verified by size only.
    """

    name: str
    size: int | None
    sha256: str | None = None


def mirror_urls(dataset: str, mirrors, base_url: str | None = None) -> list[str]:
    """The base URLs to try, in order: ``base_url``, else ``$GRADLEARN_DATA_URL/<dataset>``, else ``mirrors``."""
    if base_url:
        return [base_url.rstrip("/") + "/"]
    root = os.environ.get(DATA_URL_ENV)
    if root:
        return [f"{root.rstrip('/')}/{dataset}/"]
    return [m.rstrip("/") + "/" for m in mirrors]


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.1:
            self.last = now
            self._draw(end="")

    def finish(self) -> None:
        if self.enabled:
            self._draw(end="\n")

    def _draw(self, end: str) -> None:
        mb = self.done / 1e6
        rate = mb / max(time.monotonic() - self.start, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            text = f"\r{self.label} [{bar}] {100 * frac:5.1f}% {mb:.1f}/{self.total / 1e6:.1f} MB {rate:.1f} MB/s"
        else:
            text = f"\r{self.label} {mb:.1f} MB {rate:.1f} MB/s"
        sys.stderr.write(text + end)
        sys.stderr.flush()


def _verify(path: Path, url: str, size: int | None, sha256: str | None) -> None:
    """Check the decompressed content of ``path`` (gzip detected by magic bytes) against size and digest."""
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    digest = hashlib.sha256()
    found = 0
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                found += len(chunk)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{url}: downloaded file is not a valid gzip stream (truncated or corrupted: {exc})") from exc
    if size is not None and found != size:
        raise DataError(f"{url}: wrong size: expected {size} bytes (decompressed), found {found}")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DataError(
            f"{url}: SHA-256 mismatch of the decompressed content: expected {sha256.lower()}, found {digest.hexdigest()}"
        )


def download_file(
    url: str,
    dest,
    *,
    size: int | None = None,
    sha256: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, verifying the decompressed size and SHA-256 first.

    The bytes go to a hidden temporary file in ``dest``'s folder, renamed to ``dest`` only
    after verification; on any failure it is removed and :class:`DataError` says what went
    wrong (HTTP status, network error, truncated transfer, wrong size or digest).
    ``progress`` draws a bar on stderr. Returns ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "gradlearn"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                    bar = _Progress(dest.name, expected, progress)
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                    bar.finish()
            except urllib.error.HTTPError as exc:
                raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            except http.client.IncompleteRead as exc:
                raise DataError(f"{url}: truncated transfer: the connection closed after {len(exc.partial)} more bytes") from exc
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                raise DataError(f"{url}: cannot download ({reason})") from exc
        if expected is not None and bar.done != expected:
            raise DataError(f"{url}: truncated transfer: the server announced {expected} bytes, received {bar.done}")
        _verify(tmp, url, size, sha256)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file is readable by all
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_files(files, dest_dir, base_urls, *, timeout: float = 30.0, progress: bool = True) -> list[Path]:
    """Make sure every :class:`RemoteFile` in ``files`` is in ``dest_dir``, downloading the missing ones.

    Each missing file is tried on each base URL in order. Raises :class:`DataError` listing
    every attempt when a file cannot be had from any of them.
    """
    dest_dir = Path(dest_dir)
    paths = []
    for remote in files:
        dest = dest_dir / remote.name
        if not dest.is_file():
            failures = []
            for base in base_urls:
                try:
                    download_file(base + remote.name, dest, size=remote.size, sha256=remote.sha256, timeout=timeout, progress=progress)
                    break
                except DataError as exc:
                    failures.append(str(exc))
            else:
                raise DataError(f"could not download {remote.name}:\n  " + "\n  ".join(failures))
        paths.append(dest)
    return paths
