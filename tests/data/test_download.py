"""Downloads against a local HTTP server: verified, atomic, clear about every failure."""

import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from gradlearn.data import DataError, RemoteFile, datasets, download_file, fetch_files, mnist, save_idx


class _Handler(http.server.SimpleHTTPRequestHandler):
    root = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(self.root), **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/truncated/"):  # announce the full length, send half, hang up
            body = (self.root / self.path[len("/truncated/") :]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1, ephemeral port, stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"root": root})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _payload(n=200_000, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_right_checksum_puts_the_file_in_place(server, tmp_path):
    root, url = server
    data = _payload()
    (root / "f.bin").write_bytes(data)
    dest = tmp_path / "out" / "f.bin"
    assert download_file(url + "f.bin", dest, size=len(data), sha256=_sha(data), timeout=5, progress=False) == dest
    assert dest.read_bytes() == data
    assert _leftovers(dest.parent) == ["f.bin"]  # no temporary file left


def test_gzip_is_verified_on_decompressed_content(server, tmp_path):
    root, url = server
    data = _payload()
    (root / "f.gz").write_bytes(gzip.compress(data, compresslevel=1))
    dest = tmp_path / "f.gz"
    download_file(url + "f.gz", dest, size=len(data), sha256=_sha(data), timeout=5, progress=False)
    assert gzip.decompress(dest.read_bytes()) == data
    # the digest of the compressed bytes is not what is checked
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download_file(url + "f.gz", tmp_path / "g.gz", sha256=_sha((root / "f.gz").read_bytes()), timeout=5, progress=False)


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    root, url = server
    data = _payload()
    (root / "f.bin").write_bytes(data)
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DataError) as info:
        download_file(url + "f.bin", dest, size=len(data), sha256="0" * 64, timeout=5, progress=False)
    message = str(info.value)
    assert "SHA-256 mismatch" in message and url + "f.bin" in message and _sha(data) in message and "0" * 64 in message
    assert _leftovers(dest.parent) == []


