"""Registry cases for the convolutional modules: Conv2d, ZeroPad2d, pooling, BatchNorm,
LocalContrastNorm, Dropout. Shapes are small: gradcheck perturbs every element."""

from __future__ import annotations

import numpy as np

import gradlearn as gl

from . import Case, normal


def distinct(shape, scale=0.1):
    """A random permutation of distinct values spaced by ``scale``: no max-pool ties."""

    def draw(rng):
        n = int(np.prod(shape))
        return ((rng.permutation(n).reshape(shape) - n / 2) * scale,)

    return draw


def spread(shape, low=-1.5, high=2.5):
    """Uniform values. BatchNorm cases use these rather than ``normal``: gradcheck draws its
    output projection r with the same seed as the inputs, so a standard-normal input equals
    r, and <r, BN(x)> with r = x has a near-zero input gradient (BN is invariant to the
    scale and shift of x), which would check nothing."""
    return lambda rng: (rng.uniform(low, high, shape),)


def positive(shape, low=0.5, high=2.0):
    return lambda rng: (rng.uniform(low, high, shape),)


def conv(*args, method=None, **kwargs):
    """A gradlearn Conv2d, optionally forcing its input-gradient algorithm."""

    def make():
        m = gl.Conv2d(*args, **kwargs)
        if method is not None:
            m.input_grad_method = method
        return m

    return make


def torch_conv(*args, **kwargs):
    return lambda torch: torch.nn.Conv2d(*args, **kwargs)


# BatchNorm in evaluation mode: non-trivial weights and running statistics, set the same way
# on both sides (the generic torch test loads torch's state_dict into ours anyway).


def _bn_values(c):
    k = np.arange(c, dtype=np.float64)
    return {"weight": 1.0 + 0.25 * k, "bias": 0.1 * k - 0.2, "running_mean": 0.3 * k - 0.4, "running_var": 0.5 + 0.5 * k}


def gl_bn_eval(cls, c, **kwargs):
    def make():
        m = getattr(gl, cls)(c, **kwargs)
        values = _bn_values(c)
        state = {k: v for k, v in values.items() if k in m.state_dict()}
        state["num_batches_tracked"] = np.array(5)
        m.load_state_dict(state)
        return m.eval()

    return make


def torch_bn_eval(cls, c, **kwargs):
    def make(torch):
        m = getattr(torch.nn, cls)(c, **kwargs)
        values = _bn_values(c)
        with torch.no_grad():
            for name, value in values.items():
                if hasattr(m, name) and getattr(m, name) is not None:
                    getattr(m, name).copy_(torch.tensor(value))
            m.num_batches_tracked.fill_(5)
        return m.eval()

    return make


