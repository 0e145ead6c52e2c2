"""Callbacks: ProgressBar (terminal and log file), CSVLogger, EarlyStopping, DivergenceGuard, ordering."""

import csv
import io
import math
import os

import numpy as np
import pytest

import gradlearn as gl


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _setup(seed=0, lr=0.1, optimizer="sgd", hidden=16, n=64):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 2)) + 2.0 * y[:, None] - 1.0).astype(np.float32)
    model = gl.Sequential(gl.Linear(2, hidden, generator=rng), gl.Tanh(), gl.Linear(hidden, 2, generator=rng))
    opt = gl.SGD(model.parameters(), lr=lr) if optimizer == "sgd" else gl.Adam(model.parameters(), lr=lr)
    return model, opt, x, y.astype(np.int64)


def test_progress_bar_on_a_terminal_is_a_live_line_per_epoch():
    model, opt, x, y = _setup()
    stream = FakeTerminal()
    bar = gl.ProgressBar(stream, min_interval=0)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[bar], batch_size=16)
    trainer.fit((x, y), epochs=2, validation_data=(x, y))
    text = stream.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == ""  # one finished line per epoch
    updates = lines[0].split("\r")[1:]
    assert len(updates) == 5  # 4 batch updates, then the completed line
    assert updates[0].startswith("Epoch 1/2 [") and " 1/4 - loss " in updates[0] and "ETA" in updates[0]
    assert " - accuracy " in updates[0] and "samples/s" in updates[0]
    assert " 4/4 " in updates[3] and "ETA 0.0s" in updates[3]
    final = updates[-1].rstrip()
    assert "val_loss" in final and "val_accuracy" in final and "ETA" not in final
    assert lines[1].split("\r")[-1].startswith("Epoch 2/2 [=========================] 4/4 - ")


def test_progress_bar_in_a_log_file_writes_one_plain_line_per_epoch(tmp_path):
    model, opt, x, y = _setup()
    stream = io.StringIO()  # not a TTY
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[gl.ProgressBar(stream)], batch_size=16)
    history = trainer.fit((x, y), epochs=3, validation_data=(x, y))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("Epoch 1/3 - 4 batches - ")
    assert f"loss {history['loss'][0]:.4f}" in lines[0] and f"val_accuracy {history['val_accuracy'][0]:.4f}" in lines[0]
    assert lines[2].endswith("samples/s")


def test_verbose_adds_a_progress_bar_and_zero_is_silent(capsys):
    model, opt, x, y = _setup()
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, batch_size=32)
    trainer.fit((x, y), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    trainer.fit((x, y), epochs=1)
    assert capsys.readouterr().out.startswith("Epoch 1/1 - 2 batches")


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    model, opt, x, y = _setup()
    path = tmp_path / "log.csv"
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[gl.CSVLogger(path)], batch_size=16)
    history = trainer.fit((x, y), epochs=3, validation_data=(x, y), verbose=0)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_sec"]
    for key in ("loss", "accuracy", "val_loss", "lr"):
        assert [float(r[key]) for r in rows] == history[key]  # exact: written with repr


def _scripted_monitor(values, snapshots):
    """A callback that puts a scripted 'score' in the epoch logs and records the weights."""

    def on_epoch_end(epoch, logs):
        logs["score"] = values[epoch]
        snapshots.append(trainer_ref[0].model.state_dict())

    trainer_ref = []
    return gl.LambdaCallback(priority=-1, on_epoch_end=on_epoch_end), trainer_ref


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    model, opt, x, y = _setup()
    snapshots = []
    monitor, ref = _scripted_monitor([3.0, 1.0, 2.0, 1.5, 0.5, 0.1], snapshots)
    stopper = gl.EarlyStopping("score", patience=2, restore_best=True)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[stopper, monitor], batch_size=16)
    ref.append(trainer)
    history = trainer.fit((x, y), epochs=6, verbose=0)
    assert len(history) == 4 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and stopper.best == 1.0
    for key, value in snapshots[1].items():
        assert np.array_equal(model.state_dict()[key], value), key
    assert not np.array_equal(snapshots[3]["0.weight"], snapshots[1]["0.weight"])


