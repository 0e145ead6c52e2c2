"""Learning-rate schedules: sequences against torch.optim.lr_scheduler, composition, checkpoints."""

import json
import math
import warnings

import numpy as np
import pytest

import gradlearn as gl
from tests.conftest import assert_close

EPOCHS = 100
BASE_LRS = (0.1, 0.03)  # two param groups with different initial lrs


def our_optimizer(base_lrs=BASE_LRS):
    params = [gl.Parameter(np.zeros(3)), gl.Parameter(np.zeros(2))]
    return gl.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=base_lrs[0], momentum=0.9)


def torch_optimizer(torch, base_lrs=BASE_LRS):
    params = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=base_lrs[0], momentum=0.9)


def lr_sequence(optimizer, schedule, epochs=EPOCHS, metrics=None):
    """The lrs in effect during each epoch (read from the groups), stepping the schedule after each."""
    sequence = []
    for epoch in range(epochs):
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert schedule.get_last_lr() == pytest.approx(lrs, rel=1e-15)
        sequence.append(lrs)
        optimizer.step()
        if metrics is None:
            schedule.step()
        else:
            schedule.step(metrics[epoch])
    return np.array(sequence)


SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=30)),
    ("MultiStepLR", dict(milestones=[10, 25, 25, 60], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.95)),
    ("CosineAnnealingLR", dict(T_max=40)),  # past T_max the cosine rises again
    ("CosineAnnealingLR", dict(T_max=100, eta_min=0.001)),
]


@pytest.mark.parametrize("name,options", SCHEDULES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULES)])
def test_schedule_matches_torch(name, options):
    torch = pytest.importorskip("torch", reason="torch is the reference for the lr sequences")
    optimizer = our_optimizer()
    ours = lr_sequence(optimizer, getattr(gl, name)(optimizer, **options))
    reference_optimizer = torch_optimizer(torch)
    theirs = lr_sequence(reference_optimizer, getattr(torch.optim.lr_scheduler, name)(reference_optimizer, **options))
    assert_close(ours, theirs, 1e-13, name)
    assert len(np.unique(ours[:, 0])) > 2, "the schedule should change the lr"


def test_closed_forms_by_hand():
    optimizer = our_optimizer()
    lrs = lr_sequence(optimizer, gl.StepLR(optimizer, step_size=10, gamma=0.5), epochs=25)
    np.testing.assert_allclose(lrs[:, 0], [0.1] * 10 + [0.05] * 10 + [0.025] * 5, rtol=1e-15)
    optimizer = our_optimizer()
    lrs = lr_sequence(optimizer, gl.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.01), epochs=11)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)]
    np.testing.assert_allclose(lrs[:, 0], expected, rtol=1e-14)
    assert lrs[10, 0] == pytest.approx(0.01) and lrs[5, 0] == pytest.approx(0.055)


# linear warm-up, composed ------------------------------------------------------------------------
def test_linear_warmup_then_cosine_matches_torch_sequential_lr():
    torch = pytest.importorskip("torch", reason="torch is the reference for the lr sequences")
    warmup, start = 5, 0.1
    optimizer = our_optimizer()
    schedule = gl.LinearWarmup(optimizer, warmup, start_factor=start,
                               after=gl.CosineAnnealingLR(optimizer, T_max=EPOCHS - warmup, eta_min=1e-4))
    ours = lr_sequence(optimizer, schedule)
    reference = torch_optimizer(torch)
    scheduler = torch.optim.lr_scheduler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sequential = scheduler.SequentialLR(
            reference,
            [scheduler.LinearLR(reference, start_factor=start, total_iters=warmup),
             scheduler.CosineAnnealingLR(reference, T_max=EPOCHS - warmup, eta_min=1e-4)],
            milestones=[warmup],
        )
        theirs = lr_sequence(reference, sequential)
    assert_close(ours, theirs, 1e-13, "warm-up + cosine")
    # and by hand: linear from start*base to base, then the cosine from base
    base = BASE_LRS[0]
    np.testing.assert_allclose(ours[:warmup, 0], [base * (start + (1 - start) * e / warmup) for e in range(warmup)],
                               rtol=1e-15)
    length = EPOCHS - warmup
    cosine = [1e-4 + (base - 1e-4) * (1 + math.cos(math.pi * e / length)) / 2 for e in range(length)]
    np.testing.assert_allclose(ours[warmup:, 0], cosine, rtol=1e-14)


def test_linear_warmup_alone_matches_torch_linear_lr():
    torch = pytest.importorskip("torch", reason="torch is the reference for the lr sequences")
    optimizer = our_optimizer()
    ours = lr_sequence(optimizer, gl.LinearWarmup(optimizer, 8), epochs=20)
    reference = torch_optimizer(torch)
    theirs = lr_sequence(reference, torch.optim.lr_scheduler.LinearLR(reference, total_iters=8), epochs=20)
    assert_close(ours, theirs, 1e-14, "warm-up")
    np.testing.assert_allclose(ours[8:], [BASE_LRS] * 12, rtol=1e-15)


