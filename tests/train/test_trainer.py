"""The Trainer: fit / evaluate / predict, History, data forms, schedules, and in-process exact resume."""

import os

import numpy as np
import pytest

import gradlearn as gl


def _mlp(seed, sizes=(2, 16, 2), dropout=0.0):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(gl.Linear(a, b, generator=rng))
        if i < len(sizes) - 2:
            layers.append(gl.Tanh())
            if dropout:
                layers.append(gl.Dropout(dropout, generator=rng))
    return gl.Sequential(*layers)


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 2)) + 2.0 * y[:, None] - 1.0).astype(np.float32)
    return x, y.astype(np.int64)


def test_two_spirals_reach_100_percent_training_accuracy(tmp_path):
    train, _ = gl.data.two_spirals(n=200, noise=0.0, n_test=2, generator=0)
    model = _mlp(0, (2, 64, 64, 2))
    optimizer = gl.Adam(model.parameters(), lr=0.01)
    stopper = gl.EarlyStopping("val_accuracy", patience=40, restore_best=True)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, metrics=["accuracy"], batch_size=32,
                         callbacks=[stopper, gl.Checkpoint(tmp_path, every=5, keep=2), gl.DivergenceGuard()])
    # validating on the training set measures the exact training accuracy after each epoch
    history = trainer.fit((train.x, train.y), epochs=400, validation_data=(train.x, train.y), verbose=0)
    assert stopper.stopped_epoch is not None and len(history) < 400, "EarlyStopping never stopped the run"
    assert stopper.best == 1.0
    assert trainer.evaluate((train.x, train.y))["accuracy"] == 1.0  # the restored best weights
    assert np.array_equal(trainer.predict(train.x).argmax(axis=1), train.y)
    assert len(gl.list_checkpoints(tmp_path)) == 2


def test_history_fields_and_csv(tmp_path):
    x, y = _blobs()
    model = _mlp(1)
    optimizer = gl.SGD(model.parameters(), lr=0.2)
    schedule = gl.StepLR(optimizer, step_size=2, gamma=0.1)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, metrics=("accuracy", "top1"), schedule=schedule, batch_size=16)
    history = trainer.fit((x, y), epochs=3, validation_data=(x[:32], y[:32]), verbose=0)
    assert isinstance(history, gl.History) and history is trainer.history
    assert list(history.history) == ["loss", "accuracy", "top1", "val_loss", "val_accuracy", "val_top1", "lr", "time", "samples_per_sec"]
    assert history.epoch == [0, 1, 2] and all(len(v) == 3 for v in history.history.values())
    assert history["lr"] == pytest.approx([0.2, 0.2, 0.02])
    assert all(t > 0 for t in history["time"]) and all(s > 0 for s in history["samples_per_sec"])
    assert history["samples_per_sec"][0] == pytest.approx(96 / history["time"][0])
    assert history["accuracy"] == history["top1"]
    assert history["val_loss"][-1] == pytest.approx(trainer.evaluate((x[:32], y[:32]))["loss"], rel=1e-6)
    assert history.last()["loss"] == history["loss"][-1]
    history.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,top1,val_loss,val_accuracy,val_top1,lr,time,samples_per_sec"
    assert len(lines) == 4 and float(lines[3].split(",")[1]) == history["loss"][2]


def test_epoch_loss_is_the_size_weighted_mean_of_batch_losses():
    x, y = _blobs(50)
    model = _mlp(2)
    seen = []
    recorder = gl.LambdaCallback(on_batch_end=lambda step, logs: seen.append((logs["batch_loss"], logs["size"])))
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.1), batch_size=16, callbacks=[recorder])
    history = trainer.fit((x, y), epochs=1, verbose=0)
    assert [n for _, n in seen] == [16, 16, 16, 2]
    assert history["loss"][0] == pytest.approx(sum(l * n for l, n in seen) / 50, rel=1e-12)


def test_a_training_step_matches_the_hand_written_loop():
    x, y = _blobs(32)
    model, reference = _mlp(3), _mlp(3)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.5), batch_size=32)
    trainer.fit((x, y), epochs=2, verbose=0, shuffle=False)
    loss = gl.CrossEntropyLoss()
    flat = reference.flat_parameters()
    for _ in range(2):
        reference.zero_grad()
        loss(reference(x), y)
        reference.backward(loss.backward())
        flat.data -= np.float32(0.5) * flat.grad
    assert np.allclose(model.flat_parameters().data, flat.data, rtol=0, atol=1e-6)


def test_evaluate_and_predict_run_in_eval_mode_and_restore_the_mode():
    x, y = _blobs(40)
    model = _mlp(4, (2, 32, 2), dropout=0.5)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.1), batch_size=16)
    first, second = trainer.evaluate((x, y)), trainer.evaluate((x, y))
    assert first == second  # no dropout masks drawn
    assert set(first) == {"loss", "accuracy"} and model.training
    predicted = trainer.predict(x, batch_size=7)
    model.eval()
    assert np.allclose(predicted, model(x), atol=1e-6) and predicted.shape == (40, 2)


def test_dataloader_and_plain_iterables_are_accepted():
    x, y = _blobs(64)
    model = _mlp(5)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.Adam(model.parameters(), lr=0.05), batch_size=16)
    loader = gl.data.DataLoader((x, y), batch_size=16, generator=np.random.default_rng(0), prefetch=0)
    history = trainer.fit(loader, epochs=2, validation_data=loader, verbose=0)
    assert trainer.steps_per_epoch == 4 and len(history) == 2
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    history = trainer.fit(batches, epochs=2, verbose=0)
    assert trainer.global_step == 8 and history["loss"][-1] < history["loss"][0] + 0.5
    with pytest.raises(TypeError, match="one-shot iterator"):
        trainer.fit((b for b in batches), epochs=1, verbose=0)


