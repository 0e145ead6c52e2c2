import importlib.util
import os
import shutil
import sys

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


def mpiexec():
    """The path of ``mpiexec`` (the one beside this Python first, as pip's mpich installs
    it); skips the test, saying why, without mpi4py or an mpiexec."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'gradlearn[distributed]')")
    for path in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec")):
        if path and os.path.exists(path):
            return path
    pytest.skip("no mpiexec on this machine (pip install mpich, or a system MPI)")


def mpi_env():
    """The environment for ranks started by ``mpiexec``: one BLAS thread each, no rank
    variables inherited from an enclosing MPI job, and Open MPI's consent to run as root
    (it refuses otherwise, as on a container's root account; MPICH ignores the variables)."""
    import gradlearn.distributed as dist

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for var in dist._RANK_VARIABLES + dist._SIZE_VARIABLES:
        env.pop(var, None)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env
