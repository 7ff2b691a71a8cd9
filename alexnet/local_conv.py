"""A locally connected layer: a convolution whose weights are not shared between output positions.

cuda-convnet's ``type=local`` layer (``layer.py`` ``LocalUnsharedLayerParser``): every output position
``(i, j)`` of an ``H_out x W_out`` map has its own ``C_in * k * k -> C_out`` filter bank and its own
``C_out`` biases, with the same padding/stride geometry as a convolution (output size
``1 + ceil((2 * padding + size - k) / stride)``, which equals PyTorch's floor rule whenever the windows
tile the padded input exactly, as with k=3, padding=1, stride=1).

The layer works in cuda-convnet's own layout, pixels x channels x images: the input is viewed as
``H*W x C*N`` rows, one product with a constant 0/1 matrix gathers every (position, tap) row (zero on the
padding) into ``L x k*k*C_in x N`` (L = H_out * W_out), and one batched matrix product over
positions, ``weight^T @ cols``, gives ``L x C_out x N``: the layout the next locally connected layer reads
without a copy; the result is returned as an ``N x C_out x H x W`` view of it. Backward is autograd's:
two batched products and the gather's transpose product. On this
2-core CPU, ``F.unfold`` + ``bmm`` and a ``stack`` of k*k strided slices were several times slower at
these shapes (``im2col``, transposing copies, one zero-filled buffer per slice in backward), and so was
``index_select`` for the gather (its gradient is a scatter). Under bfloat16 autocast
the product runs in bfloat16 (``bmm`` is on autocast's lower-precision list); any input layout works (the slices are strided views),
and the output is a permuted view of the product, no copy.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def local_output_size(size: int, kernel_size: int, padding: int, stride: int) -> int:
    """cuda-convnet's ``modulesX``: ``1 + ceil((2 * padding + size - kernel_size) / stride)``."""
    return 1 + math.ceil((2 * padding + size - kernel_size) / stride)


class LocallyConnected2d(nn.Module):
    """Unshared ``kernel_size x kernel_size`` filters, one bank per output position.

    ``weight``: ``L x (k * k * C_in) x C_out``, L = H_out * W_out positions in row-major order, rows ordered
    (kernel row, kernel column, input channel); ``bias``: ``C_out x H_out x W_out``.
    """

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel_size: int = 3,
                 padding: int = 1, stride: int = 1):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("in_size", in_size),
                            ("kernel_size", kernel_size), ("stride", stride)):
            if value < 1:
                raise ValueError(f"LocallyConnected2d: {name} must be at least 1, got {value}")
        if padding < 0:
            raise ValueError(f"LocallyConnected2d: padding must be >= 0, got {padding}")
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, in_size
        self.kernel_size, self.padding, self.stride = kernel_size, padding, stride
        self.out_size = local_output_size(in_size, kernel_size, padding, stride)
        if (in_size + 2 * padding - kernel_size) % stride:
            raise ValueError(f"LocallyConnected2d: windows of {kernel_size} at stride {stride} do not tile "
                             f"{in_size}+2*{padding} px exactly (cuda-convnet would read past the padding)")
        positions = self.out_size * self.out_size
        self.weight = nn.Parameter(torch.empty(positions, kernel_size * kernel_size * in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_size, self.out_size))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c != self.in_channels or h != self.in_size or w != self.in_size:
            raise ValueError(f"LocallyConnected2d: expected N x {self.in_channels} x {self.in_size} x {self.in_size} "
                             f"input, got {tuple(x.shape)}")
        s, f = self.out_size, self.out_channels
        rows = x.permute(2, 3, 1, 0).reshape(h * w, c * n)          # H*W x C*N (no copy after another local layer)
        cols = self._gather_matrix(x.device, rows.dtype) @ rows     # L*k*k x C*N: a 0/1 gather as a GEMM
        cols = cols.view(s * s, self.kernel_size ** 2 * c, n)       # L x (k*k*C_in) x N
        out = torch.bmm(self.weight.transpose(1, 2), cols)          # L x C_out x N (bf16 under autocast)
        out = out + self.bias.permute(1, 2, 0).reshape(s * s, f, 1).to(out.dtype)
        return out.view(s, s, f, n).permute(3, 2, 0, 1)            # N x C_out x H x W, a view of H x W x C x N

    def _gather_matrix(self, device, dtype) -> torch.Tensor:
        """``G`` (L*k*k x H*W, 0/1): row (position, tap) picks input pixel ``y * W + x``, or is all zero where
        the tap falls on the padding. ``G @ rows`` gathers; its gradient ``G^T @ grad`` is a GEMM too, where
        ``index_select``'s (``index_add_``, a scatter) was the slowest op of the net's training step."""
        g = getattr(self, "_gather", None)
        if g is None or g.device != device or g.dtype != dtype:
            k, p, st, size = self.kernel_size, self.padding, self.stride, self.in_size
            g = torch.zeros(self.out_size ** 2 * k * k, size * size, dtype=dtype, device=device)
            row = 0
            for oy in range(self.out_size):
                for ox in range(self.out_size):
                    for ky in range(k):
                        for kx in range(k):
                            y, x = oy * st + ky - p, ox * st + kx - p
                            if 0 <= y < size and 0 <= x < size:
                                g[row, y * size + x] = 1
                            row += 1
            self._gather = g
        return g

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, stride={self.stride}, out_size={self.out_size}")
