"""Conv2d and ZeroPad2d beyond the registry: shapes, repr, errors, init, both input-gradient
algorithms, float32 end to end, and returned arrays that stay intact."""

import math

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled
from gradlearn.modules import conv as conv_module

from gradlearn import parallel

from ..conftest import assert_close, needs_compiled, to_channels_last


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")


def test_repr_is_short_and_lists_non_defaults():
    assert repr(gl.Conv2d(6, 16, 5)) == "Conv2d(6 -> 16, 5x5)"
    assert repr(gl.Conv2d(3, 8, 3, stride=2, padding=1)) == "Conv2d(3 -> 8, 3x3, stride=2, padding=1)"
    assert (
        repr(gl.Conv2d(4, 4, (3, 1), padding="same", dilation=2, groups=4, bias=False))
        == "Conv2d(4 -> 4, 3x1, padding='same', dilation=2, groups=4, bias=False)"
    )
    assert repr(gl.Conv2d(2, 2, 3, stride=(2, 1))) == "Conv2d(2 -> 2, 3x3, stride=(2, 1))"
    assert repr(gl.ZeroPad2d((1, 2, 0, 3))) == "ZeroPad2d((1, 2, 0, 3))"


def test_parameters_shapes_names_and_init_bounds():
    conv = gl.Conv2d(6, 16, (5, 3), groups=2, generator=0)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (16, 3, 5, 3) and conv.bias.shape == (16,)
    assert conv.weight.dtype == np.float32
    bound = 1 / math.sqrt(3 * 5 * 3)
    for p in (conv.weight.data, conv.bias.data):
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.8 * bound  # uniform over the whole range
    # the uniform's standard deviation bound / sqrt(3), within sampling error (720 weights)
    assert abs(conv.weight.data.std() - bound / math.sqrt(3)) < 0.1 * bound
    again = gl.Conv2d(6, 16, (5, 3), groups=2, generator=0)
    np.testing.assert_array_equal(conv.weight.data, again.weight.data)
    assert gl.Conv2d(2, 3, 3, bias=False).bias is None
    assert gl.Conv2d(2, 3, 3, dtype=np.float64).weight.dtype == np.float64


@pytest.mark.parametrize("kernel, dilation", [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), ((2, 5), (3, 1)), (4, 3)])
def test_same_padding_keeps_the_size(kernel, dilation):
    conv = gl.Conv2d(2, 3, kernel, padding="same", dilation=dilation, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    y = conv(x)
    assert y.shape == (2, 3, 7, 6)
    assert conv.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_is_asymmetric_like_torch():
    torch = _torch()
    ref = torch.nn.Conv2d(1, 1, (2, 4), padding="same", bias=False).double()
    conv = gl.Conv2d(1, 1, (2, 4), padding="same", bias=False, dtype=np.float64)
    conv.load_state_dict(ref.state_dict())
    assert conv._pads == (0, 1, 1, 2)  # top, bottom, left, right: the extra on the bottom/right
    x = np.random.default_rng(1).standard_normal((1, 1, 5, 6))
    expected = ref(torch.tensor(x)).detach().numpy()
    assert_close(conv(x), expected, 1e-12, "same padding")


def test_output_size_formula():
    conv = gl.Conv2d(1, 1, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1))
    y = conv(np.zeros((1, 1, 10, 11), np.float32))
    # floor((H + 2p - d(k-1) - 1) / s) + 1
    assert y.shape == (1, 1, (10 + 2 - 4 - 1) // 2 + 1, (11 + 4 - 1 - 1) // 3 + 1)
    assert gl.Conv2d(1, 1, 3, padding="valid")(np.zeros((1, 1, 5, 4), np.float32)).shape == (1, 1, 3, 2)


@pytest.mark.parametrize(
    "args",
    [
        dict(in_channels=8, out_channels=8, kernel_size=3, padding=1),
        dict(in_channels=6, out_channels=4, kernel_size=(3, 5), padding="same", dilation=(2, 1), groups=2),
        dict(in_channels=4, out_channels=4, kernel_size=3, groups=4),
    ],
)
def test_both_input_gradient_algorithms_agree(args):
    rng = np.random.default_rng(2)
    a = gl.Conv2d(**args, dtype=np.float64, generator=3)
    b = gl.Conv2d(**args, dtype=np.float64, generator=3)
    a.input_grad_method, b.input_grad_method = "col2im", "transposed"
    x = rng.standard_normal((3, args["in_channels"], 9, 8))
    ya, yb = a(x), b(x)
    np.testing.assert_array_equal(ya, yb)
    g = rng.standard_normal(ya.shape)
    assert_close(a.backward(g), b.backward(g), 1e-13, "grad input")


@pytest.mark.parametrize("args", [dict(in_channels=1, out_channels=6, kernel_size=5, padding=2), dict(in_channels=4, out_channels=6, kernel_size=3, groups=2)])
def test_kept_columns_give_the_recomputed_weight_gradient(args, monkeypatch):
    """In training mode the channel-major forward keeps its columns for the weight
    gradient; in evaluation mode, or above the size limit, the backward rebuilds them."""
    monkeypatch.setattr(compiled, "available", lambda: False)  # one input channel: im2col, not direct
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, args["in_channels"], 10, 9))
    results = []
    for mode in ("kept", "eval", "over the limit"):
        conv = gl.Conv2d(**args, dtype=np.float64, generator=3)
        if mode == "eval":
            conv.eval()
        if mode == "over the limit":
            monkeypatch.setattr(conv_module, "_KEEP_COLUMNS_BYTES", 0)
        y = conv(x)
        assert (conv._kept_columns is not None) == (mode == "kept")
        conv.backward(np.cos(y))
        results.append((conv.weight.grad.copy(), conv.bias.grad.copy()))
    for dw, db in results[1:]:
        assert_close(dw, results[0][0], 1e-13, "weight gradient")
        assert_close(db, results[0][1], 1e-13, "bias gradient")


