"""Data-parallel training over MPI (mpi4py): one all-reduce of the flat gradient per step.

Every rank (process) holds a full copy of the model and sees a disjoint shard of every
global batch. Since the parameters live in one flat vector (``model.flat_parameters()``),
synchronising a step is a single collective on one contiguous buffer:

    g_r = dE_r/dW on rank r's shard           (local backward, unchanged)
    g   = (1/R) sum_r g_r                      comm.Allreduce(MPI.IN_PLACE, flat.grad); flat.grad *= 1/R

With equal shards of a global batch of B samples and a mean loss, ``g`` is exactly the
gradient of the mean loss over the B samples, so R ranks with per-rank batch B/R take the
same steps as one process with batch B (up to floating-point summation order). Every rank
then runs the same optimizer step on the same gradient, so the parameters stay identical
without ever being sent again (they are broadcast once, from rank 0, at the start).

The engine is MPI (MPICH or Open MPI through mpi4py); nothing here reimplements a
collective. Launch with ``mpiexec`` (see the README's "Distributed training"):

    mpiexec -n 4 python -m gradlearn.distributed train.py --epochs 10

``python -m gradlearn.distributed`` is a thin per-rank guard around the script: it names the
rank when the script dies from a signal (SIGKILL, the OOM killer), and it installs the
exception hook below. Without MPI (mpi4py absent, or not started by ``mpiexec``) every
helper degrades to one process: ``size() == 1``, ``rank() == 0``, collectives are no-ops.

Faults. MPI collectives block until every rank joins, so a dead rank would hang the others:

- a rank that raises: :func:`install_excepthook` (installed by :class:`DataParallel` and
  :func:`run_distributed`) prints ``gradlearn: rank 1 failed: ValueError: ...`` to stderr
  and calls ``MPI_Abort``; the launcher then kills every rank and exits non-zero. (Without
  it, the failed rank waits in ``MPI_Finalize`` and the others in the collective: forever.)
- a rank killed by a signal: MPICH's launcher (hydra) sees the process die and kills the
  others at once ("BAD TERMINATION ... CLEANING UP REMAINING PROCESSES"), exit code 9 for
  SIGKILL; the guard prints ``gradlearn: rank 1 failed: killed by signal SIGKILL``.
- a launcher that does not clean up (or a hung, not dead, rank): ``DataParallel(timeout=s)``
  runs the gradient all-reduce as a non-blocking ``Iallreduce`` polled against a deadline,
  and aborts the job with a message naming the waiting rank when it passes.

Only rank 0 writes checkpoints (atomically), so a crash leaves the last one whole; every
rank resumes from it (also with a different number of ranks: the state is the same on all).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

import numpy as np

__all__ = [
    "available",
    "launched",
    "get_comm",
    "rank",
    "size",
    "is_main",
    "barrier",
    "broadcast_parameters",
    "broadcast_bytes",
    "allreduce_gradients",
    "allreduce_mean",
    "shard_bounds",
    "shard",
    "DistributedSampler",
    "SyncBatchNorm",
    "DataParallel",
    "install_excepthook",
    "run_distributed",
    "scaled_lr",
]

# Environment variables a launcher sets in every rank: MPICH/hydra and Intel MPI (PMI_*),
# Open MPI (OMPI_*), PMIx launchers, MVAPICH.
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

_MPI = None  # the mpi4py.MPI module once imported (importing it initialises MPI)


def available() -> bool:
    """Whether mpi4py can be imported (it is not imported, so MPI is not initialised)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def launched() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec/mpirun/srun with PMI)."""
    return any(v in os.environ for v in _RANK_VARIABLES)


def _launched_size() -> int:
    for v in _SIZE_VARIABLES:
        if v in os.environ:
            try:
                return int(os.environ[v])
            except ValueError:
                pass
    return 1


def _mpi():
    """mpi4py.MPI when launched under MPI, else None (single process; MPI stays uninitialised)."""
    global _MPI
    if _MPI is None:
        if not launched():
            return None
        try:
            from mpi4py import MPI
        except ImportError:
            n = _launched_size()
            if n > 1:
                raise RuntimeError(
                    f"gradlearn.distributed: started by an MPI launcher with {n} processes, but mpi4py is "
                    "not installed, so every process would train alone: pip install 'gradlearn[distributed]'"
                ) from None
            return None
        _MPI = MPI
    return _MPI


def get_comm(comm=None):
    """``comm`` itself, or MPI.COMM_WORLD when launched under MPI, or None (single process)."""
    if comm is not None:
        return comm
    MPI = _mpi()
    return None if MPI is None else MPI.COMM_WORLD


def rank(comm=None) -> int:
    """This process's rank (0 without MPI)."""
    comm = get_comm(comm)
    return 0 if comm is None else comm.Get_rank()


