"""AlexNet model: the paper's parameter count and layer shapes, init schemes, ablation paths, and the
kernels backend switch (same logits and gradients from the same weights, state_dict loads anywhere)."""
import pytest
import torch

from alexnet.model import (
    PRESETS,
    AlexNet,
    AlexNetConfig,
    build_model,
    config_from_preset,
    count_parameters,
)
from tests.conftest import cached_backend_status

# Weight shapes of one tower in the paper's two-GPU layout (figure 2): conv3 and the FC layers read both
# towers, conv2/conv4/conv5 only their own.
TWO_TOWER_WEIGHTS = {
    "conv1": (48, 3, 11, 11),
    "conv2": (128, 48, 5, 5),
    "conv3": (192, 256, 3, 3),
    "conv4": (192, 192, 3, 3),
    "conv5": (128, 192, 3, 3),
    "fc6": (2048, 9216),
    "fc7": (2048, 4096),
    "fc8": (500, 4096),
}
# A narrow AlexNet (same layers and towers, fewer channels) for tests that need many forward passes.
SMALL = dict(num_classes=10, conv_widths=(16, 32, 48, 48, 32), fc_width=64)


@pytest.fixture(scope="module")
def paper_model() -> AlexNet:
    torch.manual_seed(0)
    return build_model(AlexNetConfig())


def test_paper_parameter_count(paper_model):
    assert count_parameters(paper_model) == 60_965_224


def test_two_tower_weight_shapes(paper_model):
    assert len(paper_model.towers) == 2
    for tower in paper_model.towers:
        for name, shape in TWO_TOWER_WEIGHTS.items():
            weight = getattr(tower, name).weight
            assert tuple(weight.shape) == shape, f"{name}: {tuple(weight.shape)} != {shape}"


def test_one_gpu_layouts_parameter_counts():
    # One tower: every layer sees everything, so conv2/4/5 have twice the two-tower weights.
    with torch.device("meta"):  # shapes only: no memory, no init cost
        one = build_model(AlexNetConfig(layout="one-gpu"))
        half = build_model(config_from_preset("one-gpu-half"))
    assert len(one.towers) == 1 and tuple(one.towers[0].conv2.weight.shape) == (256, 96, 5, 5)
    assert count_parameters(one) == 60_965_224 + 307_200 + 663_552 + 442_368  # + conv2, conv4, conv5 halves
    # The paper's one-GPU control halves conv1-conv4 only.
    assert [half.towers[0].get_submodule(f"conv{i}").out_channels for i in range(1, 6)] == [48, 128, 192, 192, 256]
    assert PRESETS["one-gpu-half"]["conv_widths"] == (48, 128, 192, 192, 256)


@pytest.mark.parametrize("layout", ["two-gpu", "one-gpu"])
def test_feature_shapes_at_227(layout, paper_model):
    model = paper_model if layout == "two-gpu" else build_model(AlexNetConfig(layout=layout))
    shapes = model.feature_shapes(torch.randn(1, 3, 227, 227))
    expected = {
        "conv1": (1, 96, 55, 55), "pool1": (1, 96, 27, 27), "conv2": (1, 256, 27, 27), "pool2": (1, 256, 13, 13),
        "conv3": (1, 384, 13, 13), "conv4": (1, 384, 13, 13), "conv5": (1, 256, 13, 13), "pool5": (1, 256, 6, 6),
    }
    assert shapes == expected


def test_logits_shape_and_odd_class_split():
    model = build_model(AlexNetConfig(**{**SMALL, "num_classes": 7}), dropout=0.0).eval()
    assert [t.fc8.out_features for t in model.towers] == [4, 3]
    assert model(torch.randn(2, 3, 67, 67)).shape == (2, 7)


def test_paper_init_bias_values():
    torch.manual_seed(0)
    model = build_model(AlexNetConfig(**{**SMALL, "fc_width": 4096}, init="paper"))
    for tower in model.towers:
        for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
            bias = getattr(tower, name).bias
            want = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
            assert torch.all(bias == want), f"{name} bias should be {want}"
        std = tower.fc6.weight.std().item()
        assert abs(std - 0.01) < 1e-4, f"fc6 weight std {std} is not N(0, 0.01)"
    bias0 = build_model(AlexNetConfig(**SMALL, init="paper-bias0"))
    assert all(torch.all(m.bias == 0) for m in bias0.modules() if hasattr(m, "bias") and m.bias is not None)