def _assert_twin_agrees(twin, layer, x, y, g, grad_input, tol):
    """``twin`` (a fresh copy of ``layer`` taking another path), run forward on x and backward
    on dE/dy g twice, gives ``layer``'s output y, dE/dx and accumulated parameter gradients."""
    assert_close(y, twin(x), tol, "output")
    assert_close(grad_input, twin.backward(g), tol, "grad input")
    twin.backward(g)
    assert_close(layer.weight.grad, twin.weight.grad, tol, "weight gradient")
    if layer.bias is not None:
        assert_close(layer.bias.grad, twin.bias.grad, tol, "bias gradient")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize(
    "args, size",
    [
        (dict(out_channels=6, kernel_size=5, padding=2), (28, 28)),  # LeNet-5's first layer
        (dict(out_channels=3, kernel_size=(2, 3), padding="same"), (7, 6)),
        (dict(out_channels=2, kernel_size=3, padding=(0, 2), bias=False), (5, 4)),
        (dict(out_channels=4, kernel_size=1), (3, 5)),
    ],
)
def test_direct_one_channel_path_matches_im2col(args, size, dtype, tol, monkeypatch):
    """With the compiled kernels, a one-channel convolution (stride 1) runs the compiled direct kernels
    (gradlearn.compiled); they give what im2col gives: output, dE/dx, dE/dW, dE/db, with
    gradients accumulated over two backward calls."""
    needs_compiled()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 1) + size).astype(dtype)
    direct = gl.Conv2d(1, **args, dtype=dtype, generator=3)
    assert direct._direct(np)
    y = direct(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = [direct.backward(g), direct.backward(g)]
    monkeypatch.setattr(compiled, "available", lambda: False)
    im2col = gl.Conv2d(1, **args, dtype=dtype, generator=3)
    assert not im2col._direct(np)
    _assert_twin_agrees(im2col, direct, x, y, g, grads[1], tol)


def test_direct_path_is_only_for_one_channel_stride_one():
    needs_compiled()
    assert gl.Conv2d(1, 6, 5)._direct(np)
    for conv in (gl.Conv2d(2, 6, 5), gl.Conv2d(1, 6, 5, stride=2), gl.Conv2d(1, 6, 3, dilation=2), gl.Conv2d(1, 16, 3)):
        assert not conv._direct(np), conv


def test_direct_path_with_a_gradient_of_another_dtype_takes_im2col():
    """A float64 dE/dy into a float32 one-channel convolution: the kernels take one dtype,
    so its backward runs im2col, and gives what the float64 arithmetic gives."""
    needs_compiled()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 1, 8, 7)).astype(np.float32)
    conv = gl.Conv2d(1, 2, 3, padding=1, generator=3)
    g = rng.standard_normal(conv(x).shape)
    reference = gl.Conv2d(1, 2, 3, padding=1, dtype=np.float64, generator=3)
    reference.weight.data[...] = conv.weight.data
    reference.bias.data[...] = conv.bias.data
    reference(x.astype(np.float64))
    assert_close(conv.backward(g), reference.backward(g), 1e-6, "grad input")
    assert_close(conv.weight.grad, reference.weight.grad, 1e-5, "weight gradient")


