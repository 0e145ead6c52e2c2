"""Metrics: the functions against scikit-learn / hand counts, and the accumulators against the functions."""

import numpy as np
import pytest

from gradlearn.train import metrics as M


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    prediction = rng.standard_normal((200, 7)).astype(np.float32)
    target = rng.integers(0, 7, 200)
    return prediction, target


def test_accuracy_by_hand_and_target_forms():
    prediction = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
    target = np.array([1, 0, 0, 1])
    assert M.accuracy(prediction, target) == 0.5
    assert M.accuracy(prediction, np.eye(2, dtype=np.float32)[target]) == 0.5  # one-hot targets
    single = np.array([[0.9], [0.2], [0.7], [0.4]], np.float32)  # one sigmoid output per sample
    assert M.accuracy(single, np.array([1, 0, 0, 0])) == 0.75
    assert M.accuracy(np.array([2.0, -1.0]), np.array([1, 0]), threshold=0.0) == 1.0
    with pytest.raises(ValueError, match="expected 4 targets"):
        M.accuracy(prediction, target[:3])


def test_top_k_accuracy_against_scikit_learn(scores):
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference")
    prediction, target = scores
    for k in (1, 3, 5):
        expected = sklearn_metrics.top_k_accuracy_score(target, prediction, k=k, labels=np.arange(7))
        assert M.top_k_accuracy(prediction, target, k) == pytest.approx(expected, abs=1e-12)
    assert M.top_k_accuracy(prediction, target, 1) == M.accuracy(prediction, target)
    assert M.top_k_accuracy(prediction, target, 7) == 1.0


def test_confusion_matrix_against_scikit_learn(scores):
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference")
    prediction, target = scores
    matrix = M.confusion_matrix(prediction, target)
    expected = sklearn_metrics.confusion_matrix(target, prediction.argmax(1), labels=np.arange(7))
    assert matrix.dtype == np.int64 and np.array_equal(matrix, expected)
    assert np.trace(matrix) / matrix.sum() == M.accuracy(prediction, target)
    small = M.confusion_matrix(np.array([[1.0, 0], [0, 1], [0, 1]]), np.array([0, 0, 1]))
    assert small.tolist() == [[1, 1], [0, 1]]


def test_mean_squared_error():
    prediction = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    target = np.array([[1.0, 0.0], [0.0, 4.0]], np.float32)
    assert M.mean_squared_error(prediction, target) == (4 + 9) / 4


def test_accumulators_over_batches_equal_the_whole_set(scores):
    prediction, target = scores
    onehot = np.eye(7, dtype=np.float32)[target]
    for metric, whole in [
        (M.get_metric("accuracy"), M.accuracy(prediction, target)),
        (M.get_metric("top3"), M.top_k_accuracy(prediction, target, 3)),
        (M.get_metric("mse"), None),
        (M.get_metric(lambda p, t: float((p.argmax(1) == t).mean())), M.accuracy(prediction, target)),
    ]:
        metric.reset()
        for i in range(0, 200, 64):  # uneven last batch
            t = onehot[i : i + 64] if metric.name == "mse" else target[i : i + 64]
            metric.update(prediction[i : i + 64], t)
        if whole is None:
            whole = M.mean_squared_error(prediction, onehot)
        assert metric.result() == pytest.approx(whole, rel=1e-12), metric.name
    assert M.get_metric("top5").name == "top5" and M.get_metric("acc").name == "accuracy"
    assert M.get_metric("mse").mode == "min" and M.get_metric("accuracy").mode == "max"
    with pytest.raises(ValueError, match="unknown metric"):
        M.get_metric("f1")
