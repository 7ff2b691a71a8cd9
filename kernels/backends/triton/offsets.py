"""Host-side index arithmetic shared by the Triton launchers, mirrored by their kernels.

The kernels address every tensor as ``base + n*s_n + c*s_c + h*s_h + w*s_w``, so any strides (NCHW,
channels_last, views) work without copies; the products are int64 only when some offset needs it
(``index_is_64``), int32 otherwise. These helpers do the same sums in
Python integers: launchers use them to pick the tile order, tests use them to check the arithmetic
on shapes with more than 2**31 elements without allocating them.
"""
from __future__ import annotations

import torch

INT32_MAX = 2**31 - 1


def element_offset(index: tuple[int, int, int, int], strides: tuple[int, int, int, int]) -> int:
    """Storage offset (in elements) of ``x[n, c, h, w]`` for the given strides."""
    return sum(i * s for i, s in zip(index, strides))


def max_element_offset(shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Largest storage offset any in-bounds index reaches (strides may be 0, never negative here)."""
    return sum((size - 1) * stride for size, stride in zip(shape, strides))


def needs_int64(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """True when some offset does not fit in int32, i.e. the kernel's int64 casts are load-bearing."""
    return max_element_offset(shape, strides) > INT32_MAX


def index_is_64(*tensors: torch.Tensor, lanes: int = 0) -> bool:
    """Whether a kernel over ``tensors`` needs int64 index arithmetic: some element offset, or a flat
    lane index up to ``lanes`` (plus a block of slack for the last program), passes 2**31 - 1.
    Otherwise the kernels compute indices in int32, which halves their index registers."""
    return lanes + (1 << 16) > INT32_MAX or any(needs_int64(t.shape, t.stride()) for t in tensors)


def memory_order(channels_last: bool) -> tuple[int, int, int, int]:
    """The dims of an (n, c, h, w) tensor from fastest to slowest in memory."""
    return (1, 3, 2, 0) if channels_last else (3, 2, 1, 0)


def unravel(linear: int, shape: tuple[int, int, int, int], channels_last: bool) -> tuple[int, int, int, int]:
    """(n, c, h, w) of element number ``linear`` of a dense tensor walked in its memory order.

    The max-pool kernels walk their (dense, freshly allocated) output in memory order this way:
    ``w`` fastest for NCHW, ``c`` fastest for channels_last.
    """
    index = [0, 0, 0, 0]
    for dim in memory_order(channels_last)[:3]:  # fastest first; n takes what is left
        linear, index[dim] = divmod(linear, shape[dim])
    index[0] = linear
    return tuple(index)


def dense_strides(shape: tuple[int, int, int, int], channels_last: bool) -> tuple[int, int, int, int]:
    """Strides of a dense NCHW or channels_last tensor of ``shape`` (what ``torch.empty`` would give)."""
    strides, step = [0, 0, 0, 0], 1
    for dim in memory_order(channels_last):
        strides[dim], step = step, step * shape[dim]
    return tuple(strides)

