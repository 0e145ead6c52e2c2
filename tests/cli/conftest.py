"""Helpers for the command-line tests: run ``python -m gradlearn ...`` as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("sklearn", reason="the CLI tests train on scikit-learn's digits")

# the tiny run every run-folder test starts from: digits, a small convnet, 2 short epochs
TINY = ["--data", "digits", "--model", "convnet", "--epochs", "2", "--batch-size", "64"]
PLOTS = ("learning_curves.png", "filters.png", "confusion_matrix.png", "activations.png")


def gradlearn(*args, cwd=None, env=None, timeout=180):
    """Run ``python -m gradlearn ARGS``; returns the CompletedProcess (text stdout/stderr)."""
    full_env = dict(os.environ)
    full_env.setdefault("OPENBLAS_NUM_THREADS", "1")  # several test processes share the cores
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gradlearn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)  # fmt: skip


def assert_user_error(result, *fragments, code=(1, 2)):
    """A clean failure: non-zero exit status, the fragments in stderr, no traceback."""
    codes = code if isinstance(code, tuple) else (code,)
    assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished tiny run folder (do not modify it: copy it first)."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = gradlearn("train", *TINY, "--out", folder)
    assert result.returncode == 0, result.stderr
    return folder, result