def test_kaiming_init_scale():
    torch.manual_seed(0)
    model = build_model(AlexNetConfig(**SMALL))
    conv1 = model.towers[0].conv1.weight
    expected = (2.0 / (3 * 11 * 11)) ** 0.5
    assert abs(conv1.std().item() / expected - 1) < 0.05
    assert torch.all(model.towers[0].conv2.bias == 0)


@pytest.mark.parametrize(
    "overrides",
    [dict(lrn=False), dict(activation="tanh"), dict(activation="tanh", lrn=False), dict(pool_kernel=2, pool_stride=2)],
    ids=["no-lrn", "tanh", "tanh-no-lrn", "pool-2-2"],
)
def test_ablations_run_and_keep_shapes(overrides):
    model = build_model(AlexNetConfig(**SMALL), **overrides)
    shapes = model.feature_shapes(torch.randn(1, 3, 227, 227))
    assert [shapes[k][1] for k in ("conv1", "conv2", "conv5")] == [16, 32, 32]
    assert [shapes[k][-1] for k in ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")] == [55, 27, 13, 13, 13, 6]
    out = model(torch.randn(2, 3, 67, 67))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_tanh_lrn_uses_paper_alpha_convention():
    from tests.paper_formula import paper_lrn_float64

    cfg = AlexNetConfig(**SMALL, activation="tanh", lrn_alpha=0.5)  # large alpha makes the convention visible
    tower = build_model(cfg).towers[0].double()
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64) * 3
    got = tower._act_norm_pool(x)
    want = torch.nn.functional.max_pool2d(paper_lrn_float64(torch.tanh(x), 5, 0.5, 0.75, 2.0), 3, 2)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(layout="three-gpu"), "layout"),
        (dict(conv_widths=(95, 256, 384, 384, 256)), "divisible by 2"),
        (dict(activation="gelu"), "activation"),
        (dict(kernels="opencl"), "kernels"),
        (dict(init="xavier"), "init"),
    ],
)
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(AlexNetConfig(**SMALL), **overrides)


def test_bad_input_is_named():
    model = build_model(AlexNetConfig(**SMALL))
    with pytest.raises(ValueError, match="at least 67x67"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        model(torch.randn(1, 1, 67, 67))
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 3, 67, 67, dtype=torch.uint8))


def _logits_and_grad(model: AlexNet, backend: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model.set_kernels(backend)
    model.zero_grad(set_to_none=True)
    logits = model(x)
    logits.square().sum().backward()
    return logits.detach(), model.towers[1].conv1.weight.grad.clone()


@pytest.mark.parametrize("backend", ["torchscript", "triton"])
def test_backends_give_same_logits_and_grads(backend):
    reason = cached_backend_status()[backend]
    if reason is not None:
        pytest.skip(f"backend {backend!r} unavailable here: {reason}")
    torch.manual_seed(0)
    model = build_model(AlexNetConfig(**SMALL, dropout=0.0)).eval()
    x = torch.randn(2, 3, 67, 67)
    ref_logits, ref_grad = _logits_and_grad(model, "eager", x)
    logits, grad = _logits_and_grad(model, backend, x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5, msg=lambda m: f"{backend} logits: {m}")
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-5, msg=lambda m: f"{backend} conv1 grad: {m}")


def test_state_dict_identical_across_backends():
    torch.manual_seed(0)
    eager = build_model(AlexNetConfig(**SMALL, dropout=0.0, kernels="eager")).eval()
    other = build_model(AlexNetConfig(**SMALL, dropout=0.0, kernels="triton", init="paper")).eval()
    assert list(eager.state_dict()) == list(other.state_dict())
    other.load_state_dict(eager.state_dict(), strict=True)
    x = torch.randn(2, 3, 67, 67)
    other.set_kernels("eager")  # same backend, loaded weights -> bitwise the same logits
    assert torch.equal(other(x), eager(x))
    with pytest.raises(ValueError, match="kernels must be one of"):
        other.set_kernels("nope")
