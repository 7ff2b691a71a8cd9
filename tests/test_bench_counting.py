"""Byte and FLOP counting of the benchmark harness (bench.counting, bench.timing.saved_tensor_bytes).

FLOPs are checked two ways: against the paper net's published-by-formula total (724,406,816
multiply-adds per 227x227 image) and against PyTorch's own FlopCounterMode run on alexnet.model.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import kernels
from bench import counting, timing


def test_paper_net_forward_macs():
    assert counting.alexnet_forward_macs(227) == 724_406_816


def test_paper_net_layer_macs():
    layers = {layer.name: layer.macs for layer in counting.alexnet_layer_macs(227)}
    # out_h * out_w * out_c * in_c_per_group * k * k, written out per layer
    assert layers["conv1"] == 55 * 55 * 96 * 3 * 11 * 11
    assert layers["conv2"] == 27 * 27 * 256 * 48 * 5 * 5  # grouped: each tower sees its 48 channels
    assert layers["conv3"] == 13 * 13 * 384 * 256 * 3 * 3  # sees both towers
    assert layers["conv4"] == 13 * 13 * 384 * 192 * 3 * 3
    assert layers["conv5"] == 13 * 13 * 256 * 192 * 3 * 3
    assert (layers["fc6"], layers["fc7"], layers["fc8"]) == (9216 * 4096, 4096 * 4096, 4096 * 1000)


def test_one_tower_counts_ungrouped_convs():
    two = {layer.name: layer.macs for layer in counting.alexnet_layer_macs(227)}
    one = {layer.name: layer.macs for layer in counting.alexnet_layer_macs(227, layout="one-gpu")}
    for name in ("conv2", "conv4", "conv5"):
        assert one[name] == 2 * two[name]
    for name in ("conv1", "conv3", "fc6", "fc7", "fc8"):
        assert one[name] == two[name]


def _flop_counter_totals(cfg_overrides: dict, image_size: int, train: bool) -> int:
    model_mod = pytest.importorskip("alexnet.model")
    model = model_mod.build_model(model_mod.AlexNetConfig(**cfg_overrides))
    x = torch.randn(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if train:
            F.cross_entropy(out, torch.zeros(1, dtype=torch.long)).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("overrides,size", [
    ({}, 227),
    ({"fc_width": 256, "num_classes": 10, "pool_kernel": 2, "pool_stride": 2}, 67),
    ({"layout": "one-gpu", "conv_widths": (48, 128, 192, 192, 256), "fc_width": 256, "num_classes": 10}, 99),
])
@pytest.mark.parametrize("train", [False, True])
def test_flops_match_pytorch_flop_counter(overrides, size, train):
    arch = {k: v for k, v in overrides.items() if k in ("layout", "conv_widths", "fc_width", "num_classes",
                                                          "pool_kernel", "pool_stride")}
    expected = counting.alexnet_step_flops(size, train=train, **arch)
    assert _flop_counter_totals(overrides, size, train) == expected


def test_minimal_bytes_forward_and_backward():
    # relu_lrn keeps the shape: forward reads x and writes y
    assert counting.minimal_bytes("relu_lrn", (2, 3, 5, 5), 4, "fwd") == (150 + 150) * 4
    # max_pool 3/2 on 7x7 -> 3x3; backward reads dy, re-reads x, writes dx
    x, y = 49, 9
    assert counting.minimal_bytes("max_pool", (1, 1, 7, 7), 2, "fwd") == (x + y) * 2
    assert counting.minimal_bytes("max_pool", (1, 1, 7, 7), 2, "fwdbwd") == (x + y + y + x + x) * 2
    # the unfused chain is charged the fused op's minimum
    assert counting.minimal_bytes("unfused", (4, 96, 55, 55), 4, "fwdbwd") == counting.minimal_bytes(
        "relu_lrn_pool", (4, 96, 55, 55), 4, "fwdbwd")
    assert counting.op_output_shape("relu_lrn_pool", (128, 96, 55, 55)) == (128, 96, 27, 27)


def test_vector_ops_count_each_step_per_output_element():
    x, y = 2 * 3 * 7 * 7, 2 * 3 * 3 * 3  # 3/2 pooling of 7x7 -> 3x3
    assert counting.vector_ops("relu_lrn", (2, 3, 7, 7), "fwd", lanes=1) == 15 * x
    assert counting.vector_ops("relu_lrn", (2, 3, 7, 7), "fwdbwd", lanes=1) == (15 + 27) * x
    assert counting.vector_ops("max_pool", (2, 3, 7, 7), "fwdbwd", lanes=8) == (7 + 1) * y / 8
    assert counting.vector_ops("relu_lrn_pool", (2, 3, 7, 7), "fwd", lanes=1) == 15 * x + 7 * y
    assert counting.vector_ops("unfused", (2, 3, 7, 7), "fwd", lanes=1) == 15 * x + 7 * y
    # the ablation's 2/2 pooling: 7x7 -> 3x3 as well, 6x6 -> 3x3 with 2x2 windows
    assert counting.op_output_shape("max_pool", (1, 1, 6, 6), kernel_size=2, stride=2) == (1, 1, 3, 3)
    with pytest.raises(TypeError, match="relu_lrn takes no setting kernel_size"):
        counting.vector_ops("relu_lrn", (1, 1, 6, 6), "fwd", lanes=1, kernel_size=2)


def test_minimal_bytes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown op 'conv'"):
        counting.minimal_bytes("conv", (1, 1, 3, 3), 4, "fwd")
    with pytest.raises(ValueError, match="direction"):
        counting.minimal_bytes("relu_lrn", (1, 1, 3, 3), 4, "bwd")
    with pytest.raises(ValueError, match="67 px"):
        counting.alexnet_forward_macs(64)


def test_cross_tower_bytes():
    # conv3 input 256x13x13, fc6 input 256x6x6, fc7/fc8 inputs 4096 each, 500 logits of tower 2
    elements = 256 * 13 * 13 + 256 * 6 * 6 + 4096 + 4096 + 500
    assert counting.cross_tower_bytes(227, element_size=2) == elements * 2
    assert counting.cross_tower_bytes(227, element_size=4, train=True) == 2 * elements * 4


def test_saved_bytes_see_atens_int64_pool_indices():
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    saved = timing.saved_tensor_bytes(lambda: kernels.max_pool(x, 3, 2, backend="eager"), exclude=(x,))
    assert saved == 2 * 4 * 4 * 4 * 8  # one int64 index per output element


def test_saved_bytes_exclude_input():
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    assert timing.saved_tensor_bytes(lambda: x * 2.0, exclude=(x,)) == 0
    assert timing.saved_tensor_bytes(lambda: x * x, exclude=(x,)) == 0  # saves x itself only
    assert timing.saved_tensor_bytes(lambda: torch.exp(x), exclude=(x,)) == 0  # saves its output
    assert timing.saved_tensor_bytes(lambda: torch.exp(x).sum(), exclude=(x,)) == x.numel() * 4


def test_cpu_peak_memory_is_the_high_water_mark_above_the_start():
    """On a CPU the peak comes from torch.profiler's allocator events: two live MiB, then one freed and half
    a MiB allocated, peak at 2 MiB; a fused forward+backward holds less than eager's op chain."""
    def two_then_half():
        a = torch.empty(1 << 20, dtype=torch.uint8)
        b = torch.empty(1 << 20, dtype=torch.uint8)
        del a
        c = torch.empty(1 << 19, dtype=torch.uint8)
        return b, c

    held = torch.empty(1 << 22, dtype=torch.uint8)  # allocated before: not counted
    assert timing.peak_memory_delta(two_then_half, torch.device("cpu")) == 2 << 20
    assert timing.peak_memory_delta(lambda: None, torch.device("cpu")) == 0
    from kernels.backends import cpp

    if cpp.unavailable_reason() is not None:
        pytest.skip(f"cpp backend unavailable: {cpp.unavailable_reason()}")
    x = torch.randn(2, 16, 13, 13, requires_grad=True)

    def fwdbwd(backend):
        return lambda: kernels.relu_lrn_pool(x, backend=backend).sum().backward()

    fused, eager = (timing.peak_memory_delta(fwdbwd(b), torch.device("cpu")) for b in ("cpp", "eager"))
    assert x.numel() * 4 <= fused < eager
    del held