def size(comm=None) -> int:
    """The number of ranks (1 without MPI)."""
    comm = get_comm(comm)
    return 1 if comm is None else comm.Get_size()


def is_main(comm=None) -> bool:
    """True on rank 0, the rank that prints, plots and writes files."""
    return rank(comm) == 0


def barrier(comm=None) -> None:
    """Wait until every rank gets here (no-op on one process)."""
    comm = get_comm(comm)
    if comm is not None and comm.Get_size() > 1:
        comm.Barrier()


def _flat_of(model_or_flat):
    if hasattr(model_or_flat, "flat_parameters"):
        return model_or_flat.flat_parameters()
    if hasattr(model_or_flat, "grad") and hasattr(model_or_flat, "slices"):
        return model_or_flat
    raise TypeError(f"expected a Module or FlatParameters, got {type(model_or_flat).__name__}")


def broadcast_parameters(model, root: int = 0, comm=None) -> None:
    """Copy ``root``'s parameters (the flat data vector, one Bcast) and every buffer to all ranks.

    Call once before training (``DataParallel.before_training`` does), so that ranks that
    initialised with different random numbers start from the same point. Buffers are the
    modules' non-learned arrays (BatchNorm's running statistics and batch counter).
    """
    comm = get_comm(comm)
    if comm is None or comm.Get_size() == 1:
        return
    flat = model.flat_parameters()
    comm.Bcast(flat.data, root=root)
    for name, buffer in model.named_buffers():
        if buffer is None:
            continue
        if not (isinstance(buffer, np.ndarray) and buffer.flags.c_contiguous and buffer.flags.writeable):
            raise TypeError(f"broadcast_parameters: buffer '{name}' is not a writable contiguous NumPy array")
        comm.Bcast(buffer, root=root)


def broadcast_bytes(data, root: int = 0, comm=None) -> bytes:
    """``root``'s ``data`` (bytes; ignored elsewhere) on every rank: e.g. a checkpoint read by rank 0 only."""
    comm = get_comm(comm)
    if comm is None or comm.Get_size() == 1:
        return bytes(data)
    me = comm.Get_rank()
    length = np.array([len(data) if me == root else 0], dtype=np.int64)
    comm.Bcast(length, root=root)
    buffer = np.frombuffer(bytes(data), dtype=np.uint8).copy() if me == root else np.empty(int(length[0]), np.uint8)
    comm.Bcast(buffer, root=root)
    return buffer.tobytes()


def _wait(requests, timeout, comm, what):
    """Wait for MPI requests; with ``timeout`` poll them and abort the job when the deadline passes."""
    MPI = _mpi()
    if timeout is None:
        MPI.Request.Waitall(requests)
        return
    deadline = time.monotonic() + timeout
    while not MPI.Request.Testall(requests):
        if time.monotonic() > deadline:
            me = comm.Get_rank()
            print(
                f"gradlearn: rank {me} failed: {what} did not complete within {timeout:g} s; another rank "
                "is dead or hung (see its output); aborting the job",
                file=sys.stderr,
                flush=True,
            )
            _let_the_launcher_forward_output()
            comm.Abort(1)
        time.sleep(0.0002)


