"""gradlearn.blas.add_product: out += op(a) @ op(b) in place, through NumPy's BLAS where it
can, else through NumPy, with the same result either way."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import blas

from .conftest import assert_close


@pytest.fixture
def gemm_calls(monkeypatch):
    """How many products went to BLAS itself (skips where NumPy's BLAS is not one it knows)."""
    if not blas.available():
        pytest.skip("NumPy's BLAS is not an OpenBLAS threadpoolctl finds: add_product always takes NumPy's path")
    calls = []
    monkeypatch.setattr(blas, "_gemm", {dtype: (lambda *args, f=f: calls.append(args) or f(*args)) for dtype, f in blas._find_gemm().items()})
    monkeypatch.setattr(blas, "MIN_OUT", 0)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_add_product_adds_the_product_by_blas(gemm_calls, rng, dtype, trans_a, trans_b):
    m, k, n = 7, 5, 6
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = rng.standard_normal((m, n)).astype(dtype)
    expected = out + (a.T if trans_a else a) @ (b.T if trans_b else b)
    assert blas.add_product(out, a, b, trans_a, trans_b) is out
    assert len(gemm_calls) == 1
    assert_close(out, expected, 1e-6 if dtype == np.float32 else 1e-14)


def test_column_slices_go_to_blas_with_their_row_stride(gemm_calls, rng):
    """As Linear's split weight gradient calls it: rows of out, columns of dE/dy."""
    grad_output = rng.standard_normal((9, 8)).astype(np.float32)
    x = rng.standard_normal((9, 5)).astype(np.float32)
    grad_w = np.zeros((8, 5), np.float32)
    blas.add_product(grad_w[2:6], grad_output[:, 2:6], x, trans_a=True)
    assert len(gemm_calls) == 1
    expected = np.zeros((8, 5))
    expected[2:6] = grad_output[:, 2:6].T.astype(np.float64) @ x
    assert_close(grad_w, expected, 1e-6)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_column_major_operands_go_to_blas_transposed(gemm_calls, rng, trans_a, trans_b):
    a = np.asfortranarray(rng.standard_normal((4, 6) if trans_a else (6, 4))).astype(np.float32, order="F")
    b = np.asfortranarray(rng.standard_normal((5, 4) if trans_b else (4, 5))).astype(np.float32, order="F")
    out = np.zeros((6, 5), np.float32)
    blas.add_product(out, a, b, trans_a, trans_b)
    assert len(gemm_calls) == 1
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    assert_close(out, expected, 1e-6)


def test_layouts_blas_cannot_take_and_overlaps_take_numpys_path(gemm_calls, rng):
    a = rng.standard_normal((6, 6)).astype(np.float32)
    out = np.ones((6, 3), np.float32)
    blas.add_product(out, a, a[:, ::2])  # columns not adjacent
    assert_close(out, 1 + a @ a[:, ::2], 1e-6)
    square = rng.standard_normal((4, 4)).astype(np.float32)
    expected = square + square @ square
    blas.add_product(square, square, square)  # out is an operand: NumPy makes the product first
    assert_close(square, expected, 1e-6)
    assert gemm_calls == []


def test_small_products_and_a_missing_blas_take_numpys_path(monkeypatch, rng):
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    out = np.zeros((3, 2), np.float32)
    monkeypatch.setattr(blas, "_gemm", {})
    monkeypatch.setattr(blas, "MIN_OUT", 0)
    assert not blas.available()
    blas.add_product(out, a, b)
    blas.add_product(out, a, b)
    assert_close(out, 2 * (a @ b), 1e-6)


def test_add_product_names_what_does_not_fit(monkeypatch):
    a, b = np.zeros((3, 4), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="operands could not be broadcast|mismatch"):  # small: NumPy's own error
        blas.add_product(np.zeros((2, 3), np.float32), a.T, b)
    monkeypatch.setattr(blas, "MIN_OUT", 0)
    with pytest.raises(ValueError, match=r"op\(a\) \(3, 4\) @ op\(b\) \(4, 2\) does not fit out \(2, 3\)"):
        blas.add_product(np.zeros((2, 3), np.float32), a, b)
    with pytest.raises(ValueError, match="expected one dtype, got out float64, a float32, b float32"):
        blas.add_product(np.zeros((3, 2)), a, b)
    with pytest.raises(ValueError, match="expected three 2-D NumPy arrays"):
        blas.add_product(np.zeros(6, np.float32), a, b)


def test_linear_adds_its_weight_gradient_by_blas(gemm_calls, rng):
    """Two backward passes accumulate, as PyTorch's .grad does."""
    layer = gl.Linear(5, 4, generator=np.random.default_rng(0))
    x = rng.standard_normal((3, 5)).astype(np.float32)
    grad_output = rng.standard_normal((3, 4)).astype(np.float32)
    for _ in range(2):
        layer(x)
        layer.backward(grad_output)
    assert len(gemm_calls) == 2
    assert_close(layer.weight.grad, 2 * grad_output.T.astype(np.float64) @ x, 1e-6)
