"""Checkpoint files: exact round trip, crash-safe writes, and clear errors on every kind of bad file.

Every failed load must leave the model and the optimizer exactly as they were; a fuzz test
throws 240 corrupted files (truncations, byte flips in the header and in the data, garbage)
at ``load_checkpoint`` and accepts only a CheckpointError or a load of exactly the saved data.
"""

import json
import os
import pickle

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.train.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint


def _model(seed, hidden=8):
    rng = np.random.default_rng(seed)
    return gl.Sequential(gl.Linear(2, hidden, generator=rng), gl.Tanh(), gl.Dropout(0.2, generator=rng), gl.Linear(hidden, 3, generator=rng))


def _trained(tmp_path, seed=0):
    """A model and Adam after a few steps, and a checkpoint of them written by the Trainer."""
    model = _model(seed)
    optimizer = gl.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, batch_size=8, callbacks=[gl.Checkpoint(tmp_path / "ckpt")])
    trainer.fit((x, y), epochs=2, verbose=0)
    path = gl.latest_checkpoint(tmp_path / "ckpt")
    return model, optimizer, path


def _snapshot(model, optimizer):
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    for k, v in optimizer.state_dict().items():
        state[f"opt/{k}"] = v.copy() if isinstance(v, np.ndarray) else json.dumps(v)
    state["generator"] = json.dumps(model[2].generator.bit_generator.state)
    return state


def _same(a, b):
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a
    )


def test_round_trip_restores_model_optimizer_and_generators_exactly(tmp_path):
    model, optimizer, path = _trained(tmp_path)
    target = _model(99)
    target_opt = gl.Adam(target.parameters(), lr=0.5)
    assert not np.array_equal(target[0].weight.data, model[0].weight.data)
    load_checkpoint(path, target, target_opt)
    for key, value in model.state_dict().items():
        assert np.array_equal(target.state_dict()[key], value), key
    saved, loaded = optimizer.state_dict(), target_opt.state_dict()
    assert saved["step"] == loaded["step"] == 10
    assert np.array_equal(saved["exp_avg_sq"], loaded["exp_avg_sq"])
    assert target_opt.param_groups[0]["lr"] == 0.01
    # the Dropout generator continues exactly where the saved one was
    assert np.array_equal(target[2].generator.random(5), model[2].generator.random(5))


def test_zero_dimensional_buffers_keep_their_shape(tmp_path):
    """BatchNorm's step count is a 0-d array: it is saved as shape () (a safetensors
    scalar), not (1,), so weights and checkpoints of a BatchNorm network load back."""
    def net():
        return gl.Sequential(gl.Conv2d(1, 2, 3), gl.BatchNorm2d(2))

    model = net()
    model(np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32))
    gl.save_weights(tmp_path / "w.safetensors", model)
    save_checkpoint(tmp_path / "c.safetensors", model)
    for load in (lambda m: gl.load_weights(tmp_path / "w.safetensors", m), lambda m: load_checkpoint(tmp_path / "c.safetensors", m)):
        target = net()
        load(target)
        assert target[1].num_batches_tracked.shape == () and int(target[1].num_batches_tracked) == 1
        for key, value in model.state_dict().items():
            assert np.array_equal(target.state_dict()[key], value), key


def test_file_is_plain_safetensors_with_state_dict_names_and_json_metadata(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    model, _, path = _trained(tmp_path)
    tensors = load_file(path)
    weights = {k: v for k, v in tensors.items() if "/" not in k}
    assert weights.keys() == model.state_dict().keys() == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert {"optimizer/exp_avg", "optimizer/exp_avg_sq"} <= tensors.keys()
    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
    assert set(metadata) == {"format", "state", "sha256"} and len(metadata["sha256"]) == 64
    state = json.loads(metadata["state"])
    assert state["extra"]["epoch"] == 2 and state["extra"]["global_step"] == 10
    assert state["optimizer"]["class"] == "Adam"
    assert state["generators"]["2.generator"]["bit_generator"] == "PCG64"
    assert "default_generator" in state and state["extra"]["data"]["kind"] == "arrays"


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, optimizer, path = _trained(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    load_checkpoint(path, _model(5), gl.Adam(_model(5).parameters()))


def test_crash_during_write_leaves_previous_checkpoint_whole(tmp_path, monkeypatch):
    model, optimizer, path = _trained(tmp_path)
    before = open(path, "rb").read()
    listing = sorted(os.listdir(os.path.dirname(path)))

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    model[0].weight.data[...] = 7.0
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, model, optimizer)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(os.path.dirname(path))) == listing  # no temporary file left
    read_checkpoint(path)


