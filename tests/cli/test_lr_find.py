"""``gradlearn lr-find``: the halving search and the range test, plots written to --out."""

import re

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("lr-find", "--help")
    assert result.returncode == 0
    assert "--out" in result.stdout and "halv" in result.stdout


def test_writes_both_plots(tmp_path):
    result = gradlearn("lr-find", "--data", "digits", "--model", "convnet", "--steps", "40", "--out", tmp_path / "lr")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("lr_halving.png", "lr_range_test.png"):
        path = tmp_path / "lr" / name
        assert path.stat().st_size > 5000
        assert path.read_bytes()[:4] == b"\x89PNG"
    suggestions = re.findall(r"suggested learning rate: (\S+)", result.stdout)
    assert len(suggestions) == 2
    assert all(1e-5 <= float(s) <= 10 for s in suggestions)


def test_errors(tmp_path):
    result = gradlearn("lr-find", "--data", "digits", "--start-lr", "1", "--end-lr", "0.1", "--out", tmp_path)
    assert_user_error(result, "--start-lr", code=2)