def test_direct_path_skips_the_input_gradient_of_a_data_input():
    """As a network's first layer (skip_input_grad) the backward returns None and still
    gives the weight gradients."""
    needs_compiled()
    x = np.random.default_rng(8).standard_normal((4, 1, 9, 9))
    full = gl.Conv2d(1, 3, 3, dtype=np.float64, generator=3)
    first = gl.Conv2d(1, 3, 3, dtype=np.float64, generator=3).skip_input_grad()
    g = np.cos(full(x))
    first(x)
    assert full.backward(g) is not None and first.backward(g) is None
    assert_close(first.weight.grad, full.weight.grad, 1e-14, "weight gradient")
    assert_close(first.bias.grad, full.bias.grad, 1e-14, "bias gradient")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 3e-5)])
@pytest.mark.parametrize(
    "c_in, args, size, kernels",
    [
        (16, dict(out_channels=16, kernel_size=3, padding=1), (9, 10), {"conv_cl_forward", "conv_cl_weight_grad"}),
        # fewer input channels than a vector (with AVX-512: 16 floats, 8 doubles): dE/dx by the
        # wide-rows kernel (LeNet-5's second layer); see below
        (3, dict(out_channels=32, kernel_size=3, padding=1, bias=False), (8, 8), {"conv_cl_forward", "conv_cl_weight_grad"}),
        (6, dict(out_channels=16, kernel_size=5), (14, 14), {"conv_cl_forward", "conv_cl_weight_grad"}),
        # stride 2: dE/dx by the kernels' scatter, tap by tap
        (16, dict(out_channels=32, kernel_size=3, stride=2, padding=1), (9, 9),
         {"conv_cl_forward", "conv_cl_weight_grad", "conv_cl_input_grad"}),
        # 7 and 10 output channels: zero columns up to the vector width, dropped after
        (5, dict(out_channels=7, kernel_size=3, padding=2, dilation=2), (9, 7), {"conv_cl_forward", "conv_cl_weight_grad"}),
        (20, dict(out_channels=10, kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1)), (11, 9),
         {"conv_cl_forward", "conv_cl_weight_grad", "conv_cl_input_grad"}),
    ],
)
def test_blocked_kernels_match_the_gemm_path(c_in, args, size, kernels, dtype, tol, kernel_calls, monkeypatch):
    """With the compiled kernels, the pixel-major path computes its sums by the register-blocked
    kernels (conv_cl_forward: output, and dE/dx of stride 1 as the forward of the flipped
    kernel; conv_cl_weight_grad: dE/dW; conv_cl_input_grad: dE/dx of other strides) instead
    of im2col and GEMMs; both give the same output and gradients, accumulated over two
    backward calls, for any channel counts, stride, dilation and padding."""
    needs_compiled()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, c_in) + size).astype(dtype)
    blocked = gl.Conv2d(c_in, **args, dtype=dtype, generator=3)
    blocked.input_grad = True
    y = blocked(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = [blocked.backward(g), blocked.backward(g)]
    if c_in < compiled.LANES[np.dtype(dtype)] and blocked.stride == blocked.dilation == (1, 1):
        kernels = kernels | {"direct_conv_input_grad"}  # its stride-1 dE/dx: the wide-rows kernel
    assert set(kernel_calls) == kernels
    monkeypatch.setattr(conv_module, "_blocked", lambda xp, *dtypes: False)
    gemm = gl.Conv2d(c_in, **args, dtype=dtype, generator=3)
    gemm.input_grad = True
    _assert_twin_agrees(gemm, blocked, x, y, g, grads[1], tol)


@pytest.mark.parametrize(
    "c_in, args",
    [
        (16, dict(out_channels=16, kernel_size=3, padding=1)),
        (16, dict(out_channels=32, kernel_size=3, stride=2, padding=1, bias=False)),  # dE/dx by the scatter
        (20, dict(out_channels=10, kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1))),
    ],
)
def test_a_channels_last_input_shares_each_kernel_call_with_the_team(c_in, args, monkeypatch):
    """A channels-last input (the output of the layer before) runs whole, each blocked
    kernel's chunks of samples shared by the kernels' team instead of slices on the
    workers: one thread or two give the same bits (9 samples: chunks of 4, 4 and 1; the
    weight gradient's per-chunk partials added in chunk order), and the GEMM path's result."""
    needs_compiled()
    rng = np.random.default_rng(12)
    x = to_channels_last(rng.standard_normal((9, c_in, 10, 9)).astype(np.float32))
    layer = gl.Conv2d(c_in, **args, generator=4)
    layer.input_grad = True
    g = rng.standard_normal(layer(x).shape).astype(np.float32)

    def no_slices(*args, **kwargs):
        raise AssertionError("the layer split its batch over the Python workers")

    monkeypatch.setattr(parallel, "over_batch", no_slices)
    monkeypatch.setattr(parallel, "MIN_TEAM_WORK", 1)
    runs, helped = [], compiled.team_chunks_helped()
    for workers in [1] + [2] * 50:
        parallel.set_num_workers(workers)
        twin = layer.copy()
        y = twin(x)
        runs.append((y, twin.backward(g), twin.weight.grad.copy(), None if twin.bias is None else twin.bias.grad.copy()))
        if len(runs) >= 3 and compiled.team_chunks_helped() > helped:
            break
    parallel.set_num_workers(None)
    assert compiled.team_chunks_helped() > helped, "the helper never took a chunk: the comparison would prove nothing"
    for run in runs[1:]:
        for got, expected in zip(run, runs[0]):
            if expected is not None:
                np.testing.assert_array_equal(got, expected)
    monkeypatch.undo()  # over_batch back, for the GEMM path, which splits
    monkeypatch.setattr(conv_module, "_blocked", lambda xp, *dtypes: False)
    y, grad_input, dw, db = runs[0]
    layer.weight.grad[...] = dw
    if layer.bias is not None:
        layer.bias.grad[...] = db
    gemm = layer.copy()
    gemm.zero_grad()
    assert_close(y, gemm(x), 3e-5, "output")
    assert_close(grad_input, gemm.backward(g), 3e-5, "grad input")
    assert_close(dw, gemm.weight.grad, 3e-5, "weight gradient")
    if db is not None:
        assert_close(db, gemm.bias.grad, 3e-5, "bias gradient")


