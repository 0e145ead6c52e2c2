"""The model zoo: exact parameter counts, torchvision's state-dict keys, PyTorch's outputs.

torchvision is not installed, so each reference is written here in plain torch with
torchvision's layout and names; loading its state_dict into the gradlearn model must give
the same outputs (float32, within 1e-4 relative to the output's scale).
"""

from collections import OrderedDict

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import models
from ..conftest import assert_close

RTOL = 1e-4


def count(model):
    return sum(p.size for p in model.parameters())


# -- parameter counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lenet5", 61_706),
        ("resnet20", 269_722),  # option A: identity shortcuts, no parameters
        ("resnet32", 464_154),
        ("resnet56", 853_018),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("alexnet", 61_100_840),
    ],
)
def test_parameter_counts(name, expected):
    assert count(models.get_model(name, generator=0)) == expected


def test_resnet20_option_b_count():
    # projection shortcuts where the shape changes: 2 x (1x1 conv + batch norm) = 2,752 more
    assert count(models.resnet20(shortcut="B", generator=0)) == 272_474


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, expected",
    [
        ("vgg11", 132_863_336),
        ("vgg13", 133_047_848),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("vgg16_bn", 138_365_992),
    ],
)
def test_vgg_parameter_counts(name, expected):
    assert count(models.get_model(name, generator=0)) == expected


def test_mlp_layout_and_count():
    net = models.mlp([784, 256, 10], generator=0)
    assert count(net) == 784 * 256 + 256 + 256 * 10 + 10
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    net = models.mlp([8, 6, 4, 2], activation="tanh", dropout=0.25, generator=0)
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"]


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*lenet5.*resnet20"):
        models.get_model("resnet9")
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu.*tanh"):
        models.mlp([4, 2], activation="swish")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        models.lenet5(activation="gelu")
    with pytest.raises(ValueError, match="unknown pool"):
        models.lenet5(pool="median")
    with pytest.raises(ValueError, match="unknown shortcut"):
        models.resnet20(shortcut="C")
    with pytest.raises(ValueError, match="at least two"):
        models.mlp([4])


def test_every_name_builds_and_has_an_input_shape():
    assert set(models.DEFAULT_INPUT_SHAPES) == set(models.MODEL_NAMES)
    assert {"mlp", "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet20", "resnet32", "resnet56"} <= set(
        models.MODEL_NAMES
    )


def test_generator_makes_builds_reproducible():
    a = models.resnet20(generator=np.random.default_rng(3)).state_dict()
    b = models.resnet20(generator=np.random.default_rng(3)).state_dict()
    c = models.resnet20(generator=np.random.default_rng(4)).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


def test_resnet_initialisation_is_torchvisions():
    net = models.resnet20(generator=0)
    w = net.layer3[1].conv2.weight.data  # 64 x 64 x 3 x 3: fan_out = 576
    assert w.dtype == np.float32
    assert abs(w.std() / np.sqrt(2.0 / 576) - 1) < 0.03
    np.testing.assert_array_equal(net.bn1.weight.data, 1)
    np.testing.assert_array_equal(net.layer2[0].bn2.bias.data, 0)


# -- the building blocks --------------------------------------------------------------------------


def test_shortcut_a_forward_and_gradient():
    from gradlearn.models.resnet import ShortcutA

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5))
    y = ShortcutA(4, 8, 2).forward(x.astype(np.float32))
    assert y.shape == (2, 8, 3, 3)
    np.testing.assert_array_equal(y[:, 2:6], x[:, :, ::2, ::2].astype(np.float32))
    assert not y[:, :2].any() and not y[:, 6:].any()
    assert gl.gradcheck(ShortcutA(4, 8, 2), x).passed


def test_basic_block_gradients():
    from gradlearn.models.resnet import BasicBlock, ShortcutA

    rng = np.random.default_rng(1)
    block = BasicBlock(3, 4, stride=2, downsample=ShortcutA(3, 4, 2), generator=1)
    report = gl.gradcheck(block, rng.standard_normal((2, 3, 6, 6)), rtol=1e-5)
    assert report.passed, str(report)
    assert len(report.rows) == 1 + 6  # input + 2 convs + 2 x (bn weight, bias)


