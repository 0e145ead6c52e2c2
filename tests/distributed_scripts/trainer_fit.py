"""Trainer(distributed=True) on every rank vs Trainer on one process, same global batch.

Run under ``mpiexec -n 2 python -m gradlearn.distributed trainer_fit.py``; rank 0 prints
``RESULT {...}`` with the largest relative difference of the final parameters from a
single-process fit that this script also runs (on rank 0, without MPI collectives).
"""

import json
import os
import tempfile

import numpy as np

import gradlearn as gl
import gradlearn.distributed as dist


def build(seed):
    gl.manual_seed(seed)
    model = gl.Sequential(gl.Linear(4, 16, dtype=np.float64), gl.Tanh(), gl.Linear(16, 3, dtype=np.float64))
    optimizer = gl.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


rng = np.random.default_rng(0)
x = rng.standard_normal((70, 4))
y = rng.integers(0, 3, 70)

# every rank starts from a different initialisation: the broadcast must make them agree
model, optimizer = build(seed=dist.rank())
out = tempfile.mkdtemp() if dist.is_main() else None
callbacks = [gl.Checkpoint(out, every=1)] if dist.is_main() else []
trainer = gl.Trainer(model, "cross_entropy", optimizer, batch_size=16, seed=3, distributed=True, callbacks=callbacks)
history = trainer.fit((x, y), epochs=4, verbose=0)
final = model.flat_parameters().data
rank0 = np.frombuffer(dist.broadcast_bytes(final.tobytes() if dist.is_main() else None), dtype=np.float64)
disagreement = dist.allreduce_mean(float(np.abs(final - rank0).max()))  # > 0 unless every rank ends equal

if dist.is_main():
    reference, ref_optimizer = build(seed=0)
    ref = gl.Trainer(reference, "cross_entropy", ref_optimizer, batch_size=16, seed=3)
    ref_history = ref.fit((x, y), epochs=4, verbose=0)
    ours, theirs = model.flat_parameters().data, reference.flat_parameters().data
    result = {
        "size": dist.size(),
        "params": float(np.abs(ours - theirs).max() / np.abs(theirs).max()),
        "loss": float(abs(history.history["loss"][-1] - ref_history.history["loss"][-1])),
        "checkpoints": len(os.listdir(out)),
        "ranks_disagree": disagreement,
    }
    print("RESULT " + json.dumps(result), flush=True)