def test_early_stopping_max_mode_min_delta_and_no_restore():
    model, opt, x, y = _setup()
    snapshots = []
    monitor, ref = _scripted_monitor([0.5, 0.6, 0.605, 0.61, 0.7], snapshots)
    stopper = gl.EarlyStopping("score", patience=2, min_delta=0.02, mode="max", restore_best=False)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[stopper, monitor], batch_size=16)
    ref.append(trainer)
    trainer.fit((x, y), epochs=5, verbose=0)
    assert stopper.best == 0.6 and stopper.stopped_epoch == 3
    assert np.array_equal(model.state_dict()["0.weight"], snapshots[3]["0.weight"])  # last weights kept


def test_early_stopping_names_the_missing_monitor():
    model, opt, x, y = _setup()
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[gl.EarlyStopping()])
    with pytest.raises(KeyError, match="pass validation_data to fit, or monitor='loss'"):
        trainer.fit((x, y), epochs=2, verbose=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_guard_on_an_absurd_learning_rate(tmp_path):
    model, opt, x, y = _setup(lr=1e4, hidden=64, n=256)
    checkpoint = gl.Checkpoint(tmp_path, every_steps=1, keep=None)
    # the user's order puts Checkpoint first: priorities still run the guard before it
    trainer = gl.Trainer(model, gl.MSELoss(), opt, metrics=(), callbacks=[checkpoint, gl.DivergenceGuard()], batch_size=8)
    targets = np.eye(2, dtype=np.float32)[y]
    with pytest.raises(gl.DivergenceError) as info:
        trainer.fit((x, targets), epochs=5, verbose=0)
    error = info.value
    message = str(error)
    assert f"at step {error.step}" in message and error.step == trainer.global_step
    assert "learning rate 10000" in message and error.lr == 1e4
    assert "lower the learning rate, e.g. by 10x (lr=1000)" in message
    assert "gl.gradcheck" in message and "NaN" in message
    assert not math.isfinite(error.loss) or error.loss > 10 * 0.1
    assert trainer.diverged
    # every checkpoint on disk is a healthy one, and the message names the newest
    saved = gl.list_checkpoints(tmp_path)
    assert saved and error.checkpoint == saved[-1] and repr(saved[-1]) in message
    # the step-(s-1) checkpoint held the weights whose loss, at step s, diverged: it was never written
    assert int(saved[-1][-22:-12]) == error.step - 2
    for path in saved:
        state = gl.read_checkpoint(path)
        assert all(np.isfinite(v).all() for v in state.tensors.values())
        assert all(math.isfinite(l) for l in state.extra["history"]["history"].get("loss", []))


def test_divergence_guard_ratio_test_and_no_false_alarm():
    guard = gl.DivergenceGuard(factor=10, window=5)

    class FakeTrainer:
        global_step, epoch, diverged, callbacks = 7, 0, False, []

        def current_lr(self):
            return 0.5

    guard.set_trainer(FakeTrainer())
    guard.on_train_begin()
    for i, loss in enumerate([1.0, 0.9, 0.8, 0.85, 0.7, 0.01, 0.02, 0.5, 5.0]):  # 0.5 after 0.01: not 10x the reference
        guard.on_batch_end(i, {"batch_loss": loss})
    with pytest.raises(gl.DivergenceError, match=r"the loss 12 is 14x its reference 0\.85.*learning rate 0\.5"):
        guard.on_batch_end(9, {"batch_loss": 12.0})
    with pytest.raises(gl.DivergenceError, match="the loss is inf"):
        guard.on_batch_end(10, {"batch_loss": float("inf")})


def test_checkpoint_refuses_a_non_finite_loss(tmp_path):
    model, opt, x, y = _setup()
    checkpoint = gl.Checkpoint(tmp_path)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=[checkpoint])
    checkpoint.set_trainer(trainer)
    with pytest.warns(UserWarning, match="not saving"):
        assert checkpoint.save(float("nan")) is None
    assert os.listdir(tmp_path) == []


def test_callbacks_run_by_priority_then_in_the_given_order():
    model, opt, x, y = _setup()
    calls = []
    cbs = [gl.LambdaCallback(priority=p, on_epoch_end=lambda e, logs, name=name: calls.append(name))
           for name, p in (("late", 100), ("a", 0), ("early", -100), ("b", 0))]
    gl.Trainer(model, gl.CrossEntropyLoss(), opt, callbacks=cbs).fit((x, y), epochs=1, verbose=0)
    assert calls == ["early", "a", "b", "late"]
    with pytest.raises(ValueError, match="unknown hook"):
        gl.LambdaCallback(on_epoch_finish=print)
