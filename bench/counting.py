"""Analytic work counts for the benchmarks: bytes each kernel must move, and AlexNet's FLOPs.

Bytes are the *minimum* traffic an op needs, as each op's entry in ``kernels.catalog`` defines it
(forward: read ``x``, write ``y``; forward+backward adds reading ``dy`` and ``x`` and writing ``dx``;
extra saved tensors such as ATen's int64 pool indices are not counted: a kernel that moves them pays
for them in time, which is the point of the measurement).

FLOPs count multiply-adds (MACs) of conv and FC layers only (biases, ReLU, LRN, pooling are
negligible and memory-bound). For the paper's two-tower net at 227x227 the forward count is
724,406,816 MACs per image. A training step costs forward + weight gradients (same MACs as the
forward) + input gradients (same MACs, except the first conv which needs none).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kernels.catalog import DIRECTIONS, op_spec  # noqa: F401 (DIRECTIONS: the benchmarks' directions)
from kernels.paper import pool_output_size


def op_output_shape(op: str, shape: tuple[int, int, int, int], kernel_size: int = 3, stride: int = 2):
    """Output shape of ``op`` on an NCHW ``shape`` (pooling ops shrink H and W)."""
    spec = op_spec(op)
    return spec.output_shape(shape, **({"kernel_size": kernel_size, "stride": stride} if spec.pool else {}))


def minimal_bytes(op: str, shape, element_size: int, direction: str, kernel_size: int = 3, stride: int = 2) -> int:
    """Minimum bytes ``op`` must move on an input of ``shape`` (``kernels.catalog.OpSpec.minimal_bytes``)."""
    spec = op_spec(op)
    return spec.minimal_bytes(shape, element_size, direction,
                              **({"kernel_size": kernel_size, "stride": stride} if spec.pool else {}))


# ---------------------------------------------------------------- vector operations (the compute roof)

# Arithmetic vector operations per element that a vectorized kernel of each part needs at least, counted
# on the formulas (one operation = one instruction on a full vector; loads, stores and index work are
# not counted, so the compute roof they give is optimistic):
# * ReLU + LRN forward, per input element: ReLU 1 (max), square 1, the sliding window sum over channels 2
#   (add the entering square, subtract the leaving one), k + alpha * sum 1 (FMA), d^-beta for beta = 3/4
#   as r = rsqrt(d) refined by one Newton step (estimate 1 + 3) times sqrt(r) = r * rsqrt(r) refined
#   likewise (1 + 3 + 1), then the product 1 and a * d^-beta 1: 15.
# * its backward, per input element: the forward's window sum and d^-beta recomputed (15), 1/d (estimate
#   and one Newton step: 3), t = dy * a * d^-beta * (1/d) (3), the window sum of t (2),
#   dx = dy * d^-beta - 2 alpha beta * a * sum(t) (3), the ReLU mask (1): 27.
# * 3x3 max-pool at stride 2, per output element: each window row's maximum is 2 operations, rows shared
#   by vertically neighbouring windows count once (3 rows of which 1 is shared: 2.5 rows), and 2 more
#   combine the rows: 7. Its backward, per output element: 1 (the gradient added at its argmax).
LRN_FWD_OPS, LRN_BWD_OPS, POOL_FWD_OPS, POOL_BWD_OPS = 15, 27, 7, 1


def vector_ops(op: str, shape, direction: str, lanes: int, kernel_size: int = 3, stride: int = 2) -> float:
    """Counted arithmetic vector operations (``lanes`` floats each) of ``op`` on an input of ``shape``."""
    spec = op_spec(op)
    x = math.prod(int(d) for d in shape)
    y = math.prod(spec.output_shape(shape, **({"kernel_size": kernel_size, "stride": stride} if spec.pool else {})))
    fwd = (LRN_FWD_OPS * x if spec.lrn else 0) + (POOL_FWD_OPS * y if spec.pool else 0)
    bwd = (LRN_BWD_OPS * x if spec.lrn else 0) + (POOL_BWD_OPS * y if spec.pool else 0)
    return (fwd + (bwd if direction == "fwdbwd" else 0)) / lanes


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