def allreduce_gradients(model_or_flat, comm=None, average: bool = True, timeout=None) -> None:
    """Sum (``average``: then divide by the number of ranks) the flat gradient over all ranks, in place.

    One ``Allreduce(MPI.IN_PLACE, flat.grad)`` on the contiguous vector; with ``timeout``
    (seconds) an ``Iallreduce`` polled against a deadline instead (see the module doc).
    """
    comm = get_comm(comm)
    if comm is None or comm.Get_size() == 1:
        return
    MPI = _mpi()
    grad = _flat_of(model_or_flat).grad
    if timeout is None:
        comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
    else:
        _wait([comm.Iallreduce(MPI.IN_PLACE, grad, op=MPI.SUM)], timeout, comm, "the gradient all-reduce")
    if average:
        grad *= 1.0 / comm.Get_size()


def allreduce_mean(value, weight=None, comm=None):
    """The mean of ``value`` (a number or an array) over ranks, weighted by ``weight`` when given.

    ``sum_r weight_r * value_r / sum_r weight_r``: pass the local sample count as ``weight``
    to turn per-rank means (loss, accuracy) into the mean over every sample. Returns a float
    for a number, a float64 array for an array.
    """
    comm = get_comm(comm)
    scalar = np.ndim(value) == 0
    if comm is None or comm.Get_size() == 1:
        return float(value) if scalar else np.asarray(value, dtype=np.float64).copy()
    MPI = _mpi()
    w = 1.0 if weight is None else float(weight)
    values = np.asarray(value, dtype=np.float64).ravel()
    buffer = np.empty(values.size + 1, dtype=np.float64)
    buffer[:-1] = values * w
    buffer[-1] = w
    comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    total = buffer[-1]
    mean = buffer[:-1] / total if total != 0 else np.full(values.size, np.nan)
    return float(mean[0]) if scalar else mean.reshape(np.shape(value))


# sharding ----------------------------------------------------------------------------------


def shard_bounds(n: int, rank: int, size: int):
    """(start, stop) of ``rank``'s contiguous share of ``n`` items split over ``size`` ranks.

    Shares differ by at most one item; the first ``n % size`` ranks get the larger ones.
    """
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"shard_bounds: need 0 <= rank < size, got rank={rank}, size={size}")
    base, extra = divmod(int(n), size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard(*arrays, rank=None, size=None, comm=None):
    """This rank's contiguous piece of a global batch: ``x, y = shard(x, y)`` (views, no copy)."""
    if rank is None or size is None:
        comm = get_comm(comm)
        rank = 0 if comm is None else comm.Get_rank()
        size = 1 if comm is None else comm.Get_size()
    if not arrays:
        raise ValueError("shard: no arrays given")
    n = len(arrays[0])
    for a in arrays[1:]:
        if len(a) != n:
            raise ValueError(f"shard: arrays have different lengths {[len(a) for a in arrays]}")
    lo, hi = shard_bounds(n, rank, size)
    pieces = tuple(a[lo:hi] for a in arrays)
    return pieces[0] if len(pieces) == 1 else pieces


class DistributedSampler:
    """Indices of this rank's shard of every global batch, identical shuffling on every rank.

    The epoch's permutation of ``num_samples`` comes from ``numpy.random.default_rng((seed,
    epoch))``, the same on every rank (no communication), and is cut into global batches of
    ``batch_size * size`` samples (``batch_size`` is the per-rank batch); rank r takes the
    r-th contiguous share of each. The shards of a global batch are disjoint and cover it,
    so the union over ranks is exactly what one process with the global batch would see.

    The last, partial global batch is split as evenly as possible; it is dropped when it
    has fewer samples than there are ranks (no rank may be left without data, since every
    rank must join every all-reduce), or always with ``drop_last``. Every rank iterates
    the same number of batches. Call ``set_epoch(e)`` before each epoch.
    """

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int | None = None, size: int | None = None, comm=None):
        if int(num_samples) < 1 or int(batch_size) < 1:
            raise ValueError(f"DistributedSampler: num_samples and batch_size must be positive, got {num_samples}, {batch_size}")
        if rank is None or size is None:
            comm = get_comm(comm)
            rank = 0 if comm is None else comm.Get_rank()
            size = 1 if comm is None else comm.Get_size()
        if not 0 <= rank < size:
            raise ValueError(f"DistributedSampler: need 0 <= rank < size, got rank={rank}, size={size}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank, self.size = int(rank), int(size)
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.global_batch_size)
        return full + (1 if rest >= self.size and not self.drop_last else 0)

    def order(self):
        """The epoch's global order of sample indices (the same on every rank)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng((self.seed, self.epoch)).permutation(self.num_samples)

    def global_batches(self):
        """Every rank's view of the epoch: the index array of each global batch."""
        order, g = self.order(), self.global_batch_size
        for i in range(len(self)):
            yield order[i * g : (i + 1) * g]

    def __iter__(self):
        for batch in self.global_batches():
            lo, hi = shard_bounds(len(batch), self.rank, self.size)
            yield batch[lo:hi]


