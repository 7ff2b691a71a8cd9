"""The paper's settings for AlexNet's memory-bound layers (Krizhevsky et al. 2012, sections 3.3-3.4) and
the pooling output-size rule, with no dependencies, so every layer of the project reads them here.

``PAPER_LRN``: ``size`` n=5, ``alpha`` 1e-4 in the paper's convention (it multiplies the plain sum of
squares; PyTorch's ``F.local_response_norm`` would need ``n * alpha``), ``beta`` 0.75, ``k`` 2.
``PAPER_POOL``: overlapping 3x3 windows at stride 2 (the ablation is 2/2).
"""
from __future__ import annotations

from types import MappingProxyType

PAPER_LRN = MappingProxyType({"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0})
PAPER_POOL = MappingProxyType({"kernel_size": 3, "stride": 2})


def pool_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output length of an unpadded, floor-mode pooling window sweep (as in the paper and ATen)."""
    return (size - kernel_size) // stride + 1