def test_linear_warmup_then_step_by_hand():
    optimizer = our_optimizer()
    schedule = gl.LinearWarmup(optimizer, 4, start_factor=0.25, after=gl.StepLR(optimizer, step_size=3, gamma=0.1))
    lrs = lr_sequence(optimizer, schedule, epochs=12)[:, 1]
    base = BASE_LRS[1]
    expected = [base * f for f in (0.25, 0.4375, 0.625, 0.8125)] + [base] * 3 + [base * 0.1] * 3 + [base * 0.01] * 2
    np.testing.assert_allclose(lrs, expected, rtol=1e-14)


def test_linear_warmup_then_plateau():
    optimizer = our_optimizer()
    plateau = gl.ReduceLROnPlateau(optimizer, patience=1, factor=0.5)
    schedule = gl.LinearWarmup(optimizer, 3, start_factor=0.5, after=plateau)
    base = BASE_LRS[0]
    seen = []
    for epoch in range(8):
        seen.append(optimizer.param_groups[0]["lr"])
        schedule.step(1.0)  # a metric that never improves after the first value the plateau sees
    # warm-up 0.5, 0.667, 0.833 of base; base from epoch 3; the plateau sees metrics from the call ending
    # the warm-up on: best=1.0 then 2 bad epochs (> patience 1) -> halve, twice more...
    assert seen[:4] == pytest.approx([base * 0.5, base * 2 / 3, base * 5 / 6, base])
    assert seen[4:] == pytest.approx([base, base * 0.5, base * 0.5, base * 0.25])
    with pytest.raises(ValueError, match="needs step\\(metric\\)"):
        schedule.step()


# ReduceLROnPlateau -----------------------------------------------------------------------------------
def scripted_metrics():
    """Improves, plateaus (tiny gains below the threshold), improves again, plateaus for good."""
    metrics = []
    value = 1.0
    for epoch in range(EPOCHS):
        if epoch < 15 or 40 <= epoch < 50:
            value *= 0.9  # clear improvement
        elif epoch < 40:
            value *= 1 - 5e-5  # improvement smaller than the 1e-4 relative threshold
        elif epoch % 7 == 0:
            value *= 0.999  # an occasional real improvement
        else:
            value *= 1.01  # worse
        metrics.append(value)
    return metrics


PLATEAU_CASES = [
    dict(),
    dict(patience=3, factor=0.5),
    dict(patience=2, cooldown=4, factor=0.5, min_lr=0.004),
    dict(patience=2, threshold=1e-6, factor=0.7),  # the tiny gains now count as improvements
    dict(patience=1, threshold=0.01, threshold_mode="abs", min_lr=[0.01, 0.0001]),
    dict(mode="max", patience=2, factor=0.5, cooldown=1),
    dict(mode="max", threshold_mode="abs", threshold=0.001, patience=0, min_lr=1e-3),
]


@pytest.mark.parametrize("options", PLATEAU_CASES, ids=[str(i) for i in range(len(PLATEAU_CASES))])
def test_reduce_lr_on_plateau_matches_torch(options):
    torch = pytest.importorskip("torch", reason="torch is the reference for the lr sequences")
    metrics = scripted_metrics()
    if options.get("mode") == "max":
        metrics = [-m for m in metrics]
    optimizer = our_optimizer()
    ours = lr_sequence(optimizer, gl.ReduceLROnPlateau(optimizer, **options), metrics=metrics)
    reference = torch_optimizer(torch)
    theirs = lr_sequence(reference, torch.optim.lr_scheduler.ReduceLROnPlateau(reference, **options), metrics=metrics)
    np.testing.assert_array_equal(ours, theirs)
    assert len(np.unique(ours[:, 0])) >= 2, "the scripted metrics should trigger a reduction"


def test_reduce_lr_on_plateau_by_hand():
    optimizer = our_optimizer(base_lrs=(1.0, 1.0))
    plateau = gl.ReduceLROnPlateau(optimizer, patience=2, cooldown=1, factor=0.5, min_lr=0.3)
    lrs = lr_sequence(optimizer, plateau, epochs=10, metrics=[5, 4, 4, 4, 4, 4, 4, 4, 4, 4])[:, 0]
    # after epoch 1's best, epochs 2, 3, 4 are bad: 3 > patience -> halve after epoch 4 (lr of epoch 5),
    # epoch 5 is cooldown, epochs 6, 7, 8 bad -> 0.25 floored at 0.3 (lr of epoch 9)
    np.testing.assert_array_equal(lrs, [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.3])


# checkpoints ----------------------------------------------------------------------------------------
def build_all(optimizer):
    return {
        "step": gl.StepLR(optimizer, step_size=4, gamma=0.5),
        "multistep": gl.MultiStepLR(optimizer, milestones=[3, 9], gamma=0.5),
        "exponential": gl.ExponentialLR(optimizer, gamma=0.9),
        "cosine": gl.CosineAnnealingLR(optimizer, T_max=12, eta_min=0.001),
        "warmup": gl.LinearWarmup(optimizer, 3, after=gl.CosineAnnealingLR(optimizer, T_max=10)),
        "plateau": gl.ReduceLROnPlateau(optimizer, patience=1, factor=0.5),
        "warmup-plateau": gl.LinearWarmup(optimizer, 2, after=gl.ReduceLROnPlateau(optimizer, patience=1)),
    }


