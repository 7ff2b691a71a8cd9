"""The paper's settings for AlexNet's memory-bound layers (Krizhevsky et al. 2012, sections 3.3-3.4) and
the pooling output-size rule, with no dependencies, so every layer of the project reads them here.

``PAPER_LRN``: ``size`` n=5, ``alpha`` 1e-4 in the paper's convention (it multiplies the plain sum of
squares; PyTorch's ``F.local_response_norm`` would need ``n * alpha``), ``beta`` 0.75, ``k`` 2.
``PAPER_POOL``: overlapping 3x3 windows at stride 2 (the ablation is 2/2).
``normalising_scale``: the input scale at which LRN normalises (what tests and checks feed kernels).
"""
from __future__ import annotations

import math
from types import MappingProxyType

PAPER_LRN = MappingProxyType({"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0})
PAPER_POOL = MappingProxyType({"kernel_size": 3, "stride": 2})


def pool_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output length of an unpadded, floor-mode pooling window sweep (as in the paper and ATen)."""
    return (size - kernel_size) // stride + 1


def normalising_scale(size: int = PAPER_LRN["size"], alpha: float = PAPER_LRN["alpha"],
                      k: float = PAPER_LRN["k"]) -> float:
    """The scale s of a standard normal input x = s z at which LRN normalises: alpha times the window's
    sum of squares equals k on average, so the denominator is ~2k instead of ~k.

    With a = relu(s z), E[a^2] = s^2 / 2, and a window of ``size`` channels sums to size s^2 / 2 on
    average: alpha size s^2 / 2 = k at s = sqrt(2 k / (size alpha)). For the paper's constants that is
    sqrt(8000) = 89.4 (|a| ~ 50-150, as after conv1 on 0-255 pixels). At s = 1 (``randn``) the LRN term
    is ~1e-4 of k: the output is relu(x) k^-beta within 1e-4, and a wrong window or a dropped
    cross-channel gradient term moves it by less than a 16-bit tolerance.
    """
    if size <= 0 or alpha <= 0 or k <= 0:
        raise ValueError(f"normalising_scale needs size, alpha and k > 0, got size={size}, alpha={alpha}, k={k}")
    return math.sqrt(2.0 * k / (size * alpha))
