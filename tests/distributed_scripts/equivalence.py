"""Run under ``mpiexec -n 2``: data-parallel training equals one process with the global batch.

Every rank trains three models for 20 steps on its shards (plain all-reduce, overlapped
all-reduce, SyncBatchNorm); rank 0 also trains the single-process references on the
whole global batches and prints one line ``RESULT {json}`` with the worst relative
differences. float64 throughout. The last global batch of each epoch is partial and
uneven (71 samples, global batch 16: the 5th batch has 7 samples, split 4 / 3).
"""

import json
import sys

import numpy as np

import gradlearn as gl
import gradlearn.distributed as dist

STEPS = 20
PER_RANK = 8
N, D, CLASSES = 71, 6, 3


def mlp(seed, batchnorm=False):
    gl.manual_seed(seed)
    layers = [gl.Linear(D, 16, dtype=np.float64), gl.Tanh()]
    if batchnorm:
        layers += [gl.BatchNorm1d(16, dtype=np.float64)]
    layers += [gl.Linear(16, 16, dtype=np.float64), gl.Tanh(), gl.Linear(16, CLASSES, dtype=np.float64)]
    return gl.Sequential(*layers)


def train(model, sampler, x, y, dp=None):
    """STEPS steps of SGD with momentum; ``dp`` None: one process on the whole global batch."""
    loss_fn = gl.CrossEntropyLoss()
    optimizer = gl.SGD(model.parameters(), lr=0.2, momentum=0.9)
    if dp is not None:
        dp.before_training(model)
    step, epoch, losses = 0, 0, []
    while step < STEPS:
        sampler.set_epoch(epoch)
        for index in sampler.global_batches():
            xb, yb = x[index], y[index]
            if dp is not None:
                xb, yb = dp.shard(xb, yb)
            model.zero_grad()
            loss = float(loss_fn(model(xb), yb))
            if dp is None:
                model.backward(loss_fn.backward())
            else:
                dp.backward(model, loss_fn.backward())
                loss = dp.allreduce_mean(loss, weight=len(xb))
            optimizer.step()
            losses.append(loss)
            step += 1
            if step == STEPS:
                break
        epoch += 1
    return losses


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def state_error(model, reference):
    ref = reference.state_dict()
    return max(relative(v, ref[k]) for k, v in model.state_dict().items())


def main():
    comm = dist.get_comm()
    rank, size = dist.rank(), dist.size()
    data = np.random.default_rng(7)
    x = data.standard_normal((N, D))
    y = data.integers(0, CLASSES, N)
    sampler = dist.DistributedSampler(N, PER_RANK, seed=3)
    assert len(sampler) == 5, len(sampler)

    results = {"size": size}
    # each rank initialises differently: broadcasting rank 0's parameters is part of the test
    plain = mlp(100 + rank)
    plain_losses = train(plain, sampler, x, y, gl.distributed.DataParallel())
    overlap = mlp(100 + rank)
    dp_overlap = dist.DataParallel(overlap=True, bucket_bytes=64)
    train(overlap, sampler, x, y, dp_overlap)
    results["overlap_buckets"] = len(dp_overlap._plan(overlap) or [])
    sync = dist.SyncBatchNorm.convert_sync_batchnorm(mlp(200 + rank, batchnorm=True))
    assert isinstance(sync[2], dist.SyncBatchNorm)
    train(sync, sampler, x, y, dist.DataParallel())

    # rank 1 sends its final states to rank 0: every rank must hold the same parameters
    states = comm.gather((plain.state_dict(), overlap.state_dict(), sync.state_dict()), root=0)
    if rank == 0:
        single = dist.DistributedSampler(N, PER_RANK * size, seed=3, rank=0, size=1)
        reference = mlp(100)
        reference_losses = train(reference, single, x, y)
        reference_bn = mlp(200, batchnorm=True)
        train(reference_bn, single, x, y)
        results["plain"] = state_error(plain, reference)
        results["overlap"] = state_error(overlap, reference)
        results["syncbn"] = state_error(sync, reference_bn)
        results["losses"] = relative(plain_losses, reference_losses)
        results["ranks_agree"] = max(
            relative(other[i][k], mine[k])
            for other in states[1:]
            for i, mine in enumerate((plain.state_dict(), overlap.state_dict(), sync.state_dict()))
            for k in mine
        )
        results["moved"] = relative(reference.state_dict()["0.weight"], mlp(100).state_dict()["0.weight"])
        print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    dist.run_distributed(main)
    sys.exit(0)