def test_reduce_lr_on_plateau_gets_the_validation_loss():
    x, y = _blobs(32)
    model = _mlp(6)
    optimizer = gl.SGD(model.parameters(), lr=1e-6)  # nothing improves by the 1e-4 threshold
    schedule = gl.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, schedule=schedule, batch_size=32)
    history = trainer.fit((x, y), epochs=4, validation_data=(x, y), verbose=0)
    assert history["lr"] == pytest.approx([1e-6, 1e-6, 5e-7, 2.5e-7])

    class Recorder:
        def __init__(self):
            self.seen = []

        def step(self, metric):
            self.seen.append(metric)

        def state_dict(self):
            return {"seen": self.seen}

        def load_state_dict(self, state):
            self.seen = list(state["seen"])

    recorder = Recorder()
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, schedule=recorder, batch_size=32)
    history = trainer.fit((x, y), epochs=2, validation_data=(x[:8], y[:8]), verbose=0)
    assert recorder.seen == history["val_loss"]


def test_stop_training_from_a_batch_callback_drops_the_partial_epoch():
    x, y = _blobs(64)
    model = _mlp(7)

    def stop(step, logs):
        if trainer.global_step == 6:
            trainer.stop_training = True

    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.1), batch_size=16,
                         callbacks=[gl.LambdaCallback(on_batch_end=stop)])
    history = trainer.fit((x, y), epochs=5, verbose=0)
    assert trainer.global_step == 6 and history.epoch == [0]


def test_metric_names_and_bad_arguments():
    model = _mlp(8)
    sgd = gl.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="unknown metric 'precision'"):
        gl.Trainer(model, gl.CrossEntropyLoss(), sgd, metrics=["precision"])
    with pytest.raises(ValueError, match="unknown loss"):
        gl.Trainer(model, "hinge?", sgd)
    with pytest.raises(TypeError, match="Callback objects"):
        gl.Trainer(model, "mse", sgd, callbacks=[print])
    trainer = gl.Trainer(model, "cross_entropy", sgd, metrics=["accuracy", "top5", "mse"])
    assert trainer.metric_names == ["accuracy", "top5", "mse"]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("data_kind", ["arrays", "loader", "list"])
def test_resume_in_process_after_a_crash_is_exact(tmp_path, data_kind):
    """A crash at step 11 (epoch 2, batch 4 of 6), resumed from the checkpoint of step 10."""
    x, y = _blobs(90, seed=3)

    def build(directory, crash_at=None):
        gl.manual_seed(0)
        model = _mlp(9, (2, 24, 24, 2), dropout=0.25)
        optimizer = gl.Adam(model.parameters(), lr=0.02)
        schedule = gl.ExponentialLR(optimizer, gamma=0.7)

        def crash(step, logs):
            if crash_at is not None and trainer.global_step == crash_at:
                raise _Crash()

        callbacks = [gl.Checkpoint(directory, every_steps=5), gl.LambdaCallback(on_batch_end=crash),
                     gl.EarlyStopping("val_loss", patience=50), gl.DivergenceGuard()]
        trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, callbacks=callbacks, schedule=schedule, batch_size=16, seed=1)
        if data_kind == "arrays":
            data = (x, y)
        elif data_kind == "loader":
            data = gl.data.DataLoader((x, y), batch_size=16, generator=np.random.default_rng(2), prefetch=1)
        else:
            data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 90, 16)]
        return trainer, data

    trainer, data = build(tmp_path / "a")
    full = trainer.fit(data, epochs=3, validation_data=(x, y), verbose=0)
    expected = trainer.model.flat_parameters().data.copy()

    trainer, data = build(tmp_path / "b", crash_at=11)
    with pytest.raises(_Crash):
        trainer.fit(data, epochs=3, validation_data=(x, y), verbose=0)
    trainer, data = build(tmp_path / "b")
    assert trainer.resume(tmp_path / "b").endswith("ckpt-0000000010.safetensors")
    assert (trainer.epoch, trainer.step, trainer.global_step) == (1, 4, 10)
    resumed = trainer.fit(data, epochs=3, validation_data=(x, y), verbose=0)
    assert np.array_equal(trainer.model.flat_parameters().data, expected)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert resumed[key] == full[key], key


def test_resume_skips_a_corrupt_newest_checkpoint_with_a_warning(tmp_path):
    x, y = _blobs(32)
    model = _mlp(10)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.1), batch_size=16,
                         callbacks=[gl.Checkpoint(tmp_path, every=1, keep=None)])
    trainer.fit((x, y), epochs=3, verbose=0)
    newest = gl.latest_checkpoint(tmp_path)
    with open(newest, "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(b"\xff\xff")
    fresh = gl.Trainer(_mlp(11), gl.CrossEntropyLoss(), gl.SGD(_mlp(11).parameters(), lr=0.1))
    model = fresh.model
    fresh.optimizer = gl.SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match="skipping an unusable checkpoint"):
        loaded = fresh.resume(tmp_path)
    assert loaded.endswith("ckpt-0000000004.safetensors") and fresh.epoch == 2
    assert fresh.resume(tmp_path / "nothing-here", missing_ok=True) is None
    with pytest.raises(FileNotFoundError):
        fresh.resume(tmp_path / "nothing-here")