@pytest.mark.parametrize("channels", [1, 3, 8, 9, 16])  # up to 8 copied channel by channel, else in one copy
def test_nhwc_gives_the_channels_last_array_a_view_when_it_already_is(channels):
    x = np.random.default_rng(0).standard_normal((3, channels, 5, 4)).astype(np.float32)
    got = conv_module._nhwc(x, "test_nhwc")
    assert got.flags.c_contiguous and np.array_equal(got, x.transpose(0, 2, 3, 1))
    cl = to_channels_last(x)
    assert np.shares_memory(conv_module._nhwc(cl, "test_nhwc"), cl)


def test_blocked_kernels_leave_mixed_dtypes_to_the_gemm_path(kernel_calls):
    """A float64 dE/dy into a float32 layer: the kernels read one dtype, so the GEMMs run."""
    needs_compiled()
    conv = gl.Conv2d(16, 16, 3, padding=1, generator=0)
    conv.input_grad = True
    x = np.random.default_rng(0).standard_normal((2, 16, 6, 6)).astype(np.float32)
    y = conv(x)
    grad = conv.backward(np.ones(y.shape))
    assert set(kernel_calls) == {"conv_cl_forward"} and grad.dtype == np.float64
    reference = gl.Conv2d(16, 16, 3, padding=1, dtype=np.float64)
    reference.weight.data[...] = conv.weight.data
    reference.input_grad = True
    reference(x.astype(np.float64))
    assert_close(grad, reference.backward(np.ones(y.shape)), 1e-6, "grad input")


