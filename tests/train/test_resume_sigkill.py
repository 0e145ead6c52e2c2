"""Acceptance: a run killed with SIGKILL mid-epoch and resumed in a new process ends bit-identical.

A small script trains an MLP with Dropout (masks drawn from the modules' own generators),
shuffling on, Adam with a StepLR schedule, EarlyStopping (stateful) and a Checkpoint every
3 steps. In one process it runs uninterrupted; in another it SIGKILLs itself after global
step 23 (epoch 3, batch 4 of 10: mid-epoch, two steps after the last checkpoint at step 21);
a third process resumes from the checkpoint directory and finishes. The final parameters,
the optimizer state and the History (everything but timings) must be equal, bit for bit.
Once with array data (the Trainer shuffles), once with a prefetching DataLoader.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import gradlearn as gl

SCRIPT = r'''
import json, os, signal, sys
import numpy as np
import gradlearn as gl

mode, data_kind, directory, out = sys.argv[1:5]
KILL_AT = 23

gl.manual_seed(123)  # the Dropout modules spawn their generators from the default one
data_rng = np.random.default_rng(0)
x = data_rng.standard_normal((300, 4)).astype(np.float32)
y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(np.int64)
init = np.random.default_rng(7)
model = gl.Sequential(
    gl.Linear(4, 32, generator=init), gl.ReLU(), gl.Dropout(0.3),
    gl.Linear(32, 16, generator=init), gl.Tanh(), gl.Dropout(0.2),
    gl.Linear(16, 2, generator=init),
)
optimizer = gl.Adam(model.parameters(), lr=0.01)
schedule = gl.StepLR(optimizer, step_size=2, gamma=0.5)


class Killer(gl.Callback):
    def on_batch_end(self, step, logs):
        if mode == "killed" and self.trainer.global_step == KILL_AT:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


callbacks = [gl.Checkpoint(directory, every_steps=3, keep=2), Killer(), gl.EarlyStopping("loss", patience=100)]
trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, callbacks=callbacks, schedule=schedule,
                     batch_size=32, seed=5)
if data_kind == "arrays":
    train = (x, y)
else:
    train = gl.data.DataLoader((x, y), batch_size=32, generator=np.random.default_rng(11), prefetch=2)
if mode == "resume":
    loaded = trainer.resume(directory)
    print("resumed from", loaded, "at epoch", trainer.epoch, "step", trainer.step)
history = trainer.fit(train, epochs=4, validation_data=(x[:64], y[:64]), verbose=0)
opt_state = optimizer.state_dict()
np.savez(out, params=model.flat_parameters().data, exp_avg=opt_state["exp_avg"], exp_avg_sq=opt_state["exp_avg_sq"])
with open(out + ".json", "w") as f:
    json.dump({"history": {k: v for k, v in history.history.items() if k not in ("time", "samples_per_sec")},
               "epochs": history.epoch, "adam_step": opt_state["step"], "global_step": trainer.global_step}, f)
'''


def _run(script, *args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def _result(out):
    with np.load(str(out) + ".npz", allow_pickle=False) as arrays:
        arrays = {k: arrays[k] for k in arrays.files}
    with open(str(out) + ".json") as f:
        return arrays, json.load(f)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("data_kind", ["arrays", "loader"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, data_kind):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)

    full = _run(script, "full", data_kind, tmp_path / "full", tmp_path / "full_out")
    assert full.returncode == 0, full.stderr

    killed = _run(script, "killed", data_kind, tmp_path / "run", tmp_path / "unused")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    names = sorted(os.listdir(tmp_path / "run"))
    # keep=2: the checkpoints of steps 18 and 21 survive; step 21 is epoch 3, batch 2 (mid-epoch)
    assert names == ["ckpt-0000000018.safetensors", "ckpt-0000000021.safetensors"], names
    state = gl.read_checkpoint(tmp_path / "run" / names[-1]).extra
    assert (state["epoch"], state["step"], state["global_step"]) == (2, 1, 21)

    resumed = _run(script, "resume", data_kind, tmp_path / "run", tmp_path / "resumed_out")
    assert resumed.returncode == 0, resumed.stderr
    assert "at epoch 2 step 1" in resumed.stdout, resumed.stdout

    (full_arrays, full_info), (res_arrays, res_info) = _result(tmp_path / "full_out"), _result(tmp_path / "resumed_out")
    for key in ("params", "exp_avg", "exp_avg_sq"):
        assert np.array_equal(full_arrays[key], res_arrays[key]), f"{key} differs after resume"
    assert full_info == res_info
    assert full_info["global_step"] == 40 and len(full_info["epochs"]) == 4
    # the run did learn something, so equality is not that of two untouched models
    assert full_info["history"]["loss"][-1] < full_info["history"]["loss"][0]
