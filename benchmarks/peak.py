"""Float32 matrix-product peak through NumPy: GFLOP/s of large square products (2 n³ flops).

    python benchmarks/peak.py [--sizes 1024,2048] [--repeats 5] [--both-envs]

The best (and median) rate over the repetitions is the "peak". throughput.py prints it once
at the start, and compares each workload's achieved rate with the same products timed
after each of that workload's repetitions (``MatmulProbe``; the median of those probes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _workloads import openblas_info, rerun_without_openblas_vars  # noqa: E402


class MatmulProbe:
    """Times float32 n x n products on operands made once: ``probe()`` is the best GFLOP/s
    of two products of each size. throughput.py calls it inside every repetition, beside
    the workloads' timed blocks, because this machine's speed moves by up to 3x within one
    run: a peak measured only at the start compares a workload with another moment."""

    def __init__(self, sizes=(1024, 2048)):
        rng = np.random.default_rng(0)
        self.operands = {}
        for n in sizes:
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            out = np.empty((n, n), dtype=np.float32)
            np.matmul(a, b, out=out)  # warm-up
            self.operands[n] = (a, b, out)

    def rate(self, n):
        """GFLOP/s (2 n^3 flops) of one n x n product."""
        a, b, out = self.operands[n]
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        return 2 * n**3 / (time.perf_counter() - t) / 1e9

    def probe(self, repeats=2):
        return max(self.rate(n) for n in self.operands for _ in range(repeats))


def matmul_peak(sizes=(1024, 2048), repeats=5):
    """{n: (best GFLOP/s, median GFLOP/s)} for float32 n x n products."""
    probe = MatmulProbe(sizes)
    results = {}
    for n in sizes:
        rates = [probe.rate(n) for _ in range(repeats)]
        results[n] = (max(rates), statistics.median(rates))
    return results


def peak_gflops(sizes=(1024, 2048), repeats=5):
    return max(best for best, _ in matmul_peak(sizes, repeats).values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--both-envs", action="store_true", help="also re-run with the OpenBLAS variables unset")
    args = parser.parse_args(argv)
    print(openblas_info())
    for n, (best, med) in matmul_peak([int(s) for s in args.sizes.split(",")], args.repeats).items():
        print(f"float32 matmul {n}x{n}: best {best:.1f} GFLOP/s, median {med:.1f} GFLOP/s")
    if args.both_envs:
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--both-envs"]
        return rerun_without_openblas_vars(os.path.abspath(__file__), rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
