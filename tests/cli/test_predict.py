"""``gradlearn predict``: classes and probabilities for .npy and PNG files."""

import re

import numpy as np
import pytest

from .conftest import assert_user_error, gradlearn


def _digit(index):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[index] / 16.0, int(bunch.target[index])


def test_help():
    result = gradlearn("predict", "--help")
    assert result.returncode == 0
    assert "FILE" in result.stdout and ".npy" in result.stdout


def test_predict_npy_and_png(trained_run, tmp_path):
    pil = pytest.importorskip("PIL.Image", reason="PNG input needs Pillow")
    folder, _ = trained_run
    files = []
    for index in (0, 1, 2, 4):  # an 8x8 float array in [0, 1]
        image, label = _digit(index)
        np.save(tmp_path / f"digit{label}.npy", image.astype(np.float32))
        files.append((tmp_path / f"digit{label}.npy", label))
    image, label = _digit(7)  # a 24x24 RGB PNG: converted to grey and resized to 8x8
    big = np.kron(image, np.ones((3, 3)))
    pil.fromarray((255 * big).astype(np.uint8)).convert("RGB").save(tmp_path / "seven.png")
    files.append((tmp_path / "seven.png", label))
    result = gradlearn("predict", folder, *[f for f, _ in files], "--top", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(files)
    correct = 0
    for line, (path, label) in zip(lines, files):
        match = re.match(rf"{re.escape(str(path))}\s+(\d)\s+\((\d+\.\d)%\)\s+next: (\d) \((\d+\.\d)%\)", line)
        assert match, line
        first, p_first, second, p_second = match.groups()
        assert 0 < float(p_second) <= float(p_first) <= 100
        correct += int(first) == label
    assert correct >= 3, result.stdout  # a weak model (two short epochs), far above chance (10%)


def test_predict_errors(trained_run, tmp_path):
    folder, _ = trained_run
    assert_user_error(gradlearn("predict", folder, tmp_path / "none.npy"), "no such file")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert_user_error(gradlearn("predict", folder, tmp_path / "junk.png"), "junk.png")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5)))
    assert_user_error(gradlearn("predict", folder, tmp_path / "cube.npy"), "expected one image")
    assert_user_error(gradlearn("predict", tmp_path / "nowhere", tmp_path / "cube.npy"), "no run folder")
