"""Data-parallel training over MPI: single-process behaviour of the helpers, and real runs
under ``mpiexec -n 2`` (subprocesses; skipped, saying why, without mpi4py or mpiexec)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import gradlearn as gl
import gradlearn.distributed as dist
from tests.conftest import assert_close, mpi_env, mpiexec

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_scripts")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# single process: every helper degrades to size 1 -------------------------------------------------


@pytest.fixture
def not_launched(monkeypatch):
    for var in dist._RANK_VARIABLES + dist._SIZE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(dist, "_MPI", None)


def small_model(seed=0, dtype=np.float64):
    gl.manual_seed(seed)
    return gl.Sequential(gl.Linear(4, 8, dtype=dtype), gl.Tanh(), gl.Linear(8, 3, dtype=dtype))


def test_single_process_helpers(not_launched):
    assert (dist.rank(), dist.size(), dist.is_main(), dist.get_comm()) == (0, 1, True, None)
    model = small_model()
    flat = model.flat_parameters()
    flat.grad[:] = np.arange(flat.size)
    before = flat.data.copy()
    dist.broadcast_parameters(model)
    dist.allreduce_gradients(model)
    dist.barrier()
    assert np.array_equal(flat.grad, np.arange(flat.size)) and np.array_equal(flat.data, before)
    assert dist.allreduce_mean(2.5, weight=3) == 2.5
    assert np.array_equal(dist.allreduce_mean(np.array([1.0, 2.0])), [1.0, 2.0])
    assert dist.broadcast_bytes(b"abc") == b"abc"
    dp = dist.DataParallel()
    assert (dp.rank, dp.size, dp.is_main, dp.active) == (0, 1, True, False)
    x = np.arange(10.0)
    assert dp.shard(x) is not None and np.array_equal(dp.shard(x), x)
    assert dp.reduce_metrics({"loss": 1.5, "name": "a"}, count=4) == {"loss": 1.5, "name": "a"}


def test_launched_without_mpi4py_is_an_error(monkeypatch):
    monkeypatch.setattr(dist, "_MPI", None)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    with pytest.raises(RuntimeError, match="mpi4py is not installed"):
        dist.size()


def test_shard_bounds_cover_disjoint():
    for n in (0, 1, 7, 16, 17):
        for size in (1, 2, 3, 5):
            bounds = [dist.shard_bounds(n, r, size) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[r][1] == bounds[r + 1][0] for r in range(size - 1))
            lengths = [hi - lo for lo, hi in bounds]
            assert max(lengths) - min(lengths) <= 1
    with pytest.raises(ValueError, match="rank"):
        dist.shard_bounds(4, 2, 2)
    x, y = np.arange(7), np.arange(7) * 10
    xs, ys = dist.shard(x, y, rank=1, size=2)
    assert np.array_equal(xs, [4, 5, 6]) and np.array_equal(ys, [40, 50, 60])


def test_sampler_shards_partition_every_global_batch():
    n, per_rank, size = 50, 4, 3
    samplers = [dist.DistributedSampler(n, per_rank, seed=9, rank=r, size=size) for r in range(size)]
    single = dist.DistributedSampler(n, per_rank * size, seed=9, rank=0, size=1)
    for epoch in (0, 1):
        for s in samplers + [single]:
            s.set_epoch(epoch)
        shards = [list(s) for s in samplers]
        globals_ = list(samplers[0].global_batches())
        assert all(len(sh) == len(samplers[0]) for sh in shards)  # every rank runs the same number of steps
        assert len(globals_) == len(shards[0]) == 4  # 4 full global batches of 12, then 2 left < 3 ranks: dropped
        # the global batches are those of one process with batch 12 (which keeps the last 2)
        assert len(list(single)) == 5
        assert all(np.array_equal(a, b) for a, b in zip(globals_, single))
        for step, batch in enumerate(globals_):
            joined = np.concatenate([sh[step] for sh in shards])
            assert np.array_equal(joined, batch)  # disjoint shards, in order, covering the global batch
        used = np.concatenate(globals_)
        assert len(np.unique(used)) == len(used)
    samplers[0].set_epoch(0)
    first = np.concatenate(list(samplers[0].global_batches()))
    samplers[0].set_epoch(1)
    assert not np.array_equal(first, np.concatenate(list(samplers[0].global_batches())))  # reshuffled per epoch
    partial = dist.DistributedSampler(53, 4, rank=0, size=3)  # 5 left over >= 3 ranks: split 2/2/1
    assert len(partial) == 5 and len(list(partial)[-1]) == 2
    assert len(dist.DistributedSampler(53, 4, rank=0, size=3, drop_last=True)) == 4


def test_sync_batchnorm_on_one_process_is_batchnorm(not_launched, rng):
    bn = gl.BatchNorm2d(3, dtype=np.float64)
    bn.weight.data = rng.uniform(0.5, 1.5, 3)
    bn.bias.data = rng.standard_normal(3)
    model = gl.Sequential(gl.Conv2d(2, 3, 3, dtype=np.float64), bn)
    model_sync = dist.SyncBatchNorm.convert_sync_batchnorm(model.copy())
    assert isinstance(model_sync[1], dist.SyncBatchNorm) and list(model_sync)[1] is model_sync[1]
    assert set(model_sync.state_dict()) == set(model.state_dict())
    x = rng.standard_normal((4, 2, 6, 6))
    dy = rng.standard_normal((4, 3, 4, 4))
    y, y_sync = model(x), model_sync(x)
    assert_close(y_sync, y, 1e-14, "forward")
    assert_close(model_sync.backward(dy), model.backward(dy), 1e-14, "backward")
    for key, value in model.state_dict().items():
        assert_close(model_sync.state_dict()[key], value, 1e-14, key)
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    for name, p in model_sync.named_parameters():
        assert_close(p.grad, grads[name], 1e-14, name)


def test_data_parallel_backward_single_process(not_launched, rng):
    model = small_model()
    reference = small_model()
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    dp = dist.DataParallel(overlap=True)
    model(x)
    reference(x)
    assert_close(dp.backward(model, dy), reference.backward(dy), 0, "grad_input")
    assert np.array_equal(model.flat_parameters().grad, reference.flat_parameters().grad)


def test_scaled_lr_is_the_linear_rule():
    assert dist.scaled_lr(0.1, 256, 1024) == pytest.approx(0.4)


# real runs under mpiexec ---------------------------------------------------------------------------


def _run(args, timeout=60, ranks=2, launcher_options=()):
    env = mpi_env()
    command = [mpiexec(), *launcher_options, "-n", str(ranks), sys.executable, "-m", "gradlearn.distributed", *args]
    started = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} hung for {timeout} s:\n{exc.stdout}\n{exc.stderr}")
    return result, time.monotonic() - started


def _tagged(stdout, tag):
    lines = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    assert len(lines) == 1, f"expected one {tag} line in:\n{stdout}"
    return json.loads(lines[0][len(tag) + 1 :])


def test_two_ranks_match_one_process_with_the_global_batch():
    result, _ = _run([os.path.join(SCRIPTS, "equivalence.py")])
    assert result.returncode == 0, result.stdout + result.stderr
    r = _tagged(result.stdout, "RESULT")
    assert r["size"] == 2 and r["overlap_buckets"] >= 2
    assert r["moved"] > 0.1  # training changed the weights: the comparisons below are not vacuous
    # 20 steps, float64, uneven last shards: equal to 1 process up to summation order
    assert r["plain"] < 1e-10, r
    assert r["overlap"] < 1e-10, r
    assert r["syncbn"] < 1e-10, r  # SyncBatchNorm on 2 x 8 == BatchNorm1d on 16 (parameters and running stats)
    assert r["losses"] < 1e-12, r
    assert r["ranks_agree"] == 0.0, r  # both ranks hold bit-identical parameters


def _single_process(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for var in dist._RANK_VARIABLES + dist._SIZE_VARIABLES:
        env.pop(var, None)
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "faults.py"), *args], capture_output=True,
                            text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return _tagged(result.stdout, "FINAL")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    mpiexec()
    return _single_process("none", str(tmp_path_factory.mktemp("fresh") / "fresh.safetensors"))


@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_naming_the_rank(mode, tmp_path, uninterrupted):
    path = str(tmp_path / "last.safetensors")
    result, elapsed = _run([os.path.join(SCRIPTS, "faults.py"), mode, path])
    assert result.returncode != 0
    assert elapsed < 30
    expected = "gradlearn: rank 1 failed: " + ("ValueError: injected failure at step 5" if mode == "raise" else "killed by signal SIGKILL")
    assert expected in result.stderr, result.stderr
    assert "FINAL" not in result.stdout
    # rank 0's last checkpoint is whole (atomic writes) and resumes, here on one process:
    # the same global batches, so the same weights as a run never interrupted
    # (rank 0 can finish writing step 5's checkpoint a moment after mpiexec has returned,
    # so the step is read by the resuming process itself)
    r, f = _single_process("none", path), uninterrupted
    assert r["start"] in (4, 5) and f["start"] == 0 and r["size"] == 1
    assert_close(r["weights"], f["weights"], 1e-12, "resumed on 1 rank vs uninterrupted")


def test_a_dead_rank_without_launcher_cleanup_times_out(tmp_path):
    """With hydra's cleanup disabled, the polled all-reduce's deadline (3 s) ends the job."""
    version = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True, timeout=30).stdout
    if "HYDRA" not in version:
        pytest.skip("this check uses MPICH hydra's -disable-auto-cleanup; this mpiexec is not hydra")
    result, elapsed = _run([os.path.join(SCRIPTS, "faults.py"), "hang", str(tmp_path / "c.safetensors")],
                           launcher_options=["-disable-auto-cleanup"])
    assert result.returncode != 0
    assert elapsed < 30
    assert "gradlearn: rank 1 failed: killed by signal SIGKILL" in result.stderr, result.stderr
    assert "gradlearn: rank 0 failed: the gradient all-reduce did not complete within 3 s" in result.stderr, result.stderr


def test_trainer_distributed_matches_one_process():
    result, _ = _run([os.path.join(SCRIPTS, "trainer_fit.py")])
    assert result.returncode == 0, result.stdout + result.stderr
    r = _tagged(result.stdout, "RESULT")
    assert r["size"] == 2
    assert r["params"] < 1e-10, r  # 2 ranks x 8 == 1 process x 16, with a shuffled, uneven last batch
    assert r["loss"] < 1e-10, r  # the epoch loss reduced across ranks equals the single-process one
    assert r["checkpoints"] >= 1, r  # rank 0 wrote checkpoints
    assert r["ranks_disagree"] == 0.0, r  # ranks started from different weights and end identical