CASES = [
    # Conv2d
    Case("Conv2d", conv(3, 4, 3), normal((2, 3, 6, 6)), torch_conv(3, 4, 3)),
    Case("Conv2d_stride_padding", conv(3, 4, 3, stride=2, padding=1), normal((2, 3, 7, 7)), torch_conv(3, 4, 3, stride=2, padding=1)),
    Case("Conv2d_same_even_kernel", conv(2, 3, (3, 4), padding="same"), normal((2, 2, 5, 6)), torch_conv(2, 3, (3, 4), padding="same")),
    Case(
        "Conv2d_same_dilation_batch1",
        conv(2, 3, 3, padding="same", dilation=2),
        normal((1, 2, 7, 6)),
        torch_conv(2, 3, 3, padding="same", dilation=2),
    ),
    Case("Conv2d_valid", conv(2, 3, (2, 3), padding="valid"), normal((2, 2, 5, 7)), torch_conv(2, 3, (2, 3), padding="valid")),
    Case(
        "Conv2d_dilation_stride_pairs",
        conv(2, 4, 3, stride=(2, 1), padding=(2, 1), dilation=(2, 1)),
        normal((2, 2, 9, 7)),
        torch_conv(2, 4, 3, stride=(2, 1), padding=(2, 1), dilation=(2, 1)),
    ),
    Case("Conv2d_groups", conv(4, 6, 3, padding=1, groups=2), normal((2, 4, 5, 5)), torch_conv(4, 6, 3, padding=1, groups=2)),
    Case(
        "Conv2d_depthwise_nobias",
        conv(4, 8, 3, groups=4, bias=False),
        normal((2, 4, 6, 5)),
        torch_conv(4, 8, 3, groups=4, bias=False),
    ),
    Case("Conv2d_1x1_nobias", conv(3, 2, 1, bias=False), normal((2, 3, 4, 5)), torch_conv(3, 2, 1, bias=False)),
    Case(
        "Conv2d_odd_batch1",
        conv(3, 5, 5, stride=3, padding=2),
        normal((1, 3, 11, 9)),
        torch_conv(3, 5, 5, stride=3, padding=2),
    ),
    # one input channel: the compiled direct path when the C kernels are built (gradlearn.compiled)
    Case("Conv2d_one_channel", conv(1, 3, 3, padding=1), normal((3, 1, 6, 5)), torch_conv(1, 3, 3, padding=1)),
    Case(
        "Conv2d_one_channel_same_even_nobias",
        conv(1, 2, (2, 3), padding="same", bias=False),
        normal((2, 1, 5, 4)),
        torch_conv(1, 2, (2, 3), padding="same", bias=False),
    ),
    Case("Conv2d_one_channel_valid_batch1", conv(1, 4, (3, 1)), normal((1, 1, 4, 3)), torch_conv(1, 4, (3, 1))),
    # both input-gradient algorithms on the same shapes (auto picks "transposed" when out <= in)
    Case(
        "Conv2d_grad_transposed",
        conv(4, 3, 3, padding=(1, 2), dilation=(1, 2), method="transposed"),
        normal((2, 4, 5, 6)),
        torch_conv(4, 3, 3, padding=(1, 2), dilation=(1, 2)),
    ),
    Case(
        "Conv2d_grad_col2im",
        conv(4, 3, 3, padding=(1, 2), dilation=(1, 2), method="col2im"),
        normal((2, 4, 5, 6)),
        torch_conv(4, 3, 3, padding=(1, 2), dilation=(1, 2)),
    ),
    Case(
        "Conv2d_grad_transposed_groups",
        conv(6, 4, (3, 2), padding="same", groups=2, method="transposed"),
        normal((2, 6, 4, 5)),
        torch_conv(6, 4, (3, 2), padding="same", groups=2),
    ),
    # ZeroPad2d
    Case("ZeroPad2d", lambda: gl.ZeroPad2d(1), normal((2, 3, 3, 4)), lambda torch: torch.nn.ZeroPad2d(1)),
    Case("ZeroPad2d_tuple", lambda: gl.ZeroPad2d((1, 2, 0, 3)), normal((2, 2, 3, 4)), lambda torch: torch.nn.ZeroPad2d((1, 2, 0, 3))),
    Case("ZeroPad2d_crop", lambda: gl.ZeroPad2d((-1, 2, 1, -2)), normal((2, 2, 5, 4)), lambda torch: torch.nn.ZeroPad2d((-1, 2, 1, -2))),
    # MaxPool2d (distinct inputs: no ties)
    Case("MaxPool2d_tiles", lambda: gl.MaxPool2d(2), distinct((2, 3, 6, 4)), lambda torch: torch.nn.MaxPool2d(2)),
    Case("MaxPool2d_remainder", lambda: gl.MaxPool2d(2), distinct((2, 2, 7, 5)), lambda torch: torch.nn.MaxPool2d(2)),
    Case(
        "MaxPool2d_stride_padding",
        lambda: gl.MaxPool2d(3, stride=2, padding=1),
        distinct((2, 2, 7, 9)),
        lambda torch: torch.nn.MaxPool2d(3, stride=2, padding=1),
    ),
    Case(
        "MaxPool2d_overlap_rect",
        lambda: gl.MaxPool2d((3, 2), stride=1),
        distinct((1, 2, 5, 6)),
        lambda torch: torch.nn.MaxPool2d((3, 2), stride=1),
    ),
    # AvgPool2d
    Case("AvgPool2d_tiles", lambda: gl.AvgPool2d(2), normal((2, 3, 4, 6)), lambda torch: torch.nn.AvgPool2d(2)),
    Case(
        "AvgPool2d_stride_padding",
        lambda: gl.AvgPool2d(3, stride=2, padding=1),
        normal((2, 2, 7, 6)),
        lambda torch: torch.nn.AvgPool2d(3, stride=2, padding=1),
    ),
    Case(
        "AvgPool2d_rect",
        lambda: gl.AvgPool2d((2, 3), stride=(1, 2)),
        normal((1, 2, 5, 7)),
        lambda torch: torch.nn.AvgPool2d((2, 3), stride=(1, 2)),
    ),
    # LPPool2d (positive inputs)
    Case("LPPool2d_L2", lambda: gl.LPPool2d(2, 2), positive((2, 3, 4, 6)), lambda torch: torch.nn.LPPool2d(2, 2)),
    Case(
        "LPPool2d_p3_stride",
        lambda: gl.LPPool2d(3, (3, 2), stride=(2, 1)),
        positive((2, 2, 7, 5)),
        lambda torch: torch.nn.LPPool2d(3, (3, 2), stride=(2, 1)),
    ),
    Case("LPPool2d_p1_5", lambda: gl.LPPool2d(1.5, 2, stride=1), positive((1, 2, 4, 5)), lambda torch: torch.nn.LPPool2d(1.5, 2, stride=1)),
    # AdaptiveAvgPool2d
    Case(
        "AdaptiveAvgPool2d_nondivisible",
        lambda: gl.AdaptiveAvgPool2d((3, 2)),
        normal((2, 3, 7, 5)),
        lambda torch: torch.nn.AdaptiveAvgPool2d((3, 2)),
    ),
    Case("AdaptiveAvgPool2d_global", lambda: gl.AdaptiveAvgPool2d(1), normal((2, 3, 5, 4)), lambda torch: torch.nn.AdaptiveAvgPool2d(1)),
    Case("AdaptiveAvgPool2d_divisible", lambda: gl.AdaptiveAvgPool2d(2), normal((2, 2, 6, 4)), lambda torch: torch.nn.AdaptiveAvgPool2d(2)),
    Case("AdaptiveAvgPool2d_13_to_6", lambda: gl.AdaptiveAvgPool2d(6), normal((1, 1, 13, 13)), lambda torch: torch.nn.AdaptiveAvgPool2d(6)),
    # BatchNorm (steps=3: running statistics compared after each of several steps)
    Case("BatchNorm1d_2d", lambda: gl.BatchNorm1d(4), spread((6, 4)), lambda torch: torch.nn.BatchNorm1d(4), steps=3),
    Case("BatchNorm1d_3d", lambda: gl.BatchNorm1d(3), spread((4, 3, 5)), lambda torch: torch.nn.BatchNorm1d(3), steps=3),
    Case("BatchNorm2d", lambda: gl.BatchNorm2d(3), spread((4, 3, 3, 4)), lambda torch: torch.nn.BatchNorm2d(3), steps=3),
    Case(
        "BatchNorm2d_noaffine_momentum",
        lambda: gl.BatchNorm2d(2, affine=False, momentum=0.3, eps=1e-3),
        spread((3, 2, 4, 3)),
        lambda torch: torch.nn.BatchNorm2d(2, affine=False, momentum=0.3, eps=1e-3),
        steps=3,
    ),
    Case(
        "BatchNorm2d_cumulative",
        lambda: gl.BatchNorm2d(3, momentum=None),
        spread((2, 3, 3, 3)),
        lambda torch: torch.nn.BatchNorm2d(3, momentum=None),
        steps=3,
    ),
    Case("BatchNorm2d_eval", gl_bn_eval("BatchNorm2d", 3), spread((2, 3, 4, 3)), torch_bn_eval("BatchNorm2d", 3), steps=2),
    Case(
        "BatchNorm1d_eval_noaffine",
        gl_bn_eval("BatchNorm1d", 4, affine=False),
        spread((5, 4)),
        torch_bn_eval("BatchNorm1d", 4, affine=False),
        steps=2,
    ),
    # Dropout (gradcheck replays the module's generator; no torch case: torch's masks differ)
    Case("Dropout", lambda: gl.Dropout(0.3, generator=1), normal((4, 10))),
    Case("Dropout_4d", lambda: gl.Dropout(0.3, generator=2), normal((2, 3, 4, 4))),
    Case("Dropout2d", lambda: gl.Dropout2d(0.3, generator=3), normal((3, 4, 3, 3))),
    # LocalContrastNorm (no torch counterpart)
    Case("LocalContrastNorm", lambda: gl.LocalContrastNorm(3, kernel_size=5), normal((2, 3, 6, 7))),
    Case("LocalContrastNorm_even_kernel", lambda: gl.LocalContrastNorm(2, kernel_size=4, sigma=1.5), normal((1, 2, 5, 5))),
]