@pytest.mark.parametrize("kind", list(build_all(our_optimizer())))
def test_schedule_state_dict_round_trip_through_json(kind):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85] * 3
    needs_metric = "plateau" in kind
    optimizer_a = our_optimizer()
    schedule_a = build_all(optimizer_a)[kind]
    for epoch in range(15):
        schedule_a.step(metrics[epoch]) if needs_metric else schedule_a.step()
    state = json.loads(json.dumps(schedule_a.state_dict()))  # JSON-serialisable values only
    optimizer_state = optimizer_a.state_dict()
    optimizer_b = our_optimizer()
    schedule_b = build_all(optimizer_b)[kind]
    optimizer_b.load_state_dict(optimizer_state)
    schedule_b.load_state_dict(state)
    assert schedule_b.get_last_lr() == schedule_a.get_last_lr()
    for epoch in range(15, 30):
        for s in (schedule_a, schedule_b):
            s.step(metrics[epoch]) if needs_metric else s.step()
        assert [g["lr"] for g in optimizer_b.param_groups] == [g["lr"] for g in optimizer_a.param_groups]


def test_schedule_bad_state_dicts_raise_and_change_nothing():
    optimizer = our_optimizer()
    schedule = gl.StepLR(optimizer, step_size=4)
    for _ in range(3):
        schedule.step()
    good = schedule.state_dict()
    with pytest.raises(TypeError, match="for a 'ExponentialLR' schedule, this is a StepLR"):
        schedule.load_state_dict(gl.ExponentialLR(our_optimizer(), gamma=0.5).state_dict())
    with pytest.raises(KeyError, match="missing keys \\['gamma'\\]"):
        schedule.load_state_dict({k: v for k, v in good.items() if k != "gamma"})
    with pytest.raises(KeyError, match="unexpected keys \\['T_max'\\]"):
        schedule.load_state_dict(dict(good, T_max=3))
    with pytest.raises(ValueError, match="'base_lrs' has 3 values, the optimizer has 2 param groups"):
        schedule.load_state_dict(dict(good, base_lrs=[0.1, 0.1, 0.1], last_epoch=50))
    assert schedule.state_dict() == good
    warmup = gl.LinearWarmup(optimizer, 3, after=gl.StepLR(optimizer, step_size=2))
    saved = warmup.state_dict()
    with pytest.raises(KeyError, match="missing keys \\['step_size'\\]"):
        warmup.load_state_dict(dict(saved, last_epoch=7, after={k: v for k, v in saved["after"].items()
                                                                 if k != "step_size"}))
    assert warmup.state_dict() == saved


def test_resume_with_last_epoch_needs_initial_lr():
    optimizer = our_optimizer()
    with pytest.raises(KeyError, match="has no 'initial_lr'"):
        gl.StepLR(optimizer, step_size=3, last_epoch=5)
    gl.StepLR(optimizer, step_size=3)
    resumed = gl.StepLR(optimizer, step_size=3, gamma=0.5, last_epoch=5)
    assert resumed.get_last_lr() == pytest.approx([b * 0.25 for b in BASE_LRS])


def test_invalid_schedule_options():
    optimizer = our_optimizer()
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        gl.StepLR(optimizer, step_size=0)
    with pytest.raises(ValueError, match="factor must be < 1"):
        gl.ReduceLROnPlateau(optimizer, factor=1.0)
    with pytest.raises(ValueError, match="expected 2 min_lr values"):
        gl.ReduceLROnPlateau(optimizer, min_lr=[0.1])
    with pytest.raises(ValueError, match="same optimizer"):
        gl.LinearWarmup(optimizer, 3, after=gl.StepLR(our_optimizer(), step_size=2))
    with pytest.raises(TypeError, match="expected an optimizer with param_groups"):
        gl.StepLR(object(), step_size=2)


def test_schedules_drive_the_optimizer_step():
    """The lr a schedule sets is the lr the next optimizer step uses (the per-element cache is refreshed)."""
    p = gl.Parameter(np.zeros(4))
    optimizer = gl.SGD([p], lr=1.0)
    schedule = gl.StepLR(optimizer, step_size=1, gamma=0.5)
    for epoch in range(3):
        p.grad[...] = 1.0
        before = p.data.copy()
        optimizer.step()
        np.testing.assert_array_equal(before - p.data, 0.5**epoch)
        schedule.step()


def test_scale_lr_for_batch():
    assert gl.scale_lr_for_batch(0.1, 256, 1024) == pytest.approx(0.4)
    assert gl.scale_lr_for_batch(0.1, 256, 64) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="batch sizes must be positive"):
        gl.scale_lr_for_batch(0.1, 0, 64)