def test_stray_temporary_file_from_a_killed_write_is_ignored_and_cleaned(tmp_path):
    model, optimizer, path = _trained(tmp_path)
    directory = os.path.dirname(path)
    stray = os.path.join(directory, ".ckpt-0000000099.safetensors.abc.tmp")
    with open(stray, "wb") as f:
        f.write(b"half a file")
    assert gl.latest_checkpoint(directory) == path
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, callbacks=[gl.Checkpoint(directory)])
    assert trainer.resume(directory) == path
    trainer.fit((np.zeros((4, 2), np.float32), np.zeros(4, np.int64)), epochs=3, verbose=0)
    assert not os.path.exists(stray)


def test_keep_prunes_older_checkpoints(tmp_path):
    model = _model(0)
    trainer = gl.Trainer(model, "cross_entropy", gl.SGD(model.parameters(), lr=0.1), batch_size=4,
                         callbacks=[gl.Checkpoint(tmp_path, every_steps=2, keep=3)])
    trainer.fit((np.ones((12, 2), np.float32), np.zeros(12, np.int64)), epochs=3, verbose=0)
    assert [os.path.basename(p) for p in gl.list_checkpoints(tmp_path)] == [
        "ckpt-0000000004.safetensors", "ckpt-0000000006.safetensors", "ckpt-0000000008.safetensors"]


def _expect_error(path, match, tmp_path):
    model, optimizer = _model(42), None
    optimizer = gl.Adam(model.parameters())
    before = _snapshot(model, optimizer)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, model, optimizer)
    assert os.fspath(path) in str(info.value)
    assert _same(_snapshot(model, optimizer), before), "a failed load changed the model or optimizer"
    return str(info.value)


def test_truncated_file(tmp_path):
    _, _, path = _trained(tmp_path)
    blob = open(path, "rb").read()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(blob[: len(blob) - 10])
    _expect_error(bad, "truncated", tmp_path)
    bad.write_bytes(blob[:5])
    _expect_error(bad, "not a safetensors file", tmp_path)


def test_bit_flip_in_data_is_caught_by_the_digest(tmp_path):
    _, _, path = _trained(tmp_path)
    blob = bytearray(open(path, "rb").read())
    blob[-3] ^= 0x10  # inside the last tensor's bytes
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(blob))
    _expect_error(bad, "SHA-256 digest does not match", tmp_path)


def test_edited_metadata_is_caught_by_the_digest(tmp_path):
    _, _, path = _trained(tmp_path)
    blob = open(path, "rb").read()
    bad = tmp_path / "edited.safetensors"
    bad.write_bytes(blob.replace(b'\\"lr\\":0.01', b'\\"lr\\":0.09'))
    assert bad.read_bytes() != blob
    _expect_error(bad, "digest does not match", tmp_path)


def test_wrong_shape_and_wrong_keys(tmp_path):
    model = _model(0, hidden=16)
    path = save_checkpoint(tmp_path / "wide.safetensors", model)
    message = _expect_error(path, r"'0\.weight' has shape \(16, 2\), the model expects \(8, 2\)", tmp_path)
    assert "wide.safetensors" in message
    other = gl.Sequential(gl.Linear(2, 8), gl.Tanh(), gl.Dropout(0.2), gl.Linear(8, 3), gl.Tanh(), gl.Linear(3, 3))
    path = save_checkpoint(tmp_path / "deeper.safetensors", other)
    _expect_error(path, r"unexpected keys \['5\.weight', '5\.bias'\]", tmp_path)


