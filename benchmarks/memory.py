"""Peak resident memory of W2 (LeNet-5) and W5 (ResNet-20) training, gradlearn vs PyTorch.

    python benchmarks/memory.py [--workloads W2,W5] [--steps 30] [--both-envs]

Each measurement runs in its own fresh subprocess and reports ``resource.getrusage``'s
``ru_maxrss`` (the process's peak RSS) -- on Linux the equivalent ``VmHWM`` of
/proc/self/status, because ``ru_maxrss`` survives ``exec`` and would report this parent
script's peak when that is higher. The baseline of each side is the same subprocess
with the imports done and the model, optimizer and batch built but no step run; the
"training" column is the peak after ``--steps`` training steps, and "increase" their
difference (what the steps themselves cost: activations, gradients, scratch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

_CHILD = r"""
import json, resource, sys
sys.path.insert(0, {here!r})
side, name, steps = {side!r}, {name!r}, {steps}
def rss():
    # peak RSS in MB: VmHWM of this process's memory (Linux; reset by exec, unlike ru_maxrss,
    # which keeps the launching parent's peak), else getrusage's ru_maxrss (kB on Linux)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy
if side == "bare":
    print(json.dumps({{"peak": rss()}})); sys.exit()
import _workloads
if side == "torch":
    import torch
    from gradlearn import parallel
    torch.set_num_threads(parallel.num_workers())  # as many threads as gradlearn's side
imports = rss()
step, _ = (_workloads.gl_trainer if side == "gl" else _workloads.torch_trainer)(name)
built = rss()
for _ in range(steps):
    step()
print(json.dumps({{"imports": imports, "built": built, "peak": rss()}}))
"""


def run_child(side, name="", steps=0):
    code = _CHILD.format(here=HERE, side=side, name=name, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W2,W5")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--both-envs", action="store_true", help="also re-run with the OpenBLAS variables unset")
    args = parser.parse_args(argv)
    from _workloads import WORKLOADS, openblas_info, rerun_without_openblas_vars

    print(openblas_info())
    import importlib.util

    if importlib.util.find_spec("torch") is not None:  # not imported here: keeps this parent small
        sides = ("gl", "torch")
    else:
        sides = ("gl",)
        print("PyTorch not installed: gradlearn only")
    print(f"bare interpreter + numpy: {run_child('bare')['peak']:.0f} MB peak RSS; 'imports' below adds gradlearn (and torch)")
    print(f"{'':3} {'workload':<22} {'side':<6} {'imports MB':>10} {'built MB':>9} {'training MB':>11} {'increase MB':>11}")
    for name in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
        res = {}
        for side in sides:
            r = res[side] = run_child(side, name, args.steps)
            print(
                f"{name:3} {WORKLOADS[name][0]:<22} {side:<6} {r['imports']:10.0f} {r['built']:9.0f} "
                f"{r['peak']:11.0f} {r['peak'] - r['built']:11.0f}"
            )
        if "torch" in res:
            g, t = res["gl"], res["torch"]
            print(
                f"    gradlearn / PyTorch: peak RSS {g['peak'] / t['peak']:.2f}, "
                f"training increase {(g['peak'] - g['built']) / max(t['peak'] - t['built'], 1e-9):.2f}"
            )
    if args.both_envs:
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--both-envs"]
        return rerun_without_openblas_vars(os.path.abspath(__file__), rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
