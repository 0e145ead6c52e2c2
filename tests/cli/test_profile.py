"""``gradlearn profile``: per-layer forward/backward times, slowest first."""

import re

import pytest

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("profile", "--help")
    assert result.returncode == 0
    assert "--input-shape" in result.stdout and "--batch-size" in result.stdout


def test_prints_a_table_sorted_by_time():
    result = gradlearn("profile", "lenet5", "--input-shape", "1,28,28", "--batch-size", "16", "--repeat", "2")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s*\d+\s+\S+", line)]
    assert len(rows) == 12, result.stdout
    totals = [float(line.split()[-2]) for line in rows]
    assert totals == sorted(totals, reverse=True)
    assert "slowest:" in result.stdout and "samples/s" in result.stdout
    assert any("Conv2d(6 -> 16, 5x5)" in row for row in rows)
    assert "compiled CPU kernels (gradlearn.compiled): " in result.stdout  # on or off, said either way


def test_says_when_the_compiled_kernels_are_off():
    result = gradlearn("profile", "mlp", "--batch-size", "4", "--repeat", "1", env={"GRADLEARN_COMPILED": "0"})
    assert result.returncode == 0, result.stderr
    assert "compiled CPU kernels (gradlearn.compiled): off" in result.stdout


def test_device_cuda_without_a_gpu_is_a_clear_error():
    try:
        from gradlearn.backend import cuda_module

        cuda_module()
        pytest.skip("a CUDA device is available here")
    except RuntimeError:
        pass
    assert_user_error(gradlearn("profile", "lenet5", "--device", "cuda"), "gradlearn profile: error:", "cuda")


def test_errors():
    assert_user_error(gradlearn("profile", "lenet5", "--input-shape", "1,28"), "gradlearn profile: error:", "C,H,W")
    assert_user_error(gradlearn("profile", "lenet5", "--batch-size", "0"), "--batch-size", code=2)
