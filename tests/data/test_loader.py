"""DataLoader: batch sizes, shuffling, exact resumption, prefetch thread shutdown and errors."""

import json
import threading
import time

import numpy as np
import pytest

from gradlearn.data import Compose, DataError, DataLoader, Dataset, GaussianNoise, RandomCrop, RandomHorizontalFlip, Standardize


def _loader_threads():
    return [t for t in threading.enumerate() if t.name == "gradlearn-DataLoader" and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    assert _loader_threads() == [], "a DataLoader thread outlived its test"


def _images(n=23, seed=0):
    """x[i] is an 8x8 one-channel image whose pixels all start with the value i, so batches are traceable."""
    rng = np.random.default_rng(seed)
    x = (np.arange(n, dtype=np.float32)[:, None, None, None] + rng.random((n, 1, 8, 8), dtype=np.float32) * 0.5)
    return Dataset(x, np.arange(n), classes=None, name="images")


def _epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("drop_last, sizes", [(False, [5, 5, 5, 5, 3]), (True, [5, 5, 5, 5])])
def test_batch_sizes_and_coverage(prefetch, drop_last, sizes):
    data = _images()
    loader = DataLoader(data, batch_size=5, drop_last=drop_last, generator=np.random.default_rng(0), prefetch=prefetch)
    batches = _epoch(loader)
    assert len(loader) == len(sizes) and [len(y) for _, y in batches] == sizes
    seen = np.concatenate([y for _, y in batches])
    assert len(np.unique(seen)) == len(seen) == sum(sizes)  # each example at most once per epoch
    if not drop_last:
        np.testing.assert_array_equal(np.sort(seen), np.arange(23))
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (1, 8, 8)
        np.testing.assert_array_equal(np.floor(x[:, 0, 0, 0]), y)  # x and y gathered with the same indices


def test_shuffle_determinism_and_order():
    data = _images()
    a = DataLoader(data, 4, generator=np.random.default_rng(11))
    b = DataLoader(data, 4, generator=np.random.default_rng(11))
    first_a, first_b = _epoch(a), _epoch(b)
    _assert_same(first_a, first_b)
    second_a = _epoch(a)
    assert not np.array_equal(np.concatenate([y for _, y in first_a]), np.concatenate([y for _, y in second_a]))
    ordered = DataLoader(data, 4, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([y for _, y in _epoch(ordered)]), np.arange(23))
    with_seed = DataLoader(data, 4, generator=11)
    _assert_same(_epoch(with_seed), first_a)


def test_pairs_of_arrays_and_dtypes():
    x = np.arange(20, dtype=np.uint8).reshape(10, 2)
    y = np.linspace(0, 1, 10)  # float64 targets
    xb, yb = next(iter(DataLoader((x, y), 4, shuffle=False, prefetch=0)))
    assert xb.dtype == np.float32 and yb.dtype == np.float32
    np.testing.assert_array_equal(xb, x[:4])
    with pytest.raises(DataError, match="x has 10 examples but y has 9"):
        DataLoader((x, y[:9]), 4)
    with pytest.raises(DataError, match="batch_size must be a positive int"):
        DataLoader((x, y), 0)


def test_prefetch_does_not_change_the_batches():
    data = _images()
    augment = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), GaussianNoise(0.1)])
    runs = [_epoch(DataLoader(data, 4, generator=np.random.default_rng(5), transform=augment, prefetch=p)) for p in (0, 1, 3)]
    _assert_same(runs[0], runs[1])
    _assert_same(runs[0], runs[2])


def test_reused_buffers_give_the_same_batches():
    data = _images()
    fresh = _epoch(DataLoader(data, 4, generator=np.random.default_rng(2)))
    reused = _epoch(DataLoader(data, 4, generator=np.random.default_rng(2), reuse_buffers=True))
    _assert_same(fresh, reused)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("stop_after", [0, 3, 6])  # 6 = every batch of the epoch delivered
def test_resume_gives_exactly_the_uninterrupted_batches(prefetch, stop_after):
    data = _images()
    augment = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), GaussianNoise(0.05)])

    def make(seed):
        return DataLoader(data, 4, generator=np.random.default_rng(seed), transform=augment, prefetch=prefetch)

    reference = make(3)
    expected = [_epoch(reference) for _ in range(3)]  # three uninterrupted epochs

    interrupted = make(3)
    _epoch(interrupted)  # epoch 1
    got = []
    if stop_after:
        for x, y in interrupted:  # epoch 2, interrupted after training on `stop_after` batches
            got.append((x.copy(), y.copy()))
            if len(got) == stop_after:
                break
    state = json.loads(json.dumps(interrupted.state_dict()))  # must survive JSON
    assert state["batches_delivered"] == (stop_after % 6)

    resumed = make(999)  # another seed: everything must come from the state
    resumed.load_state_dict(state)
    got += _epoch(resumed)  # the rest of epoch 2 (or, when it was complete, epoch 3)
    if len(got) == 6:
        got += _epoch(resumed)
    _assert_same(got, expected[1] + expected[2])


def test_state_between_epochs_and_validation():
    data = _images()
    loader = DataLoader(data, 4, generator=np.random.default_rng(1))
    state = loader.state_dict()
    assert state["batches_delivered"] == 0 and state["num_examples"] == 23
    first = _epoch(loader)
    other = DataLoader(data, 4, generator=np.random.default_rng(7))
    other.load_state_dict(state)
    _assert_same(_epoch(other), first)
    with pytest.raises(DataError, match="batch_size=4, this loader batch_size=5"):
        DataLoader(data, 5).load_state_dict(state)


@pytest.mark.parametrize("prefetch", [1, 4])
def test_early_break_stops_the_thread(prefetch):
    data = _images(200)
    slow = lambda x, y: (time.sleep(0.002) or x, y)  # noqa: E731
    loader = DataLoader(data, 2, transform=slow, prefetch=prefetch)
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert _loader_threads() == []
    assert time.perf_counter() - start < 5
    # an explicit iterator dropped half-way, then a new epoch
    iterator = iter(loader)
    next(iterator)
    assert len(_loader_threads()) == 1
    del iterator
    assert _loader_threads() == []
    assert len(_epoch(loader)) == 100


def test_new_iteration_closes_the_previous_one():
    loader = DataLoader(_images(), 2)
    first = iter(loader)
    next(first)
    second = iter(loader)
    next(second)
    assert len(_loader_threads()) == 1
    with pytest.raises(StopIteration):
        next(first)
    del second


def test_worker_errors_reach_the_consumer():
    def explode(x, y):
        if y[0] == 3:
            raise ValueError("bad batch starting at example 3")
        return x, y

    loader = DataLoader(_images(), 3, shuffle=False, transform=explode, prefetch=2)
    received = []
    with pytest.raises(ValueError, match="bad batch starting at example 3"):
        for _, y in loader:
            received.append(y[0])
    assert received == [0]


def test_evaluation_loader_with_standardize_only():
    data = _images()
    norm = Standardize.fit(data.x)
    x, _ = next(iter(DataLoader(data, 23, shuffle=False, transform=norm)))
    np.testing.assert_allclose(x, (data.x - norm.mean) / norm.std, rtol=1e-5, atol=1e-6)
    assert abs(float(x.mean())) < 1e-5
