"""The Figure 2 networks: shapes, weight counts, the output layer, seeding, and the summary table."""

import numpy as np
import pytest

from minilottery.layers import Conv2d, Dense, MaxPool2d
from minilottery.models import (
    MODELS,
    build_model,
    count_parameters,
    layer_kind,
    layer_output_shapes,
    output_layer,
    summary,
    weight_names,
)

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# (weights, biases) computed by hand from the architectures (3x3 convs, padding 1, 2x2 pools, FC 256-256-10)
COUNTS = {
    ("lenet_300_100", MNIST): (784 * 300 + 300 * 100 + 100 * 10, 300 + 100 + 10),  # 266,200 and 410
    ("lenet_300_100", CIFAR): (3072 * 300 + 300 * 100 + 100 * 10, 410),
    ("conv2", MNIST): (9 * 64 + 9 * 64 * 64 + 64 * 14 * 14 * 256 + 256 * 256 + 2560, 64 + 64 + 256 + 256 + 10),
    ("conv2", CIFAR): (4_300_992, 650),  # the paper's "4.3M"
    ("conv4", CIFAR): (2_425_024, 906),  # the paper's "2.4M"
    ("conv6", CIFAR): (2_261_184, 1418),  # conv part 1,144,512 = the paper's "1.1M"
    ("conv6", MNIST): (9 * (64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256) + 256 * 3 * 3 * 256
                       + 256 * 256 + 2560, 1418),
}


def test_lenet_counts_exactly():
    model = build_model("lenet_300_100")
    assert count_parameters(model) == (266_200, 410)
    assert [tuple(model.parameters()[n].shape) for n in weight_names(model)] == [(300, 784), (100, 300), (10, 100)]


@pytest.mark.parametrize("name,shape", list(COUNTS))
def test_parameter_counts(name, shape):
    assert count_parameters(build_model(name, shape)) == COUNTS[(name, shape)]


@pytest.mark.parametrize("shape", [MNIST, CIFAR])
@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_dtype(name, shape):
    model = build_model(name, shape)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    out = model.forward(x)
    assert out.shape == (2, 10) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_conv_architecture_matches_figure_2():
    model = build_model("conv6", CIFAR)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all((c.kh, c.kw, c.padding, c.stride) == (3, 3, 1, 1) for c in convs)
    assert sum(isinstance(layer, MaxPool2d) for layer in model.layers) == 3
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert [(d.in_features, d.out_features) for d in dense] == [(256 * 4 * 4, 256), (256, 256), (256, 10)]


def test_output_layer_and_kinds():
    lenet = build_model("lenet_300_100")
    assert weight_names(lenet) == ["1.W", "3.W", "5.W"]
    assert output_layer(lenet) == "5.W"
    assert [layer_kind(lenet, n) for n in weight_names(lenet)] == ["dense", "dense", "output"]
    assert layer_kind(lenet, "5.b") == "output"
    conv2 = build_model("conv2", CIFAR)
    kinds = [layer_kind(conv2, n) for n in weight_names(conv2)]
    assert kinds == ["conv", "conv", "dense", "dense", "output"]
    assert conv2.parameters()[output_layer(conv2)].shape == (10, 256)
    with pytest.raises(ValueError, match="no weights"):
        layer_kind(lenet, "0")  # the Flatten


def test_layer_output_shapes_follow_figure_2():
    lenet = build_model("lenet_300_100")
    assert layer_output_shapes(lenet.layers, MNIST) == [(784,), (300,), (300,), (100,), (100,), (10,)]
    conv2 = build_model("conv2", CIFAR)
    shapes = layer_output_shapes(conv2.layers, CIFAR)
    assert shapes[:6] == [(64, 32, 32), (64, 32, 32), (64, 32, 32), (64, 32, 32), (64, 16, 16), (16384,)]
    assert shapes[-1] == (10,) and len(shapes) == len(conv2.layers)
    with pytest.raises(ValueError, match="input_shape"):
        layer_output_shapes(lenet.layers, (28, 28))


def test_same_seed_same_weights_glorot_scale():
    a, b, c = (build_model("lenet_300_100", seed=3), build_model("lenet_300_100", seed=3),
               build_model("lenet_300_100", seed=4))
    for name in a.parameters():
        np.testing.assert_array_equal(a.parameters()[name], b.parameters()[name])
    assert not np.array_equal(a.parameters()["1.W"], c.parameters()["1.W"])
    w = a.parameters()["1.W"]  # (300, 784): Gaussian Glorot, std sqrt(2 / (784 + 300))
    assert abs(w.std() / np.sqrt(2 / 1084) - 1) < 0.02 and abs(w.mean()) < 1e-3
    assert not a.parameters()["1.b"].any()


def test_float64_build():
    model = build_model("conv2", MNIST, dtype=np.float64)
    assert all(v.dtype == np.float64 for v in model.parameters().values())


def test_summary_lists_layers_and_totals():
    model = build_model("lenet_300_100")
    text = summary(model, MNIST)
    lines = text.splitlines()
    assert "Dense(784, 300)" in text and "(300,)" in text and "235,200" in text
    assert lines[-1].split()[-2:] == ["266,200", "410"]
    assert len(lines) == 2 + len(model.layers) + 1  # input line, header, one per layer, total
    conv = summary(build_model("conv2", CIFAR), CIFAR)
    assert "(64, 16, 16)" in conv and "(16384,)" in conv and "4,300,992" in conv


def test_summary_counts_kept_weights_when_masked():
    model = build_model("lenet_300_100")
    mask = np.zeros((300, 784), np.float32)
    mask[:, :392] = 1  # keep half of the first layer
    model.set_masks({"1.W": mask})
    text = summary(model, MNIST)
    assert "117,600" in text
    assert f"{117_600 + 30_000 + 1_000:,}" in text.splitlines()[-1]


def test_bad_names_and_shapes():
    with pytest.raises(ValueError, match=r"--model must be one of lenet_300_100, conv2, conv4, conv6, got 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="input_shape"):
        build_model("conv2", (28, 28))
    with pytest.raises(ValueError, match="too small"):
        build_model("conv6", (1, 4, 4))  # three 2x2 pools need at least 8x8
    with pytest.raises(ValueError, match="input_shape"):
        summary(build_model("lenet_300_100"), CIFAR)  # 3072 inputs for a 784-input network
