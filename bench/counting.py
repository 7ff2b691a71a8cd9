"""Analytic work counts for the benchmarks: bytes each kernel must move, and AlexNet's FLOPs.

Bytes are the *minimum* traffic an op needs and vector operations the least arithmetic (the compute
roof), as each op's entry in ``kernels.catalog`` defines them (bytes: the forward reads ``x`` and writes
``y``; forward+backward adds reading ``dy`` and ``x`` and writing ``dx``; extra saved tensors such as
ATen's int64 pool indices are not counted: a kernel that moves them pays for them in time, which is the
point of the measurement).

FLOPs count multiply-adds (MACs) of conv and FC layers only (biases, ReLU, LRN, pooling are
negligible and memory-bound). For the paper's two-tower net at 227x227 the forward count is
724,406,816 MACs per image. A training step costs forward + weight gradients (same MACs as the
forward) + input gradients (same MACs, except the first conv which needs none).
"""
from __future__ import annotations

from dataclasses import dataclass

from kernels.catalog import DIRECTIONS, op_spec  # noqa: F401 (DIRECTIONS: the benchmarks' directions)
from kernels.paper import pool_output_size


def op_output_shape(op: str, shape: tuple[int, int, int, int], **settings):
    """Output shape of ``op`` on an NCHW ``shape`` (pooling ops shrink H and W); ``settings`` override
    the paper's (e.g. ``kernel_size=2, stride=2``)."""
    return op_spec(op).output_shape(shape, **settings)


def minimal_bytes(op: str, shape, element_size: int, direction: str, **settings) -> int:
    """Minimum bytes ``op`` must move on an input of ``shape`` (``kernels.catalog.OpSpec.minimal_bytes``)."""
    return op_spec(op).minimal_bytes(shape, element_size, direction, **settings)


def vector_ops(op: str, shape, direction: str, lanes: int, **settings) -> float:
    """Counted arithmetic vector operations (``lanes`` floats each) of ``op`` on an input of ``shape``:
    each step's count per output element, as ``kernels.catalog`` states and explains them."""
    return op_spec(op).vector_ops(shape, direction, **settings) / lanes


# ---------------------------------------------------------------- AlexNet FLOPs


@dataclass(frozen=True)
class LayerCount:
    name: str
    macs: int  # multiply-adds per image, forward
    out_shape: tuple  # (C, H, W) or (features,)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def alexnet_layer_macs(
    image_size: int = 227,
    *,
    layout: str = "two-gpu",
    conv_widths: tuple = (96, 256, 384, 384, 256),
    fc_width: int = 4096,
    num_classes: int = 1000,
    pool_kernel: int = 3,
    pool_stride: int = 2,
) -> list[LayerCount]:
    """Per-layer forward multiply-adds per image of AlexNet as ``alexnet.model`` builds it.

    Tower-local layers (conv2, conv4, conv5) are grouped convolutions when ``layout="two-gpu"``;
    conv3 and the FC layers see both towers. Widths are totals over towers. The conv5 pool output
    goes through ``AdaptiveAvgPool2d(6)`` (identity at 227), so fc6 always sees C5 x 6 x 6.
    """
    towers = {"two-gpu": 2, "one-gpu": 1}.get(layout)
    if towers is None:
        raise ValueError(f"layout must be 'two-gpu' or 'one-gpu', got {layout!r}")
    if image_size < 67:
        raise ValueError(f"AlexNet needs images of at least 67 px, got {image_size}")
    c1, c2, c3, c4, c5 = conv_widths
    # (name, out channels, kernel, stride, padding, groups, pool after)
    convs = [
        ("conv1", c1, 11, 4, 0, 1, True),
        ("conv2", c2, 5, 1, 2, towers, True),
        ("conv3", c3, 3, 1, 1, 1, False),
        ("conv4", c4, 3, 1, 1, towers, False),
        ("conv5", c5, 3, 1, 1, towers, True),
    ]
    layers: list[LayerCount] = []
    channels, size = 3, image_size
    for name, out_c, kernel, stride, padding, groups, pool in convs:
        size = _conv_out(size, kernel, stride, padding)
        layers.append(LayerCount(name, size * size * out_c * (channels // groups) * kernel * kernel, (out_c, size, size)))
        channels = out_c
        if pool:
            size = pool_output_size(size, pool_kernel, pool_stride)
    features = channels * 6 * 6
    for name, width in (("fc6", fc_width), ("fc7", fc_width), ("fc8", num_classes)):
        layers.append(LayerCount(name, features * width, (width,)))
        features = width
    return layers


def alexnet_forward_macs(image_size: int = 227, **config) -> int:
    """Forward multiply-adds per image (724,406,816 for the paper's net at 227x227)."""
    return sum(layer.macs for layer in alexnet_layer_macs(image_size, **config))


def alexnet_step_flops(image_size: int = 227, *, train: bool, **config) -> int:
    """FLOPs per image (2 per multiply-add) of an inference pass or a training step.

    Training = forward + weight gradients + input gradients of every layer but conv1.
    """
    layers = alexnet_layer_macs(image_size, **config)
    forward = sum(layer.macs for layer in layers)
    if not train:
        return 2 * forward
    input_grads = forward - layers[0].macs
    return 2 * (forward + forward + input_grads)


def cross_tower_bytes(
    image_size: int = 227,
    *,
    element_size: int = 4,
    conv_widths: tuple = (96, 256, 384, 384, 256),
    fc_width: int = 4096,
    num_classes: int = 1000,
    pool_kernel: int = 3,
    pool_stride: int = 2,
    train: bool = False,
) -> int:
    """Bytes per image crossing between the two towers' devices in the two-tower layout.

    At each all-to-all connection of the paper (conv3 input, fc6, fc7 and fc8 inputs) each tower
    needs the other's half; the logits of tower 2 go to tower 1. A training step sends the same
    amounts back as gradients.
    """
    layers = {
        layer.name: layer
        for layer in alexnet_layer_macs(
            image_size, layout="two-gpu", conv_widths=conv_widths, fc_width=fc_width,
            num_classes=num_classes, pool_kernel=pool_kernel, pool_stride=pool_stride,
        )
    }
    c2, h2, _ = layers["conv2"].out_shape
    p2 = pool_output_size(h2, pool_kernel, pool_stride)
    conv5_c = layers["conv5"].out_shape[0]
    exchanged = [c2 * p2 * p2, conv5_c * 6 * 6, fc_width, fc_width]  # full widths; each tower sends half
    elements = sum(exchanged)  # both directions of half each = the full width once
    elements += num_classes // 2  # tower 2's logits to the output device
    total = elements * element_size
    return 2 * total if train else total
