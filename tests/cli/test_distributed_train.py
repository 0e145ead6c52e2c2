"""`mpiexec -n 2 gradlearn train --distributed`: rank 0 alone writes the run folder, and the
result equals a one-process run with the same global batch."""

import json
import subprocess
import sys

import numpy as np

from ..conftest import mpi_env, mpiexec


def test_distributed_train_matches_one_process(tmp_path):
    launcher = mpiexec()
    options = ["--data", "digits", "--model", "convnet", "--epochs", "2", "--batch-size", "32", "--seed", "3"]
    two = subprocess.run([launcher, "-n", "2", sys.executable, "-m", "gradlearn", "train", *options, "--distributed",
                          "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=240, env=mpi_env())
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("Test: loss") == 1  # rank 0 alone prints
    one = subprocess.run([sys.executable, "-m", "gradlearn", "train", *options, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=240, env=mpi_env())
    assert one.returncode == 0, one.stderr
    from safetensors.numpy import load_file

    w2, w1 = load_file(tmp_path / "two" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert w2.keys() == w1.keys()
    for key in w1:  # float32 sums in another order: equal to rounding
        np.testing.assert_allclose(w2[key], w1[key], rtol=1e-3, atol=1e-5, err_msg=key)
    m2, m1 = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("two", "one"))
    assert abs(m2["test"]["accuracy"] - m1["test"]["accuracy"]) <= 0.01
