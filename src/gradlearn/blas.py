"""``out += op(a) @ op(b)`` in place, by one GEMM with beta = 1 on NumPy's own BLAS.

NumPy has no accumulating matrix product: ``grad += a.T @ b`` makes a product array, which
OpenBLAS first fills with zeros (its beta = 0 pass), then adds it to ``grad`` in a second
pass. For a weight gradient that is three extra passes over an array of the weight's size.
Called as a GEMM with beta = 1, BLAS adds the product into ``grad`` as it computes it:
an MLP's 784 -> 512 weight gradient at batch 128 took 0.53-0.58 ms against 1.03-1.13 ms
(2-core CPU, OpenBLAS 0.3.31), with the same bits there. The call costs about 30 us more from
Python than NumPy's, so it pays only for large ``out`` (MIN_OUT): 512 x 512 0.84 -> 0.69 ms,
a 4096 -> 256 layer's 2.3 -> 1.4 ms; 120 x 400 was level, 10 x 512 lost 31 us.

The GEMM is the BLAS library NumPy loaded, found through threadpoolctl (which
``gradlearn.parallel`` uses already): OpenBLAS under its usual symbol names
(``cblas_sgemm``, and NumPy's wheels' ``scipy_cblas_sgemm64_`` with 64-bit integers).
Where it is not found (another BLAS, no threadpoolctl), or for arrays it cannot take
(a small ``out``, an operand with neither its rows nor its columns adjacent, ``out``
overlapping an operand), ``add_product`` does ``out += op(a) @ op(b)`` with NumPy: the
same result up to float rounding.
"""

from __future__ import annotations

import ctypes

import numpy as np

MIN_OUT = 1 << 16  # elements of out below which the call (about 30 us from Python) costs more than the passes it saves

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_gemm = None  # {dtype: ctypes function} once looked up; {} when there is none


def _find_gemm():
    global _gemm
    if _gemm is None:
        _gemm = {}
        try:
            from threadpoolctl import ThreadpoolController

            libraries = [c.dynlib for c in ThreadpoolController().select(internal_api="openblas").lib_controllers]
        except Exception:  # not installed, or a BLAS it cannot read
            libraries = []
        for library in libraries[:1]:
            for prefix, suffix, integer in (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64),
                                            ("scipy_", "", ctypes.c_int), ("", "", ctypes.c_int)):
                functions = {}
                for dtype, letter, scalar in ((np.float32, "s", ctypes.c_float), (np.float64, "d", ctypes.c_double)):
                    function = getattr(library, f"{prefix}cblas_{letter}gemm{suffix}", None)
                    if function is not None:
                        i, p = integer, ctypes.c_void_p
                        function.argtypes = [i, i, i, i, i, i, scalar, p, i, p, i, scalar, p, i]
                        function.restype = None
                        functions[np.dtype(dtype)] = function
                if len(functions) == 2:
                    _gemm = functions
                    break
    return _gemm


def available() -> bool:
    """Whether ``add_product`` can call BLAS itself (else it always takes NumPy's path)."""
    return bool(_find_gemm())


def _rows(m):
    """(row stride in elements, or None when BLAS cannot take m: its columns must be adjacent)."""
    item = m.itemsize
    if m.ndim != 2 or m.strides[1] != item or m.strides[0] % item or m.strides[0] < max(1, m.shape[1]) * item:
        return None
    return m.strides[0] // item


def _operand(m, trans):
    """(array, trans, row stride) for BLAS: m itself, or, when its rows are adjacent instead
    (column-major, or a transposed view), m.T with the opposite trans; None when neither."""
    rows = _rows(m)
    if rows is not None:
        return m, trans, rows
    rows = _rows(m.T)
    return None if rows is None else (m.T, not trans, rows)


def add_product(out, a, b, trans_a: bool = False, trans_b: bool = False):
    """out (M, N) += op(a) (M, K) @ op(b) (K, N), where op(m) is m.T when asked; returns out.

    2-D NumPy arrays of one float dtype. ``out`` may be a view whose rows are evenly spaced
    (rows of a larger array) as long as its columns are adjacent, or column-major (a
    transposed parameter's gradient: then ``out.T += op(b).T @ op(a).T``); ``a`` and ``b``
    likewise (a column slice, say), or column-major (passed to BLAS transposed). A small
    ``out`` goes straight to NumPy, whose own errors name shapes that do not fit: these
    checks cost 3 us, a tenth of a tiny MLP layer's backward."""
    if getattr(out, "size", MIN_OUT) < MIN_OUT:
        out += (a.T if trans_a else a) @ (b.T if trans_b else b)
        return out
    if not (type(out) is type(a) is type(b) is np.ndarray and out.ndim == a.ndim == b.ndim == 2):
        raise ValueError(f"add_product: expected three 2-D NumPy arrays, got {[getattr(m, 'shape', type(m).__name__) for m in (out, a, b)]}")
    m, k = a.shape[::-1] if trans_a else a.shape
    k_b, n = b.shape[::-1] if trans_b else b.shape
    if k != k_b or out.shape != (m, n):
        raise ValueError(f"add_product: op(a) {(m, k)} @ op(b) {(k_b, n)} does not fit out {out.shape}")
    if not out.dtype == a.dtype == b.dtype:
        raise ValueError(f"add_product: expected one dtype, got out {out.dtype}, a {a.dtype}, b {b.dtype}")
    gemm = _find_gemm().get(out.dtype)
    if gemm is not None and _rows(out) is None and _rows(out.T) is not None:
        # a column-major out (a transposed parameter's gradient): out.T += op(b).T @ op(a).T
        add_product(out.T, b, a, trans_a=not trans_b, trans_b=not trans_a)
        return out
    if gemm is not None:
        left, right, ldc = _operand(a, trans_a), _operand(b, trans_b), _rows(out)
        if None not in (left, right, ldc) and not (np.may_share_memory(out, a) or np.may_share_memory(out, b)):
            (a_, ta, lda), (b_, tb, ldb) = left, right
            gemm(_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k,
                 1.0, a_.ctypes.data, lda, b_.ctypes.data, ldb, 1.0, out.ctypes.data, ldc)
            return out
    out += (a.T if trans_a else a) @ (b.T if trans_b else b)  # NumPy copes with overlap: it makes the product first
    return out
