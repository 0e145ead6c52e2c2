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