# -- against PyTorch -------------------------------------------------------------------------------


def torch_models():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for the zoo")
    nn = torch.nn
    F = torch.nn.functional

    def lenet5():
        return nn.Sequential(
            OrderedDict(
                features=nn.Sequential(
                    nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2)
                ),
                flatten=nn.Flatten(),
                classifier=nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
            )
        )

    def alexnet():
        return nn.Sequential(
            OrderedDict(
                features=nn.Sequential(
                    nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                    nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
                ),
                avgpool=nn.AdaptiveAvgPool2d((6, 6)),
                flatten=nn.Flatten(),
                classifier=nn.Sequential(
                    nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000)
                ),
            )
        )

    def vgg11(batch_norm=False):
        layers, c = [], 3
        for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if batch_norm else []) + [nn.ReLU()]
                c = v
        return nn.Sequential(
            OrderedDict(
                features=nn.Sequential(*layers),
                avgpool=nn.AdaptiveAvgPool2d((7, 7)),
                flatten=nn.Flatten(),
                classifier=nn.Sequential(
                    nn.Linear(25088, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000)
                ),
            )
        )

    class Block(nn.Module):  # torchvision's BasicBlock
        def __init__(self, cin, cout, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class OptionA(nn.Module):  # identity, stride-2 subsampling, zero channels split before/after
        def __init__(self, cin, cout):
            super().__init__()
            self.before, self.after = (cout - cin) // 2, cout - cin - (cout - cin) // 2

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.before, self.after))

    def stage(cin, cout, n, stride, option):
        down = None
        if stride != 1 or cin != cout:
            down = OptionA(cin, cout) if option == "A" else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return nn.Sequential(Block(cin, cout, stride, down), *[Block(cout, cout, 1, None) for _ in range(n - 1)])

    def resnet18():
        return nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 64, 7, 2, 3, bias=False), bn1=nn.BatchNorm2d(64), relu=nn.ReLU(), maxpool=nn.MaxPool2d(3, 2, 1),
                layer1=stage(64, 64, 2, 1, "B"), layer2=stage(64, 128, 2, 2, "B"),
                layer3=stage(128, 256, 2, 2, "B"), layer4=stage(256, 512, 2, 2, "B"),
                avgpool=nn.AdaptiveAvgPool2d((1, 1)), flatten=nn.Flatten(), fc=nn.Linear(512, 1000),
            )
        )

    def resnet20():
        return nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 16, 3, 1, 1, bias=False), bn1=nn.BatchNorm2d(16), relu=nn.ReLU(),
                layer1=stage(16, 16, 3, 1, "A"), layer2=stage(16, 32, 3, 2, "A"), layer3=stage(32, 64, 3, 2, "A"),
                avgpool=nn.AdaptiveAvgPool2d((1, 1)), flatten=nn.Flatten(), fc=nn.Linear(64, 10),
            )
        )

    return torch, dict(lenet5=lenet5, alexnet=alexnet, vgg11=vgg11, resnet18=resnet18, resnet20=resnet20)


