"""What each custom op returns, as uninitialised tensors: the fake (meta) kernels that the ``triton`` and
``cpp`` backends register (so ``torch.compile`` traces the ops without running them), and the two rules
the real kernels allocate their outputs by.

* Layout: an input that is channels_last-contiguous but not NCHW-contiguous is answered in channels_last,
  any other in NCHW (``output_format``).
* Pooled offsets: the argmax position ``kh * kernel_size + kw`` inside each window, 0 .. kernel_size**2 - 1,
  as int8 while that fits (``kernel_size**2 <= 128``: every AlexNet pool), int32 beyond (``offsets_dtype``).

``kernels/backends/cpp/csrc/alexnet_ops.h`` keeps the C++ copy of both rules (``layout_of``,
``offset_dtype``); tests check that the C++ ops agree with these.

One fake per op and per backward op, annotated: its signature is the op's schema, read by
``kernels.catalog``, whose entries declare the ops (``kernels/custom_ops.py``).
"""
from __future__ import annotations

import torch

from kernels.paper import pool_output_size

# --------------------------------------------------------------------------------------------- rules


def output_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format of outputs derived from ``x`` (results, pooled outputs, gradients)."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def offsets_dtype(kernel_size: int) -> torch.dtype:
    """The dtype of max-pool argmax offsets: int8 holds window positions 0..127, larger windows get int32."""
    return torch.int8 if kernel_size * kernel_size <= 128 else torch.int32


def like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``x``'s shape and dtype in ``output_format(x)``."""
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))


def pooled(x: torch.Tensor, kernel_size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised pooled output and argmax offsets of ``x``, both in ``output_format(x)``."""
    n, c, h, w = x.shape
    shape = (n, c, pool_output_size(h, kernel_size, stride), pool_output_size(w, kernel_size, stride))
    fmt = output_format(x)
    y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    offsets = torch.empty(shape, dtype=offsets_dtype(kernel_size), device=x.device, memory_format=fmt)
    return y, offsets


# --------------------------------------------------------------------------------------- fake kernels
# Annotated: each signature is its op's schema (kernels/custom_ops.py reads it with infer_schema).


def relu_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    return like(x)


def relu_lrn_backward(
    grad_y: torch.Tensor, x: torch.Tensor, size: int, alpha: float, beta: float, k: float
) -> torch.Tensor:
    return like(x)


def max_pool(x: torch.Tensor, kernel_size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    return pooled(x, kernel_size, stride)


def max_pool_backward(
    grad_y: torch.Tensor, offsets: torch.Tensor, height: int, width: int, kernel_size: int, stride: int
) -> torch.Tensor:
    """The input gradient, in the offsets' layout (the pooled outputs' and so the input's)."""
    n, c = grad_y.shape[:2]
    return torch.empty((n, c, height, width), dtype=grad_y.dtype, device=grad_y.device,
                       memory_format=output_format(offsets))


def relu_lrn_pool(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return pooled(x, kernel_size, stride)


def relu_lrn_pool_backward(
    grad_y: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor, size: int, alpha: float, beta: float, k: float,
    kernel_size: int, stride: int,
) -> torch.Tensor:
    return like(x)
