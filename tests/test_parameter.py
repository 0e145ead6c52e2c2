"""The flat parameter vector: every .data and .grad a view into one of two arrays."""

import numpy as np
import pytest

import gradlearn as gl


def model():
    return gl.Sequential(gl.Linear(3, 4), gl.Tanh(), gl.Linear(4, 2))


def test_packing_makes_views_both_ways():
    net = model()
    before = {name: p.data.copy() for name, p in net.named_parameters()}
    flat = gl.pack_parameters(net)
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, before[name])  # packing keeps values
        assert np.shares_memory(p.data, flat.data) and np.shares_memory(p.grad, flat.grad)
    # writing the flat vector changes the module's weights ...
    flat.data[:] = 0.5
    assert np.all(net[0].weight.data == 0.5) and np.all(net[2].bias.data == 0.5)
    # ... and writing a weight changes the flat vector
    net[2].bias.data[1] = -7.0
    assert flat.data[flat.slice_of(net[2].bias)][1] == -7.0
    # backward accumulates into the flat gradient
    x = np.ones((5, 3), np.float32)
    net.zero_grad()
    y = net(x)
    net.backward(np.ones_like(y))
    assert np.abs(flat.grad).sum() > 0
    np.testing.assert_array_equal(flat.grad[flat.slice_of(net[0].weight)].reshape(4, 3), net[0].weight.grad)
    net.zero_grad()
    assert not flat.grad.any()


def test_packing_is_idempotent_and_keeps_references():
    net = model()
    flat = net.flat_parameters()
    weight = net[0].weight
    data_ref, grad_ref = weight.data, weight.grad
    again = gl.pack_parameters(net.parameters())
    assert again is flat
    assert weight.data is data_ref and weight.grad is grad_ref


def test_slices_are_aligned_and_gaps_are_zero():
    net = model()
    flat = net.flat_parameters()
    for s in flat.slices:
        assert s.start % 16 == 0
    mask = flat.mask(net.parameters())
    assert not flat.data[mask == 0].any()
    assert mask.sum() == sum(p.size for p in net.parameters())


def test_assigning_data_copies_into_the_flat_vector():
    net = model()
    flat = net.flat_parameters()
    net[0].bias.data = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(flat.data[flat.slice_of(net[0].bias)], np.arange(4))
    with pytest.raises(ValueError, match=r"packed parameter from \(4,\) to \(5,\)"):
        net[0].bias.data = np.zeros(5, np.float32)


def test_repacking_a_grown_model_supersedes_the_old_vector():
    body = model()
    old = body.flat_parameters()
    grown = gl.Sequential(body, gl.Linear(2, 1))
    new = grown.flat_parameters()
    assert new is not old and old.superseded
    with pytest.raises(RuntimeError, match="superseded"):
        old.check_current()
    new.data[:] = 1.0
    assert np.all(body[0].weight.data == 1.0)  # the model's parameters follow the new vector


def test_trainable_mask_excludes_frozen_parameters():
    net = model()
    net[0].weight.requires_grad = False
    flat = net.flat_parameters()
    mask = flat.trainable_mask()
    assert not mask[flat.slice_of(net[0].weight)].any()
    assert mask[flat.slice_of(net[0].bias)].all()


def test_frozen_parameter_gets_no_gradient():
    net = model()
    net[0].weight.requires_grad = False
    y = net(np.ones((2, 3), np.float32))
    net.backward(np.ones_like(y))
    assert not net[0].weight.grad.any() and net[0].bias.grad.any()


def test_mixed_dtypes_cannot_be_packed():
    a = gl.Parameter(np.zeros(3, np.float32))
    b = gl.Parameter(np.zeros(3, np.float64))
    with pytest.raises(TypeError, match="mixed dtypes"):
        gl.pack_parameters([a, b])


def test_parameter_rejects_non_float():
    with pytest.raises(TypeError, match="floating-point"):
        gl.Parameter(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="floating-point"):
        gl.Parameter(np.zeros(3, dtype=object))


def test_zero_grad_follows_structure_changes_and_copies():
    net = model()
    flat = net.flat_parameters()
    y = net(np.ones((2, 3), np.float32))
    net.backward(np.ones_like(y))
    clone = net.copy()
    clone.zero_grad()  # must clear the clone's own gradients, not the copied flat vector's
    assert not any(p.grad.any() for p in clone.parameters())
    assert flat.grad.any()  # the original is untouched
    net.append(gl.Linear(2, 2))  # a new layer after packing: zero_grad must still reach it
    net[3].weight.grad[...] = 1
    net.zero_grad()
    assert not net[3].weight.grad.any() and not flat.grad.any()


def test_a_transposed_parameter_keeps_its_shape_and_values_in_fortran_order():
    """Parameter(..., transposed=True) (Linear's weight) stores data.T C-contiguous: the
    same values and shape, its flat slice the rows of data.T, through packing, moves,
    casts, copies and checkpoints."""
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = gl.Parameter(values, transposed=True)
    assert p.shape == (3, 4) and p.data.flags.f_contiguous and p.grad.flags.f_contiguous
    np.testing.assert_array_equal(p.data, values)
    flat = gl.pack_parameters([p, gl.Parameter(np.ones(2, np.float32))])
    np.testing.assert_array_equal(flat.data[:12], values.T.ravel())
    assert p.data.flags.f_contiguous and np.shares_memory(p.data, flat.data) and np.shares_memory(p.grad, flat.grad)
    p.data[2, 1] = -1.0
    assert flat.data[1 * 3 + 2] == -1.0  # row 1 of data.T, column 2

    net = gl.Linear(400, 300, generator=np.random.default_rng(0))  # a large weight: transposed
    assert net.weight.transposed and net.weight.data.flags.f_contiguous
    state = net.state_dict()
    for moved in (net.copy(), net.copy().to(np.float64)):
        assert moved.weight.data.flags.f_contiguous
        np.testing.assert_array_equal(moved.weight.data, state["weight"])
    fresh = gl.Linear(400, 300, generator=np.random.default_rng(1))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.weight.data, state["weight"])
    assert fresh.weight.data.flags.f_contiguous and state["weight"].flags.c_contiguous


def test_a_transposed_parameter_reshaped_while_unpacked_stays_transposed():
    p = gl.Parameter(np.zeros((2, 3)), transposed=True)
    p.data = np.ones((4, 5))
    assert p.shape == p.grad.shape == (4, 5) and p.data.flags.f_contiguous and p.grad.flags.f_contiguous
    with pytest.raises(ValueError, match="a transposed parameter stays 2-D, got shape \\(20,\\)"):
        p.data = np.ones(20)
    with pytest.raises(ValueError, match="only a 2-D parameter can be stored transposed, got shape \\(3,\\)"):
        gl.Parameter(np.zeros(3), transposed=True)