# synchronised batch normalisation --------------------------------------------------------------

from .modules.normalization import _BatchNorm  # noqa: E402


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose statistics are those of the global batch, over all ranks.

    Inputs (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W); the local batch is N.
    Training, with M = total number of values per channel over every rank:

        S1 = sum_ranks sum x,  S2 = sum_ranks sum x^2     (one Allreduce of [S1, S2, M], float64;
                                                           S2 from sums about each rank's own mean)
        mu = S1 / M,  var = S2 / M - mu^2,  xhat = (x - mu) / sqrt(var + eps),  y = gamma xhat + beta

    Backward (the Jacobian of BatchNorm with the global statistics):

        A = sum_ranks sum dE/dy,  B = sum_ranks sum dE/dy * xhat          (one Allreduce of [A, B])
        dE/dx = gamma / sigma * (dE/dy - A / M - xhat * B / M)
        dE/dgamma += local sum dE/dy * xhat,  dE/dbeta += local sum dE/dy

    Parameter gradients stay local: the data-parallel gradient average then gives the
    global ones, and dE/dx is R times the gradient of the global mean loss, the same scale
    as every other local gradient under that average. Running statistics use mu and the
    unbiased var * M / (M - 1), identical on every rank. Evaluation, or one process: exactly
    the local BatchNorm. Same arguments and state names as BatchNorm1d/2d, plus ``comm``.
    Turn a model's BatchNorm layers into SyncBatchNorm with :meth:`convert_sync_batchnorm`.
    """

    _input_dims = (2, 3, 4, 5)
    _input_desc = "an input (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, comm=None, *, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)
        self.comm = comm

    def __deepcopy__(self, memo):
        import copy

        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            object.__setattr__(clone, key, value if key == "comm" else copy.deepcopy(value, memo))
        return clone

    def _comm(self):
        comm = get_comm(self.comm)
        return comm if comm is not None and comm.Get_size() > 1 else None

    def forward(self, x):
        comm = self._comm() if self.training else None
        if comm is None:
            return super().forward(x)
        self._check_input(x)
        MPI = _mpi()
        x3 = self._as3d(x)
        n, c, length = x3.shape
        local_count = n * length
        # local sums of squares about the local mean (no float32 cancellation), made global in float64:
        # sum x^2 = sum (x - m_r)^2 + n_r m_r^2
        local_sum = self._channel_sum(x3)
        local_mean = local_sum * (1.0 / max(local_count, 1))
        centred = x3 - local_mean[None, :, None]
        stats = np.empty(2 * c + 1, dtype=np.float64)
        stats[:c] = local_sum
        stats[c : 2 * c] = self._channel_sum(centred * centred)
        stats[c : 2 * c] += local_count * local_mean.astype(np.float64) ** 2
        stats[2 * c] = local_count
        comm.Allreduce(MPI.IN_PLACE, stats, op=MPI.SUM)
        count = int(stats[2 * c])
        if count <= 1:
            raise self.error("forward", f"expected more than 1 value per channel over all ranks when training, got {count}")
        mean64 = stats[:c] / count
        var64 = np.maximum(stats[c : 2 * c] / count - mean64 * mean64, 0.0)
        mean = mean64.astype(x.dtype)
        var = var64.astype(x.dtype)
        inv_std = (1.0 / np.sqrt(var64 + self.eps)).astype(x.dtype)
        xhat = centred
        xhat += (local_mean - mean)[None, :, None]
        xhat *= inv_std[None, :, None]
        if self.track_running_stats:
            self._update_running(mean, var, count)
        self._cache = ("sync", xhat, inv_std, count, x.shape)
        if self.affine:
            y = xhat * self.weight.data[None, :, None]
            y += self.bias.data[None, :, None]
        else:
            y = xhat.copy()
        return y.reshape(x.shape)

    def backward(self, grad_output):
        cache = self._cache
        if cache is None or cache[0] != "sync":
            return super().backward(grad_output)
        self.check_grad(grad_output, cache[4])
        _, xhat, inv_std, count, shape = cache
        comm, MPI = self._comm(), _mpi()
        dy = self._as3d(grad_output)
        c = self.num_features
        sums = np.empty(2 * c, dtype=np.float64)
        sums[:c] = local_dy = self._channel_sum(dy)
        sums[c:] = local_dy_xhat = self._channel_sum(dy * xhat)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += local_dy_xhat
            if self.bias.requires_grad:
                self.bias.grad += local_dy
            scale = self.weight.data * inv_std
        else:
            scale = inv_std
        comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        mean_dy = (sums[:c] / count).astype(dy.dtype)
        mean_dy_xhat = (sums[c:] / count).astype(dy.dtype)
        grad_input = dy - mean_dy[None, :, None]
        grad_input -= xhat * mean_dy_xhat[None, :, None]
        grad_input *= scale[None, :, None]
        return grad_input.reshape(shape)

    @classmethod
    def convert_sync_batchnorm(cls, module, comm=None):
        """Replace every BatchNorm1d/2d in ``module`` by a SyncBatchNorm with the same state; returns the model.

        Call it before the optimizer packs the parameters (the new layers own new Parameters
        holding the old values). A BatchNorm given as ``module`` itself is returned converted.
        """
        from .modules.normalization import BatchNorm1d, BatchNorm2d

        def convert(bn):
            new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, comm=comm,
                      dtype=bn._param_dtype())
            new.load_state_dict(bn.state_dict())
            if bn.affine:
                new.weight.requires_grad = bn.weight.requires_grad
                new.bias.requires_grad = bn.bias.requires_grad
            new.train(bn.training)
            return new

        if isinstance(module, (BatchNorm1d, BatchNorm2d)):
            return convert(module)
        for parent in list(module.modules()):
            for name, child in list(parent._modules.items()):
                if isinstance(child, (BatchNorm1d, BatchNorm2d)):
                    new = convert(child)
                    setattr(parent, name, new)
                    for value in parent.__dict__.values():  # containers keep their children in lists too
                        if isinstance(value, list):
                            for i, item in enumerate(value):
                                if item is child:
                                    value[i] = new
        return module



# the helper the Trainer (or a hand-written loop) uses ---------------------------------------------


def scaled_lr(base_lr: float, base_batch: int, global_batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``base_lr * global_batch / base_batch``.

    Use it with ``gradlearn.optim.LinearWarmup`` over the first epochs (5 in the paper).
    """
    from .optim import scale_lr_for_batch

    return scale_lr_for_batch(base_lr, base_batch, global_batch)


class DataParallel:
    """Everything a training loop needs to run data-parallel over MPI.

        dp = DataParallel()                       # rank, size, is_main; installs the exception hook
        dp.before_training(model)                 # rank 0's parameters and buffers to every rank
        for x, y in global_batches:               # the same global batches on every rank
            x, y = dp.shard(x, y)                 # this rank's share
            model.zero_grad(); loss(model(x), y)
            dp.backward(model, loss.backward())   # = model.backward(...) + dp.after_backward(model)
            optimizer.step()                      # identical on every rank
        logs = dp.reduce_metrics(logs, count)     # means over every sample, identical on every rank

    Args:
        comm: an mpi4py communicator (default COMM_WORLD when launched under MPI).
        overlap: start non-blocking all-reduces (Iallreduce) of the gradient of a
            Sequential's last children while the earlier ones still run their backward,
            in buckets of at least ``bucket_bytes``; wait for all before the step.
        bucket_bytes: minimum size of an overlapped all-reduce (default 1 MiB).
        timeout: seconds to wait for the gradient all-reduce before aborting the job with
            a message naming this rank (None: wait as long as MPI does; the launcher
            kills the job when a rank dies).
        excepthook: install :func:`install_excepthook` (default True).

    A shard's gradient is weighted by its share of the global batch (local_n * R / N), so
    uneven shards of a last partial batch still average to the global-batch gradient
    (:meth:`backward` scales the loss gradient, which also keeps SyncBatchNorm's sums
    exact; :meth:`after_backward` alone scales the parameter gradients).
    """

    def __init__(self, comm=None, overlap: bool = False, bucket_bytes: int = 1 << 20, timeout=None,
                 excepthook: bool = True):
        self.comm = get_comm(comm)
        self.rank = 0 if self.comm is None else self.comm.Get_rank()
        self.size = 1 if self.comm is None else self.comm.Get_size()
        self.overlap = bool(overlap)
        self.bucket_bytes = int(bucket_bytes)
        self.timeout = None if timeout is None else float(timeout)
        self.local_count = None
        self.global_count = None
        self.comm_time = 0.0  # seconds spent waiting in gradient all-reduces (for benchmarks)
        self._plans = {}
        if excepthook and self.size > 1:
            install_excepthook(self.comm)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def __repr__(self):
        mode = ", overlap" if self.overlap else ""
        return f"DataParallel(rank {self.rank} of {self.size}{mode})"

    # setup -----------------------------------------------------------------------------
    def before_training(self, model, root: int = 0) -> None:
        """Broadcast ``root``'s parameters and buffers (call after building/resuming, before the first step)."""
        broadcast_parameters(model, root, self.comm)

    def global_batch_size(self, per_rank_batch: int) -> int:
        return int(per_rank_batch) * self.size

    def scaled_lr(self, base_lr: float, base_batch: int, global_batch: int) -> float:
        return scaled_lr(base_lr, base_batch, global_batch)

    # data ------------------------------------------------------------------------------
    def shard(self, *arrays):
        """This rank's contiguous share of a global batch (views); remembers the counts for the weighting."""
        pieces = shard(*arrays, rank=self.rank, size=self.size)
        self.global_count = len(arrays[0])
        self.local_count = len(pieces[0] if len(arrays) > 1 else pieces)
        return pieces

    def _weight(self):
        if self.local_count is None or not self.global_count:
            return 1.0
        return self.local_count * self.size / self.global_count

    # gradients -------------------------------------------------------------------------
    def after_backward(self, model, weighted: bool = True) -> None:
        """Average the flat gradient over ranks (weighted by shard sizes): one Allreduce.

        ``weighted=False``: the gradient was already scaled by the shard's weight (as
        :meth:`backward` does, on the loss gradient).
        """
        if self.size == 1:
            return
        flat = _flat_of(model)
        weight = self._weight() if weighted else 1.0
        if weight != 1.0:
            flat.grad *= weight
        started = time.perf_counter()
        allreduce_gradients(flat, self.comm, average=True, timeout=self.timeout)
        self.comm_time += time.perf_counter() - started

    def backward(self, model, *grad_outputs):
        """``model.backward(*grad_outputs)`` followed by the gradient average; returns dE/dinput.

        With ``overlap`` and a Sequential model, each bucket of the last layers' gradients
        starts its all-reduce as soon as their backward is done.
        """
        if self.size == 1:
            return model.backward(*grad_outputs)
        weight = self._weight()
        if weight != 1.0:  # scale dE/dy (new arrays), so that every gradient below, SyncBatchNorm's sums included, is weighted
            grad_outputs = tuple(g * weight for g in grad_outputs)
        plan = self._plan(model) if self.overlap else None
        if plan is None:
            grad_input = model.backward(*grad_outputs)
            self.after_backward(model, weighted=False)
            return grad_input
        return self._overlapped_backward(model, plan, grad_outputs)

    def _plan(self, model):
        """For a Sequential: [(child index, lo)] — after child i's backward, all-reduce grad[lo:hi)."""
        from .modules.containers import Sequential

        if not isinstance(model, Sequential) or len(model) < 2:
            return None
        flat = model.flat_parameters()
        key = (id(model), id(flat))
        if key in self._plans:
            return self._plans[key]
        where = {id(p): s for p, s in zip(flat.params, flat.slices)}
        ranges = []
        for child in model:
            slices = [where[id(p)] for p in child.parameters()]
            ranges.append((min(s.start for s in slices), max(s.stop for s in slices)) if slices else None)
        # the children's ranges must be disjoint and in order (no parameter shared across children)
        last_stop = 0
        for r in ranges:
            if r is not None:
                if r[0] < last_stop:
                    self._plans[key] = None
                    return None
                last_stop = r[1]
        itemsize = flat.grad.itemsize
        plan, hi, lo = [], flat.size, flat.size
        for i in range(len(ranges) - 1, -1, -1):
            if ranges[i] is not None:
                lo = ranges[i][0]
            if i == 0:
                lo = 0
            if hi > lo and ((hi - lo) * itemsize >= self.bucket_bytes or i == 0):
                plan.append((i, lo, hi))
                hi = lo
        self._plans[key] = plan
        return plan

    def _overlapped_backward(self, model, plan, grad_outputs):
        from .modules.base import add_error_context

        MPI = _mpi()
        flat = model.flat_parameters()
        grad = flat.grad
        starts = {i: (lo, hi) for i, lo, hi in plan}
        requests = []
        g = grad_outputs if len(grad_outputs) != 1 else grad_outputs[0]
        children = list(model)
        wait = 0.0
        i = len(children) - 1
        try:
            for i in range(len(children) - 1, -1, -1):
                g = children[i].backward(*g) if type(g) is tuple else children[i].backward(g)
                if i in starts:
                    lo, hi = starts[i]
                    piece = grad[lo:hi]
                    t = time.perf_counter()
                    requests.append(self.comm.Iallreduce(MPI.IN_PLACE, piece, op=MPI.SUM))
                    wait += time.perf_counter() - t
                elif requests:
                    t = time.perf_counter()
                    MPI.Request.Testall(requests)  # let MPI progress the outstanding reductions
                    wait += time.perf_counter() - t
        except Exception as exc:
            add_error_context(exc, model, model._names[i])
            raise
        t = time.perf_counter()
        _wait(requests, self.timeout, self.comm, "the gradient all-reduce")
        grad *= 1.0 / self.size
        self.comm_time += wait + time.perf_counter() - t
        return g

    # metrics ---------------------------------------------------------------------------
    def reduce_metrics(self, logs: dict, count=None) -> dict:
        """A copy of ``logs`` with every number replaced by its mean over ranks (weighted by ``count``).

        One Allreduce for the whole dict. Every rank must pass the same keys. Non-numeric
        values are kept as they are.
        """
        if self.size == 1:
            return dict(logs)
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
        values = np.array([float(logs[k]) for k in keys], dtype=np.float64)
        means = allreduce_mean(values, weight=1.0 if count is None else count, comm=self.comm)
        out = dict(logs)
        for k, v in zip(keys, means):
            out[k] = float(v)
        return out

    def allreduce_mean(self, value, weight=None):
        return allreduce_mean(value, weight, self.comm)

    def broadcast_bytes(self, data, root: int = 0) -> bytes:
        return broadcast_bytes(data, root, self.comm)

    def barrier(self) -> None:
        barrier(self.comm)


# faults ------------------------------------------------------------------------------------


def _report_and_abort(comm, exc_type, exc, tb, code=1):
    me = "?" if comm is None else comm.Get_rank()
    try:
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        detail = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
        print(f"gradlearn: rank {me} failed: {detail}", file=sys.stderr, flush=True)
    finally:
        if comm is not None and comm.Get_size() > 1:
            _let_the_launcher_forward_output()
            comm.Abort(code)


def _let_the_launcher_forward_output(seconds=0.5):
    """Pause before MPI_Abort: the launcher forwards a rank's stderr through its proxy,
    and the teardown that Abort starts could drop a message still on its way (about 1 run
    in 10 lost rank 0's deadline message in tests/test_distributed.py)."""
    time.sleep(seconds)


def install_excepthook(comm=None) -> None:
    """On an uncaught exception: print it and ``gradlearn: rank R failed: ...``, then MPI_Abort.

    Abort makes the launcher end every rank at once with a non-zero exit status, instead
    of the others waiting forever in their next collective. Idempotent; no-op on one process.
    """
    comm = get_comm(comm)
    if comm is None or comm.Get_size() == 1 or getattr(sys.excepthook, "_gradlearn", False):
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, SystemExit):
            return previous(exc_type, exc, tb)
        _report_and_abort(comm, exc_type, exc, tb)

    hook._gradlearn = True
    sys.excepthook = hook


