"""A locally connected layer: a convolution whose weights are not shared between output positions.

cuda-convnet's ``type=local`` layer (``layer.py`` ``LocalUnsharedLayerParser``): every output position
``(i, j)`` of an ``H_out x W_out`` map has its own ``C_in * k * k -> C_out`` filter bank and its own
``C_out`` biases, with the same padding/stride geometry as a convolution (output size
``1 + ceil((2 * padding + size - k) / stride)``, which equals PyTorch's floor rule whenever the windows
tile the padded input exactly, as with k=3, padding=1, stride=1).

The forward pass gathers the patches positions-major, ``L x N x k*k*C_in`` (L = H_out * W_out), from
``k * k`` strided slices of the zero-padded input viewed as ``H x W x N x C`` (one ``stack``), then runs one
batched matrix product over positions (``@ L x k*k*C_in x C_out``); the product comes out as
``H x W x N x C_out``, which is what the next locally connected layer's ``permute`` reads as contiguous.
Autograd differentiates the slices and the product. (``F.unfold`` + ``bmm`` computes the same but was
5-10x slower here: ``im2col`` on these small maps and the ``N x K x L -> L x N x K`` transpose copy.) Under bfloat16 autocast
the product runs in bfloat16 (``bmm`` is on autocast's lower-precision list); any input layout works (the slices are strided views),
and the output is a permuted view of the product, no copy.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
        k, st, s = self.kernel_size, self.stride, self.out_size
        # positions-major patches, built from k*k strided slices of the padded H x W x N x C view
        xp = F.pad(x.permute(2, 3, 0, 1), (0, 0, 0, 0, self.padding, self.padding, self.padding, self.padding))
        span = st * (s - 1) + 1
        patches = torch.stack([xp[i:i + span:st, j:j + span:st] for i in range(k) for j in range(k)], dim=3)
        cols = patches.reshape(s * s, n, k * k * c)                # L x N x (k*k*C_in), rows (kh, kw, c)
        out = torch.bmm(cols, self.weight)                         # L x N x C_out (bf16 under autocast)
        out = out.view(s, s, n, self.out_channels).permute(2, 3, 0, 1)  # N x C_out x H x W, a view, no copy
        return out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, stride={self.stride}, out_size={self.out_size}")
