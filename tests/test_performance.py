"""Steady-state training steps allocate nothing that outlives the step.

Every module reuses its internal scratch (im2col columns, padded copies) across calls and
returns fresh arrays only to its caller, so once warm a training step of LeNet-5 (W2 of
benchmarks/throughput.py) must leave the traced memory where it found it. A module that
kept a new buffer per step (a growing cache, scratch re-made instead of reused and kept)
makes the net growth of a step at least that buffer's size and fails the test.
"""

import tracemalloc

import numpy as np

import gradlearn as gl


def _lenet_step():
    rng = np.random.default_rng(0)
    model = gl.models.lenet5(generator=rng)
    loss = gl.CrossEntropyLoss()
    opt = gl.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = rng.standard_normal((32, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 32)

    def step():
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()

    return step, model


def _net_growth(step, steps=2):
    """Bytes of traced memory still held after ``steps`` steps, and the largest new block."""
    before = tracemalloc.take_snapshot()
    for _ in range(steps):
        step()
    after = tracemalloc.take_snapshot()
    diffs = after.compare_to(before, "traceback")
    growth = sum(d.size_diff for d in diffs)
    largest = max((d.size_diff for d in diffs), default=0)
    return growth, largest


def test_steady_state_step_keeps_no_new_arrays():
    # starts with the workers idle (conftest), as a LeNet-5 run does: no layer of it splits
    step, model = _lenet_step()
    for _ in range(3):  # warm-up: scratch buffers and caches are made here
        step()
    tracemalloc.start(1)
    try:
        step()  # one traced step so that the last forward's cached activations exist in both snapshots
        growth, largest = _net_growth(step)
        # a leaked per-step activation of the first conv (32x6x28x28 float32) is 600 kB
        assert largest < 64 * 1024, f"a step left a new block of {largest} bytes"
        assert growth < 64 * 1024, f"two steady-state steps grew traced memory by {growth} bytes"
        _, peak_a = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        step()
        _, peak_b = tracemalloc.get_traced_memory()
        assert peak_b <= peak_a * 1.05 + 64 * 1024, f"step peak grew from {peak_a} to {peak_b} bytes"
    finally:
        tracemalloc.stop()


def test_the_check_detects_a_leaking_module():
    """The measurement above can fail: a step that keeps one new array per call is caught."""
    step, model = _lenet_step()
    kept = []

    def leaky():
        step()
        kept.append(np.zeros((32, 6, 28, 28), np.float32) + 1)  # a new array (np.empty + 0 added to garbage, NaN at times, and warned)

    for _ in range(3):
        leaky()
    tracemalloc.start(1)
    try:
        leaky()
        growth, largest = _net_growth(leaky)
    finally:
        tracemalloc.stop()
    assert growth > 2 * 32 * 6 * 28 * 28 * 4 * 0.9 and largest > 64 * 1024