def test_auto_picks_transposed_only_when_it_applies():
    x = np.zeros((1, 4, 6, 6), np.float32)
    conv = gl.Conv2d(4, 4, 3, padding=1)
    assert conv._use_transposed(6, 6, 6, 6)
    assert not gl.Conv2d(1, 6, 5)._use_transposed(28, 28, 24, 24)  # out > in: col2im
    strided = gl.Conv2d(4, 2, 3, stride=2)
    assert not strided._use_transposed(6, 6, 2, 2)
    strided.input_grad_method = "transposed"
    strided(x)
    with pytest.raises(ValueError, match=r"Conv2d\(4 -> 2, 3x3, stride=2\)\.backward: input_grad_method='transposed' needs stride 1"):
        strided.backward(np.zeros((1, 2, 2, 2), np.float32))


def test_float32_end_to_end_and_matches_torch_lenet_shapes():
    torch = _torch()
    rng = np.random.default_rng(4)
    for c_in, c_out, k, size in [(1, 6, 5, 28), (6, 16, 5, 12), (8, 8, 3, 10)]:
        ref = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2 if c_in == c_out else 0)
        conv = gl.Conv2d(c_in, c_out, k, padding=k // 2 if c_in == c_out else 0)
        conv.load_state_dict(ref.state_dict())
        x = rng.standard_normal((5, c_in, size, size)).astype(np.float32)
        y = conv(x)
        tx = torch.tensor(x, requires_grad=True)
        ty = ref(tx)
        g = rng.standard_normal(y.shape).astype(np.float32)
        dx = conv.backward(g)
        ty.backward(torch.tensor(g))
        assert y.dtype == dx.dtype == conv.weight.grad.dtype == np.float32
        assert_close(y, ty.detach().numpy(), 1e-5, "output")
        assert_close(dx, tx.grad.numpy(), 1e-5, "grad input")
        assert_close(conv.weight.grad, ref.weight.grad.numpy(), 1e-5, "grad weight")
        assert_close(conv.bias.grad, ref.bias.grad.numpy(), 1e-5, "grad bias")


def test_returned_arrays_stay_intact_and_inputs_untouched():
    rng = np.random.default_rng(5)
    for conv in (gl.Conv2d(3, 3, 3, padding=1), gl.Conv2d(3, 4, 3, padding=1), gl.Conv2d(3, 3, 3)):
        x1 = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
        x2 = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
        keep_x1 = x1.copy()
        y1 = conv(x1)
        keep_y1 = y1.copy()
        g1 = rng.standard_normal(y1.shape).astype(np.float32)
        keep_g1 = g1.copy()
        dx1 = conv.backward(g1)
        keep_dx1 = dx1.copy()
        y2 = conv(x2)
        conv.backward(rng.standard_normal(y2.shape).astype(np.float32))
        np.testing.assert_array_equal(y1, keep_y1)
        np.testing.assert_array_equal(dx1, keep_dx1)
        np.testing.assert_array_equal(x1, keep_x1)
        np.testing.assert_array_equal(g1, keep_g1)


@pytest.mark.parametrize("channels", [3, 16])  # the channel-major and the pixel-major paths
def test_layers_whose_padded_copies_share_a_shape_do_not_share_borders(channels):
    """A 2x2 'same' convolution pads 7x7 by (0, 1), a 3x3 one 6x6 by (1, 1): both padded
    copies are 8x8. The zero border lives in reused scratch; once it was kept per shape
    only, and the first layer's last row of data became the second layer's top border."""
    rng = np.random.default_rng(8)
    same_even = gl.Conv2d(channels, 16, 2, padding="same", dtype=np.float64)
    padded_one = gl.Conv2d(channels, 16, 3, padding=1, dtype=np.float64)
    x_even = rng.standard_normal((2, channels, 7, 7))
    x_one = rng.standard_normal((2, channels, 6, 6))
    results = []
    for calls in ([padded_one], [same_even, padded_one]):
        for conv in calls:
            conv.input_grad = True
            x = x_even if conv is same_even else x_one
            y = conv(x)
            dx = conv.backward(np.ones(y.shape))
        results.append((y.copy(), dx.copy()))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])


