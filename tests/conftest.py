import numpy as np
import pytest


def assert_close(actual, expected, rtol, what=""):
    """Norm-wise closeness: max |a - e| <= rtol * max |e| (plus a tiny floor for all-zero arrays)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    scale = float(np.max(np.abs(expected), initial=0.0))
    assert error <= rtol * scale + 1e-300, f"{what}: max abs error {error:.3e} > {rtol:g} x scale {scale:.3e}"


def to_channels_last(a):
    """The values of ``a`` (N, C, H, W), held channels-last in memory (as (N, H, W, C))."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def needs_compiled():
    """Skip the calling test where gradlearn's compiled kernels are not available."""
    from gradlearn import compiled

    if not compiled.available():
        pytest.skip("the compiled kernels are not built (no C compiler at install), or GRADLEARN_COMPILED=0")


@pytest.fixture
def kernel_calls(monkeypatch):
    """The names the test's code asks ``gradlearn.compiled.kernel`` for, in order (which
    compiled kernels really ran)."""
    from gradlearn import compiled

    calls, kernel = [], compiled.kernel
    monkeypatch.setattr(compiled, "kernel", lambda name: calls.append(name) or kernel(name))
    return calls


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def workers_idle(monkeypatch):
    """Every test starts with gradlearn.parallel's workers idle, so that whether a layer
    follows them onto the cores (a timing-based choice) never carries over from the test
    before."""
    from gradlearn import parallel

    monkeypatch.setattr(parallel, "_last_section", -1e9)