def test_wrong_size_with_size_only_verification(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(_payload(1000))
    with pytest.raises(DataError, match="expected 1001 bytes .decompressed., found 1000"):
        download_file(url + "f.bin", tmp_path / "f.bin", size=1001, timeout=5, progress=False)
    assert _leftovers(tmp_path) == ["www"]


def test_truncated_transfer(server, tmp_path):
    root, url = server
    data = _payload()
    (root / "f.bin").write_bytes(data)
    with pytest.raises(DataError, match="truncated transfer") as info:
        download_file(url + "truncated/f.bin", tmp_path / "f.bin", size=len(data), sha256=_sha(data), timeout=5, progress=False)
    assert f"announced {len(data)} bytes, received {len(data) // 2}" in str(info.value)
    assert not (tmp_path / "f.bin").exists() and _leftovers(tmp_path) == ["www"]


def test_truncated_gzip_file(server, tmp_path):
    root, url = server
    data = _payload()
    whole = gzip.compress(data)
    (root / "f.gz").write_bytes(whole[: len(whole) - 1000])  # served completely, but the stream is cut
    with pytest.raises(DataError, match="not a valid gzip stream"):
        download_file(url + "f.gz", tmp_path / "f.gz", size=len(data), sha256=_sha(data), timeout=5, progress=False)
    assert _leftovers(tmp_path) == ["www"]


def test_404(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(url + "missing.bin", tmp_path / "missing.bin", timeout=5, progress=False)
    assert _leftovers(tmp_path) == ["www"]


def test_unreachable_server(tmp_path):
    with pytest.raises(DataError, match="cannot download"):
        download_file(_closed_port_url() + "f.bin", tmp_path / "f.bin", timeout=5, progress=False)
    assert _leftovers(tmp_path) == []


def test_progress_bar_on_stderr(server, tmp_path, capsys):
    root, url = server
    data = _payload()
    (root / "f.bin").write_bytes(data)
    download_file(url + "f.bin", tmp_path / "f.bin", sha256=_sha(data), timeout=5, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "f.bin" in captured.err and "100.0%" in captured.err


def test_fetch_tries_mirrors_in_order(server, tmp_path):
    root, url = server
    data = _payload(5000)
    (root / "good").mkdir()
    (root / "good" / "f.bin").write_bytes(data)
    paths = fetch_files([RemoteFile("f.bin", len(data), _sha(data))], tmp_path / "d", [url + "empty/", url + "good/"], timeout=5, progress=False)
    assert paths[0].read_bytes() == data
    with pytest.raises(DataError) as info:
        fetch_files([RemoteFile("g.bin", 1, None)], tmp_path / "d", [url + "empty/", url + "good/"], timeout=5, progress=False)
    assert str(info.value).count("HTTP 404") == 2


def _mnist_like_files(folder, n_train=6, n_test=4):
    rng = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    remote = {}
    for role, (name, array) in zip(("train_images", "train_labels", "test_images", "test_labels"), arrays.items()):
        path = save_idx(folder / name, array)
        content = gzip.decompress(path.read_bytes())
        remote[role] = RemoteFile(name, len(content), _sha(content))
    return arrays, remote


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data folders: HOME and GRADLEARN_DATA point into tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GRADLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRADLEARN_DATA_URL", raising=False)
    return tmp_path


def test_mnist_downloads_verifies_and_loads(server, isolated, monkeypatch):
    root, url = server
    (root / "mnist").mkdir()
    arrays, remote = _mnist_like_files(root / "mnist")
    monkeypatch.setattr(datasets, "_MNIST_FILES", remote)
    monkeypatch.setenv("GRADLEARN_DATA_URL", url)  # files come from <url>/mnist/<name>
    train, test = mnist(timeout=5, progress=False)
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_allclose(test.x[:, 0] * 255, arrays["t10k-images-idx3-ubyte.gz"], atol=1e-4)
    assert _leftovers(isolated / "data" / "mnist") == sorted(arrays)
    # a second call reads the local copy: the server is not needed any more
    monkeypatch.setenv("GRADLEARN_DATA_URL", _closed_port_url())
    np.testing.assert_array_equal(mnist(progress=False)[0].y, train.y)


def test_mnist_download_with_wrong_digest_fails_cleanly(server, isolated):
    root, url = server
    _mnist_like_files(root)  # real MNIST digests in the table will not match these
    with pytest.raises(DataError) as info:
        mnist(base_url=url, timeout=5, progress=False)
    message = str(info.value)
    assert "SHA-256 mismatch" in message or "wrong size" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert _leftovers(isolated / "data" / "mnist") == []


def test_offline_and_absent_says_where_and_how(isolated, monkeypatch):
    monkeypatch.setenv("GRADLEARN_DATA_URL", _closed_port_url())
    with pytest.raises(DataError) as info:
        mnist(timeout=5, progress=False)
    message = str(info.value)
    assert str(isolated / "data" / "mnist") in message and str(isolated / "home" / ".cache" / "gradlearn" / "mnist") in message
    assert "cannot download" in message and "train-images-idx3-ubyte.gz" in message and "GRADLEARN_DATA" in message

    monkeypatch.setattr(datasets, "FASHION_MNIST_DEBIAN_DIR", isolated / "usr-share-datasets" / "fashion-mnist")
    with pytest.raises(DataError) as info:
        datasets.fashion_mnist(timeout=5, progress=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    for folder in (isolated / "data" / "fashion-mnist", isolated / "home" / ".cache" / "gradlearn" / "fashion-mnist", isolated / "usr-share-datasets" / "fashion-mnist"):
        assert str(folder) in message


def test_download_false_does_not_touch_the_network(isolated):
    with pytest.raises(DataError, match=r"Downloading is off \(download=False\)"):
        mnist(download=False)
