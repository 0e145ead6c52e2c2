"""Training and inference throughput of gradlearn against PyTorch on the CPU, interleaved.

    python benchmarks/throughput.py [--workloads W1,W4] [--repeats 7] [--both-envs]
                                    [--device cuda] [--batch-size 256] [--settle 0.2]

Workloads (float32): W1 MLP 784-512-512-10 (batch 128), W2 LeNet-5 (128), W3 a 4-conv
CNN on 3x32x32 (64), W4 a tiny 2-64-64-2 tanh MLP (32; per-step overhead), W5 ResNet-20
(64). A training step is forward, cross-entropy, backward, SGD-momentum step, zero_grad.

The machine may be shared, so each repetition times gradlearn then PyTorch back to back
(alternating) and the ratio is taken of the medians. Each timed block starts after a
pause of ``--settle`` seconds, so that the other side's idle BLAS or OpenMP threads,
which spin for a while after their work, have stopped (see ``measure``). PyTorch runs
with as many threads as gradlearn uses (``gradlearn.parallel.num_workers()``: OpenBLAS's
thread count, by default the cores; 2 on the 2-core machine of our figures; it was fixed
at 2, which on a 16-core machine pitted 2 threads against 16). Each workload's achieved
GFLOP/s (2 flops per multiply-add of ``gl.summary``; x3 for forward + the two backward
products, less the data input's gradient, which neither side computes) is shown as a
fraction of the NumPy float32 matmul peak (peak.py), timed after each of the workload's own
repetitions (the machine's speed moves within a run).
``--both-envs`` re-runs the whole measurement with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from the environment (that child process only).

``--device cuda`` runs both sides on the GPU (gradlearn through CuPy, PyTorch eager), each
timed block ended by a device synchronisation; without CuPy or a CUDA device it stops at
once saying which is missing. ``--batch-size`` overrides every workload's batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _workloads import (  # noqa: E402
    WORKLOADS, batch, gl_trainer, numpy_mlp_trainer, openblas_info, rerun_without_openblas_vars, torch_trainer, training_mult_adds,
)
from peak import MatmulProbe, peak_gflops  # noqa: E402


def gl_threads():
    """The threads gradlearn computes on: its workers and kernels' team, and BLAS's."""
    from gradlearn import parallel

    return parallel.num_workers()


def _no_sync():
    pass


_sync = _no_sync  # the device synchronisation that ends every timed block (GPU only)


SETTLE = 0.2  # seconds of pause before each timed block (see measure)


def _time(fn, steps, settle=0.0):
    _sync()
    if settle:
        time.sleep(settle)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync()
    return (time.perf_counter() - t) / steps


def _steps_for(fn, budget=0.25):
    """Enough steps per repetition to take about ``budget`` seconds."""
    t = _time(fn, 1)
    return max(1, min(2000, int(budget / max(t, 1e-6))))


def measure(name, repeats, torch_ok, budget=0.25, device="cpu", batch_size=None, settle=SETTLE, probe=None):
    """{'gl_train', 'torch_train', 'gl_infer', 'torch_infer'}: medians in samples/s (and
    'numpy_train' for W1 on the CPU at its own batch: the hand-written NumPy step of
    ``numpy_mlp_trainer``, timed in the same rotation); with a
    ``probe`` (peak.MatmulProbe), also 'peak': the median over these repetitions of the
    matmul probe timed after each repetition's blocks (the machine's peak at the moments the
    workload ran, as the other figures are medians of the same repetitions).

    Each timed block starts ``settle`` seconds after the previous one ended: OpenBLAS's
    idle threads spin for about 0.1 s after a threaded product (and OpenMP's for a while
    after a parallel region), so without the pause a block shares the cores with the
    other side's spinning threads."""
    import gradlearn as gl

    n = batch_size or WORKLOADS[name][2]
    sides = {}
    gl_step, gl_net = gl_trainer(name, device, batch_size)
    x_np, _ = batch(name, batch_size=batch_size)
    sides["gl_train"] = gl_step
    gl_eval = gl_net.copy().eval()
    x_gl = gl.backend.to_device(x_np, device)
    sides["gl_infer"] = lambda: gl_eval(x_gl)
    if torch_ok:
        import torch

        t_step, t_net = torch_trainer(name, device, batch_size)
        sides["torch_train"] = t_step
        t_eval = torch_trainer(name, device, batch_size)[1].eval()
        x_t = torch.from_numpy(x_np).to(device)

        def t_infer():
            with torch.no_grad():
                t_eval(x_t)

        sides["torch_infer"] = t_infer
    if name == "W1" and device == "cpu" and batch_size is None:
        sides["numpy_train"] = numpy_mlp_trainer()[0]
    for fn in sides.values():  # warm-up
        for _ in range(3):
            fn()
    steps = {k: _steps_for(fn, budget) for k, fn in sides.items()}
    rates = {k: [] for k in sides}
    peaks = []
    for _ in range(repeats):
        for kind in ("train", "infer"):  # alternate gradlearn / torch within each repetition
            for side in ("gl", "torch", "numpy"):
                key = f"{side}_{kind}"
                if key in sides:
                    rates[key].append(n / _time(sides[key], steps[key], settle))
        if probe is not None:
            time.sleep(settle)
            peaks.append(probe.probe())
    result = {k: statistics.median(v) for k, v in rates.items()}
    if peaks:
        result["peak"] = statistics.median(peaks)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.25, help="seconds per timed repetition and side")
    parser.add_argument("--settle", type=float, default=SETTLE, help="seconds of pause before each timed block (default 0.2)")
    parser.add_argument("--both-envs", action="store_true", help="also re-run with the OpenBLAS variables unset")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both sides run (default cpu)")
    parser.add_argument("--batch-size", type=int, default=None, help="override every workload's batch size")
    args = parser.parse_args(argv)
    global _sync
    if args.device == "cuda":
        import gradlearn as gl

        try:
            cupy = gl.backend.cuda_module()
        except RuntimeError as exc:
            print(f"throughput.py: --device cuda: {exc}", file=sys.stderr)
            return 2

        def _sync():  # noqa: F811 - both sides' queues drained before the clock is read
            cupy.cuda.Device().synchronize()
            if torch_ok:
                import torch

                torch.cuda.synchronize()
    names = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    try:
        import torch

        torch.set_num_threads(gl_threads())  # the same number of threads on both sides
        torch_ok = True
        torch_line = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_ok = False
        torch_line = "PyTorch not installed: gradlearn only, no ratios"
    print(openblas_info())
    print(f"NumPy {np.__version__}; {torch_line}")
    if args.device == "cuda":  # the CPU's matmul peak says nothing of the GPU's
        peak = None
        print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}; CuPy {cupy.__version__}")
    else:
        peak = peak_gflops()
        print(f"NumPy float32 matmul peak at the start: {peak:.1f} GFLOP/s; each workload's %peak is of the peak")
        print("measured in its own repetitions (the 'peak' column): the machine's speed moves within a run")
    probe = None if peak is None else MatmulProbe()
    head = f"{'':3} {'workload':<26} {'train gl/s':>10} {'torch/s':>9} {'ratio':>6} {'GFLOP/s':>8} {'peak':>6} {'%peak':>6} | {'infer gl/s':>10} {'torch/s':>9} {'ratio':>6}"
    print(head)
    for name in names:
        r = measure(name, args.repeats, torch_ok, args.budget, args.device, args.batch_size, args.settle, probe)
        gflops = r["gl_train"] * training_mult_adds(name) * 2 / 1e9
        tr = f"{r['gl_train'] / r['torch_train']:6.2f}" if torch_ok else f"{'-':>6}"
        ir = f"{r['gl_infer'] / r['torch_infer']:6.2f}" if torch_ok else f"{'-':>6}"
        share = f"{100 * gflops / r['peak']:.0f}%" if "peak" in r else "-"
        print(
            f"{name:3} {WORKLOADS[name][0]:<26} {r['gl_train']:10.0f} {r.get('torch_train', float('nan')):9.0f} {tr} "
            f"{gflops:8.1f} {r.get('peak', float('nan')):6.0f} {share:>6} | {r['gl_infer']:10.0f} {r.get('torch_infer', float('nan')):9.0f} {ir}",
            flush=True,
        )
        if "numpy_train" in r:
            versus = f"; PyTorch/NumPy {r['torch_train'] / r['numpy_train']:.2f}" if torch_ok else ""
            print(f"    W1 by hand in NumPy (the yardstick, same step): {r['numpy_train']:.0f}/s; "
                  f"gradlearn/NumPy {r['gl_train'] / r['numpy_train']:.2f}{versus}", flush=True)
    if args.both_envs:
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--both-envs"]
        return rerun_without_openblas_vars(os.path.abspath(__file__), rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
