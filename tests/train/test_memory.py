"""Memory: 20 epochs of training do not grow the per-epoch peak after the first epoch (+5% at most).

tracemalloc sees NumPy's array allocations. The peak of each epoch is reset at its start
and read after every other callback has run at its end. From the second epoch on, the
Checkpoint callback holds one staged checkpoint (its bytes, awaiting the next batch's loss)
through the first step of each epoch, and EarlyStopping holds the best weights: fixed
costs, bounded here by twice the checkpoint file's size. From then on the peak must stay
within 5% of the second epoch's for the 19 epochs left, and the memory held between
epochs must not creep. The garbage collector runs at
each epoch start, so the measure is what training keeps, not when the collector happens
to run (``Module.named_modules`` leaves small reference cycles for it).
"""

import gc
import os
import tracemalloc

import numpy as np

import gradlearn as gl


def test_peak_memory_is_flat_over_20_epochs(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 32)).astype(np.float32)
    y = rng.integers(0, 4, 512)
    model = gl.Sequential(gl.Linear(32, 256, generator=rng), gl.ReLU(), gl.Dropout(0.2, generator=rng),
                          gl.Linear(256, 4, generator=rng))
    optimizer = gl.Adam(model.parameters(), lr=1e-3)
    peaks, held = [], []

    class Meter(gl.Callback):
        priority = 1000  # after every other callback, so their end-of-epoch work counts

        def on_epoch_begin(self, epoch, logs=None):
            gc.collect()
            tracemalloc.reset_peak()

        def on_epoch_end(self, epoch, logs=None):
            current, peak = tracemalloc.get_traced_memory()
            peaks.append(peak)
            held.append(current)

    callbacks = [Meter(), gl.DivergenceGuard(), gl.EarlyStopping("val_loss", patience=100),
                 gl.CSVLogger(tmp_path / "log.csv"), gl.Checkpoint(tmp_path / "ckpt", every=1, keep=1)]
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, batch_size=256, callbacks=callbacks)
    tracemalloc.start()
    try:
        trainer.fit((x, y), epochs=20, validation_data=(x[:256], y[:256]), verbose=0)
    finally:
        tracemalloc.stop()
    assert len(peaks) == 20
    kib = [p // 1024 for p in peaks]
    # one-time costs that start at the end of the first epoch: the staged checkpoint, and
    # the best weights EarlyStopping keeps (both about the size of the model + optimizer)
    staged = os.path.getsize(gl.latest_checkpoint(tmp_path / "ckpt"))
    assert peaks[1] - peaks[0] <= 2 * staged, kib
    assert max(peaks[1:]) <= 1.05 * peaks[1], kib  # then no growth at all
    assert held[-1] - held[1] < 32 * 1024, [h // 1024 for h in held]  # no creeping allocation
