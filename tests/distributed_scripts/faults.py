"""Fault injection for data-parallel training: ``faults.py MODE CHECKPOINT [FAULT_STEP]``.

MODE: ``raise`` (rank 1 raises at step FAULT_STEP), ``kill`` (rank 1 SIGKILLs itself there),
``hang`` (like kill, with ``DataParallel(timeout=3)``: for a launcher that does not clean up),
``none`` (no fault). Training: 10 steps of SGD on a small float64 MLP, global batch 16;
after every step rank 0 alone writes CHECKPOINT (atomically; the global step in ``extra``).
When CHECKPOINT exists at the start, every rank resumes from it — with any number of ranks,
since the global batches do not depend on it. At the end rank 0 prints ``FINAL <json>``.
"""

import json
import os
import signal
import sys

import numpy as np

import gradlearn as gl
import gradlearn.distributed as dist

STEPS = 10
GLOBAL_BATCH = 16
N, D, CLASSES = 64, 5, 3


def main():
    mode, path = sys.argv[1], sys.argv[2]
    fault_step = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    dp = dist.DataParallel(timeout=3.0 if mode == "hang" else None)
    gl.manual_seed(11)
    model = gl.Sequential(gl.Linear(D, 12, dtype=np.float64), gl.Tanh(), gl.Linear(12, CLASSES, dtype=np.float64))
    optimizer = gl.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = gl.CrossEntropyLoss()
    start = 0
    if os.path.exists(path):
        start = int(gl.load_checkpoint(path, model, optimizer).extra["global_step"])
    dp.before_training(model)
    data = np.random.default_rng(5)
    x, y = data.standard_normal((N, D)), data.integers(0, CLASSES, N)
    sampler = dist.DistributedSampler(N, GLOBAL_BATCH // dp.size, seed=1, drop_last=True)
    per_epoch = len(sampler)
    for step in range(start, STEPS):
        sampler.set_epoch(step // per_epoch)
        index = list(sampler.global_batches())[step % per_epoch]
        xb, yb = dp.shard(x[index], y[index])
        if step == fault_step and dp.rank == 1:
            if mode == "raise":
                raise ValueError(f"injected failure at step {step}")
            if mode in ("kill", "hang"):
                os.kill(os.getpid(), signal.SIGKILL)
        model.zero_grad()
        loss_fn(model(xb), yb)
        dp.backward(model, loss_fn.backward())
        optimizer.step()
        if dp.is_main:
            gl.save_checkpoint(path, model, optimizer, extra={"global_step": step + 1})
    if dp.is_main:
        print("FINAL " + json.dumps({"start": start, "size": dp.size,
                                     "weights": model.flat_parameters().data.tolist()}), flush=True)


if __name__ == "__main__":
    dist.run_distributed(main)