def test_gradients_accumulate_and_frozen_weights_are_skipped():
    conv = gl.Conv2d(2, 3, 3, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((2, 2, 5, 5))
    g = np.ones((2, 3, 3, 3))
    conv(x)
    conv.backward(g)
    once = conv.weight.grad.copy()
    conv(x)
    conv.backward(g)
    np.testing.assert_allclose(conv.weight.grad, 2 * once)
    conv.zero_grad()
    conv.weight.requires_grad = False
    conv(x)
    conv.backward(g)
    assert not conv.weight.grad.any() and conv.bias.grad.any()


# errors ------------------------------------------------------------------------------------------


def test_channel_mismatch_names_module_and_shapes():
    conv = gl.Conv2d(6, 16, 5)
    with pytest.raises(ValueError) as info:
        conv(np.zeros((2, 3, 28, 28), np.float32))
    assert str(info.value) == "Conv2d(6 -> 16, 5x5).forward: expected 6 input channels, got 3 (input shape (2, 3, 28, 28))"
    net = gl.Sequential(gl.Conv2d(1, 3, 3), gl.Conv2d(6, 16, 5))
    with pytest.raises(ValueError, match=r"in Sequential\[1\] Conv2d\(6 -> 16, 5x5\)\.forward: expected 6 input channels, got 3"):
        net(np.zeros((2, 1, 28, 28), np.float32))


def test_input_smaller_than_kernel():
    with pytest.raises(ValueError, match=r"Conv2d\(1 -> 1, 5x5\)\.forward: input of 3x4 \(padded to 3x4\) is smaller than the kernel 5x5 \(input shape \(1, 1, 3, 4\)\)"):
        gl.Conv2d(1, 1, 5)(np.zeros((1, 1, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"padded to 6x6\) is smaller than the dilated kernel 7x7"):
        gl.Conv2d(1, 1, 3, padding=1, dilation=3)(np.zeros((1, 1, 4, 4), np.float32))
    # padding makes it fit
    assert gl.Conv2d(1, 1, 5, padding=1)(np.zeros((1, 1, 3, 4), np.float32)).shape == (1, 1, 1, 2)


def test_wrong_rank_and_dtype():
    conv = gl.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3 -> 4, 3x3\)\.forward: expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        conv(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float32"):
        conv(np.zeros((1, 3, 8, 8), np.float64))
    conv(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(1, 4, 6, 6\)"):
        conv.backward(np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gl.Conv2d(3, 4, 3).backward(np.zeros((1, 4, 6, 6), np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_size=0), r"Conv2d: kernel_size must be positive, got 0"),
        (dict(kernel_size=(3, -1)), r"Conv2d: kernel_size must be positive, got \(3, -1\)"),
        (dict(kernel_size=3, stride=0), r"Conv2d: stride must be positive, got 0"),
        (dict(kernel_size=3, dilation=(1, 0)), r"Conv2d: dilation must be positive, got \(1, 0\)"),
        (dict(kernel_size=3, padding=-1), r"Conv2d: padding must be non-negative, got -1"),
        (dict(kernel_size=3, padding="full"), r"padding must be an int, a pair, 'same' or 'valid', got 'full'"),
        (dict(kernel_size=3, stride=2, padding="same"), r"padding='same' needs stride 1"),
        (dict(kernel_size=3, groups=4), r"in_channels \(6\) and out_channels \(8\) must both be divisible by groups \(4\)"),
        (dict(kernel_size=3, groups=0), r"groups must be positive"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gl.Conv2d(6, 8, **kwargs)


def test_out_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"in_channels \(4\) and out_channels \(6\) must both be divisible by groups \(4\)"):
        gl.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair of ints"):
        gl.Conv2d(4, 4, (3, 3, 3))


# ZeroPad2d -----------------------------------------------------------------------------------------


def test_zero_pad_layout_and_backward():
    pad = gl.ZeroPad2d((1, 2, 0, 3))  # left, right, top, bottom
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3) + 1
    y = pad(x)
    assert y.shape == (1, 1, 5, 6) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0, 0, 0:2, 1:4], x[0, 0])
    assert y.sum() == x.sum()
    g = np.arange(30, dtype=np.float32).reshape(1, 1, 5, 6)
    np.testing.assert_array_equal(pad.backward(g), g[:, :, 0:2, 1:4])
    with pytest.raises(TypeError, match=r"ZeroPad2d: padding must be an int or a 4-tuple"):
        gl.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match=r"leaves an empty output"):
        gl.ZeroPad2d(-2)(np.zeros((1, 1, 4, 4), np.float32))