def run_distributed(main, *args, comm=None, **kwargs):
    """Call ``main(*args, **kwargs)``; if it raises on any rank, report the rank and abort every rank.

    A ``SystemExit`` with a non-zero status counts as a failure too (the other ranks would
    otherwise wait for this one forever). Returns what ``main`` returns.
    """
    comm = get_comm(comm)
    try:
        return main(*args, **kwargs)
    except SystemExit as exc:
        if exc.code in (None, 0) or comm is None or comm.Get_size() == 1:
            raise
        _report_and_abort(comm, SystemExit, exc, exc.__traceback__, code=exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:
        if comm is None or comm.Get_size() == 1:
            raise
        _report_and_abort(comm, type(exc), exc, exc.__traceback__)


# the per-rank guard: python -m gradlearn.distributed script.py args ------------------------------

_USAGE = """usage: mpiexec -n N python -m gradlearn.distributed SCRIPT [ARGS...]
       mpiexec -n N python -m gradlearn.distributed -m MODULE [ARGS...]

Runs SCRIPT (or MODULE) as one MPI rank in a child process, with gradlearn's exception hook
installed (an uncaught exception prints 'gradlearn: rank R failed: ...' and aborts every
rank). If the child dies from a signal (SIGKILL, the out-of-memory killer), prints
'gradlearn: rank R failed: killed by signal NAME' and exits 128 + signal, so that mpiexec
ends the whole job."""


def _set_parent_death_signal():
    """Linux: the child is SIGKILLed when this guard dies (mpiexec cleaning up kills the guard)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _run_child():
    """Entry point of the child process: install the exception hook, then run the target as __main__."""
    import runpy

    argv = sys.argv[1:]
    if os.environ.get("GRADLEARN_RANK_GUARD") == "1":
        os.environ.pop("GRADLEARN_RANK_GUARD")
    if launched():
        install_excepthook()
    if argv[0] == "-m":
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")


def main(argv=None) -> int:
    """The guard: run the target in a child process and name this rank if a signal kills it."""
    import subprocess

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else 2
    me = next((os.environ[v] for v in _RANK_VARIABLES if v in os.environ), "0")
    command = [sys.executable, "-c", "from gradlearn.distributed import _run_child; _run_child()", *argv]
    preexec = _set_parent_death_signal if sys.platform.startswith("linux") else None
    child = subprocess.Popen(command, close_fds=False, preexec_fn=preexec)

    def forward(signum, frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:
            continue
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        print(f"gradlearn: rank {me} failed: killed by signal {name}", file=sys.stderr, flush=True)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main())