def test_optimizer_of_another_kind_is_refused_before_anything_changes(tmp_path):
    model = _model(0)
    path = save_checkpoint(tmp_path / "sgd.safetensors", model, gl.SGD(model.parameters(), lr=0.1, momentum=0.9))
    _expect_error(path, "saved with a SGD optimizer, this optimizer is a Adam", tmp_path)


def test_not_a_safetensors_file(tmp_path):
    for name, content in [("text.safetensors", b"hello, this is not a checkpoint\n" * 4), ("empty.safetensors", b"")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        _expect_error(bad, "not a safetensors file", tmp_path)
    npz = tmp_path / "weights.npz"
    np.savez(npz, a=np.zeros(3))
    _expect_error(npz, "not a safetensors file", tmp_path)
    _expect_error(tmp_path / "missing.safetensors", "cannot be read", tmp_path)


def test_plain_safetensors_without_digest_is_refused_as_checkpoint_but_loads_as_weights(tmp_path):
    from safetensors.numpy import save_file

    source = _model(3)
    save_file(source.state_dict(), tmp_path / "plain.safetensors")
    _expect_error(tmp_path / "plain.safetensors", "not a gradlearn checkpoint", tmp_path)
    target = _model(4)
    gl.load_weights(tmp_path / "plain.safetensors", target)
    assert all(np.array_equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    gl.save_weights(tmp_path / "w.safetensors", source)
    gl.load_weights(tmp_path / "w.safetensors", _model(5))


def test_fuzz_corrupted_files_raise_or_load_exactly(tmp_path):
    _, _, path = _trained(tmp_path)
    blob = open(path, "rb").read()
    header_end = 8 + int.from_bytes(blob[:8], "little")
    reference = read_checkpoint(path)
    saved_weights = {k: reference.tensors[k].copy() for k in ("0.weight", "0.bias", "3.weight", "3.bias")}
    rng = np.random.default_rng(2024)
    model = _model(42)
    optimizer = gl.Adam(model.parameters())
    before = _snapshot(model, optimizer)
    bad = tmp_path / "fuzz.safetensors"
    outcomes = {"error": 0, "loaded": 0}
    trials = 240
    for trial in range(trials):
        kind = trial % 4
        if kind == 0:  # truncation at a random length
            data = blob[: int(rng.integers(0, len(blob)))]
        elif kind in (1, 2):  # 1-4 byte changes, in the header (kind 1) or anywhere (kind 2)
            data = bytearray(blob)
            for _ in range(int(rng.integers(1, 5))):
                where = int(rng.integers(0, header_end if kind == 1 else len(blob)))
                data[where] ^= int(rng.integers(1, 256))
            data = bytes(data)
        else:  # garbage, sometimes behind a plausible header length
            data = rng.bytes(int(rng.integers(0, 2 * len(blob))))
            if trial % 8 == 3 and len(data) >= 8:
                data = (len(data) - 8 - int(rng.integers(0, 64))).to_bytes(8, "little", signed=True)[:8] + data[8:]
        bad.write_bytes(data)
        try:
            load_checkpoint(bad, model, optimizer)
        except CheckpointError as exc:
            assert "fuzz.safetensors" in str(exc)
            assert _same(_snapshot(model, optimizer), before), f"trial {trial}: a failed load changed the model"
            outcomes["error"] += 1
        else:  # only a harmless change (JSON whitespace) may load, and then the data must be exact
            for key, value in saved_weights.items():
                assert np.array_equal(model.state_dict()[key], value), f"trial {trial}: loaded wrong data"
            outcomes["loaded"] += 1
            model.load_state_dict({k[6:]: v for k, v in before.items() if k.startswith("model/")})
            optimizer.load_state_dict(_model_optimizer_state(before))
            model[2].generator.bit_generator.state = json.loads(before["generator"])
    assert outcomes["error"] + outcomes["loaded"] == trials
    print(outcomes)
    assert outcomes["error"] >= trials - 5, outcomes


def _model_optimizer_state(snapshot):
    state = {}
    for k, v in snapshot.items():
        if k.startswith("opt/"):
            state[k[4:]] = v if isinstance(v, np.ndarray) else json.loads(v)
    return state
