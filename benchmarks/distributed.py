"""Data-parallel throughput on this machine: 1 rank against 2 ranks, plain vs overlapped all-reduce.

    python benchmarks/distributed.py [--workloads W1,W2] [--ranks 1,2] [--steps 30] [--repeats 3]

Weak scaling: every rank keeps the workload's batch (W1 MLP 784-512-512-10 and W2 LeNet-5
at 128, W3 a 4-conv CNN at 64), so R ranks train on a global batch R times larger. Each
configuration runs under ``mpiexec -n R`` with OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1 in
the launched environment only (one core per rank, no oversubscription). A step is
forward, cross-entropy, backward, gradient all-reduce, SGD-momentum step, zero_grad.

Printed per workload and mode: global samples/s (median of the repeats, each a timed run
of ``--steps`` steps after 3 warm-up steps, slowest rank), the scaling efficiency
throughput(R) / (R x throughput(1)), the communication time per step (time spent in the
all-reduce calls, rank 0), and the bytes all-reduced per step (the flat gradient; a ring
all-reduce moves about 2 x that per rank). The machine may be shared: the numbers then
carry that load, which is why every figure is a median of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def worker(args):
    """One rank: time the training steps, report from rank 0."""
    import gradlearn as gl
    import gradlearn.distributed as dist
    from _workloads import WORKLOADS, gl_model

    name = args.worker
    _, shape, per_rank, classes = WORKLOADS[name]
    results = {}
    for mode in ("plain", "overlap"):
        if mode == "overlap" and dist.size() == 1:
            continue
        dp = dist.DataParallel(overlap=mode == "overlap")
        model = gl_model(name, np.random.default_rng(0))
        optimizer = gl.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = gl.CrossEntropyLoss()
        dp.before_training(model)
        rng = np.random.default_rng(dp.rank)
        x = rng.standard_normal((per_rank,) + shape).astype(np.float32)
        y = rng.integers(0, classes, per_rank)
        flat = model.flat_parameters()

        def step():
            model.zero_grad()
            loss_fn(model(x), y)
            dp.backward(model, loss_fn.backward())
            optimizer.step()

        runs = []
        for _ in range(args.repeats):
            for _ in range(3):
                step()
            dp.barrier()
            dp.comm_time = 0.0
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            elapsed = time.perf_counter() - started
            slowest = dp.comm.allreduce(elapsed, op=__import__("mpi4py.MPI").MPI.MAX) if dp.size > 1 else elapsed
            runs.append((slowest / args.steps, dp.comm_time / args.steps))
        results[mode] = {
            "step_s": statistics.median(r[0] for r in runs),
            "comm_s": statistics.median(r[1] for r in runs),
            "samples_per_s": per_rank * dp.size / statistics.median(r[0] for r in runs),
            "grad_bytes": int(flat.grad.nbytes),
            "parameters": int(sum(p.size for p in flat.params)),
        }
    if dist.size() > 1:  # the all-reduce alone, ranks aligned by a barrier first (no waiting for a slow rank)
        from mpi4py import MPI

        comm, buffer, times = dist.get_comm(), np.zeros_like(flat.grad), []
        for _ in range(5 * args.repeats + 5):
            comm.Barrier()
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer)
            times.append(time.perf_counter() - started)
        results["plain"]["allreduce_alone_s"] = statistics.median(times[5:])
    if dist.is_main():
        print("RESULT " + json.dumps({"workload": name, "ranks": dist.size(), "results": results}), flush=True)


def launch(workload, ranks, args):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("benchmarks/distributed.py: no mpiexec (pip install 'gradlearn[distributed]')")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker", workload,
               "--steps", str(args.steps), "--repeats", str(args.repeats)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.exit(f"benchmarks/distributed.py: {' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    ranks = [int(r) for r in args.ranks.split(",")]
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())} (the machine may be shared)")
    print(f"{'workload':<10}{'ranks':>6}{'mode':>9}{'samples/s':>12}{'ms/step':>9}{'comm ms':>9}{'comm %':>8}"
          f"{'MB/step':>9}{'efficiency':>12}")
    for workload in args.workloads.split(","):
        base = None
        for r in ranks:
            result = launch(workload, r, args)
            for mode, m in result["results"].items():
                if r == 1:
                    base = m["samples_per_s"]
                efficiency = m["samples_per_s"] / (r * base) if base else float("nan")
                print(f"{workload:<10}{r:>6}{mode:>9}{m['samples_per_s']:>12.0f}{m['step_s'] * 1e3:>9.2f}"
                      f"{m['comm_s'] * 1e3:>9.2f}{100 * m['comm_s'] / m['step_s']:>7.1f}%"
                      f"{m['grad_bytes'] / 1e6:>9.2f}{efficiency:>11.0%}", flush=True)
            if "allreduce_alone_s" in result["results"].get("plain", {}):
                alone = result["results"]["plain"]["allreduce_alone_s"]
                mb = result["results"]["plain"]["grad_bytes"] / 1e6
                print(f"{'':<10}{r:>6}  Allreduce of {mb:.2f} MB alone (after a barrier): {alone * 1e3:.2f} ms"
                      f" ({mb / 1e3 / alone:.2f} GB/s of gradient)", flush=True)
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