def _randomise_batch_norm(torch, model):
    """Non-trivial running statistics and affine parameters, so evaluation mode tests them."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))


def compare_with_torch(name, input_shape, train=False, seed=0):
    torch, refs = torch_models()
    torch.manual_seed(seed)
    reference = refs[name]()
    _randomise_batch_norm(torch, reference)
    model = models.get_model(name, generator=seed)
    torch_state = reference.state_dict()
    assert set(model.state_dict()) == set(torch_state), "state_dict keys differ from torchvision's layout"
    model.load_state_dict(torch_state)
    reference.train(train)
    model.train(train)

    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = reference(x_torch)
    y = model(x)
    assert y.dtype == np.float32
    assert_close(y, expected.detach().numpy(), RTOL, f"{name} output")
    return torch, reference, model, x_torch, expected, y


def test_lenet5_matches_torch_forward_and_backward():
    torch, reference, model, x_torch, expected, y = compare_with_torch("lenet5", (4, 1, 28, 28), train=True)
    grad_output = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    expected.backward(torch.tensor(grad_output))
    grad_input = model.backward(grad_output)
    assert_close(grad_input, x_torch.grad.numpy(), RTOL, "lenet5 input gradient")
    torch_params = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, torch_params[name].grad.numpy(), RTOL, f"lenet5 {name}.grad")


def test_resnet20_matches_torch_in_training_mode():
    torch, reference, model, x_torch, expected, y = compare_with_torch("resnet20", (4, 3, 32, 32), train=True)
    grad_output = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    expected.backward(torch.tensor(grad_output))
    grad_input = model.backward(grad_output)
    assert_close(grad_input, x_torch.grad.numpy(), RTOL, "resnet20 input gradient")
    torch_params = dict(reference.named_parameters())
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(torch_params)
    for name, p in model.named_parameters():
        assert_close(p.grad, torch_params[name].grad.numpy(), 3 * RTOL, f"resnet20 {name}.grad")
    # the running statistics were updated as torch's were
    torch_state = reference.state_dict()
    for key in ("bn1.running_mean", "layer3.2.bn2.running_var", "layer2.0.bn1.num_batches_tracked"):
        np.testing.assert_allclose(np.asarray(model.state_dict()[key], dtype=np.float64), torch_state[key].numpy(), rtol=1e-4, atol=1e-6)


def test_resnet20_matches_torch_in_evaluation_mode():
    compare_with_torch("resnet20", (3, 3, 32, 32), train=False)


def test_resnet18_matches_torch_at_64x64():
    compare_with_torch("resnet18", (2, 3, 64, 64), train=False)


def test_alexnet_matches_torch_at_64x64():
    compare_with_torch("alexnet", (2, 3, 64, 64), train=False)


@pytest.mark.slow
def test_alexnet_matches_torch_at_224x224():
    compare_with_torch("alexnet", (2, 3, 224, 224), train=False)


@pytest.mark.slow
def test_vgg11_matches_torch_at_64x64():
    compare_with_torch("vgg11", (2, 3, 64, 64), train=False)


# -- one training step of every model -----------------------------------------------------------


def forward_backward(model, input_shape, num_outputs):
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    labels = np.arange(input_shape[0]) % num_outputs
    model.train()
    model.zero_grad()
    loss = gl.CrossEntropyLoss()
    value = loss(model(x), labels)
    grad_input = model.backward(loss.backward())
    assert np.isfinite(value) and grad_input.shape == x.shape and grad_input.dtype == np.float32
    grads = {name: p.grad for name, p in model.named_parameters()}
    silent = [name for name, g in grads.items() if not np.any(g)]
    assert not silent, f"parameters that received no gradient: {silent}"
    return value


@pytest.mark.parametrize(
    "name, kwargs, input_shape, outputs",
    [
        ("mlp", dict(sizes=[20, 16, 8, 5], dropout=0.2), (6, 20), 5),
        ("lenet5", dict(), (3, 1, 28, 28), 10),
        ("lenet5", dict(activation="tanh", pool="avg", in_channels=3), (3, 3, 28, 28), 10),
        ("resnet20", dict(), (2, 3, 32, 32), 10),
        ("resnet20", dict(shortcut="B", num_classes=7), (2, 3, 32, 32), 7),
    ],
)
def test_training_step(name, kwargs, input_shape, outputs):
    forward_backward(models.get_model(name, generator=0, **kwargs), input_shape, outputs)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, input_shape",
    [
        ("resnet32", (2, 3, 32, 32)),
        ("resnet56", (2, 3, 32, 32)),
        ("resnet18", (2, 3, 64, 64)),
        ("resnet34", (2, 3, 64, 64)),
        ("alexnet", (2, 3, 64, 64)),
        ("vgg11", (2, 3, 32, 32)),
        ("vgg13", (2, 3, 32, 32)),
        ("vgg16", (2, 3, 32, 32)),
        ("vgg19", (2, 3, 32, 32)),
        ("vgg11_bn", (2, 3, 32, 32)),
    ],
)
def test_training_step_slow(name, input_shape):
    classes = 10 if name in ("resnet32", "resnet56") else 1000
    forward_backward(models.get_model(name, generator=0), input_shape, classes)
