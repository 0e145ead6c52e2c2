"""``gradlearn gradcheck``: every layer of a model against finite differences."""

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("gradcheck", "--help")
    assert result.returncode == 0
    assert "--input-shape" in result.stdout and "float64" in result.stdout


def test_convnet_passes_with_a_row_per_layer():
    result = gradlearn("gradcheck", "convnet", "--whole")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    layers = ("features.0", "features.1", "features.2", "features.3", "features.4", "features.5", "flatten",
              "classifier.0", "classifier.1", "classifier.2")
    for layer in (*layers, "(whole network)"):
        row = [line for line in lines if line.startswith(layer + " ")]
        assert row and row[0].split()[-1] == "ok", (layer, result.stdout)
    errors = [float(line.split()[-2]) for line in lines if line.startswith(layers)]
    assert len(errors) == 10 and 0 < max(errors) < 1e-6
    assert "passed: all 11 checks" in result.stdout


def test_mlp_with_an_input_shape():
    result = gradlearn("gradcheck", "mlp", "--input-shape", "20", "--hidden", "16,8", "--num-classes", "3")
    assert result.returncode == 0, result.stdout
    assert "Linear(20 -> 16)" in result.stdout and "Linear(8 -> 3)" in result.stdout


def test_errors():
    assert_user_error(gradlearn("gradcheck", "nonet"), "unknown model 'nonet'", "lenet5", code=2)
    assert_user_error(gradlearn("gradcheck", "lenet5", "--input-shape", "1,4,4"), "gradlearn gradcheck: error:", "lenet5")


def test_a_broken_layer_fails_with_exit_status_1(monkeypatch, capsys):
    # in-process, so that a layer's backward can be broken on purpose
    import gradlearn.modules.activation as activation
    from gradlearn.cli import main

    correct = activation.ReLU.backward
    monkeypatch.setattr(activation.ReLU, "backward", lambda self, g: 1.5 * correct(self, g))
    assert main(["gradcheck", "convnet"]) == 1
    out = capsys.readouterr().out
    relu_rows = [line for line in out.splitlines() if line.startswith(("features.1 ", "features.4 ", "classifier.1 "))]
    assert len(relu_rows) == 3 and all(line.rstrip().endswith("FAIL") for line in relu_rows), out
    conv_row = [line for line in out.splitlines() if line.startswith("features.0 ")][0]
    assert conv_row.rstrip().endswith("ok")
    assert "FAILED: 3 of 10 checks" in out
