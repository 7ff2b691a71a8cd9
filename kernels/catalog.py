"""Each op described once: its name, how to call it, its eager reference, its output shape, the bytes it
must move, where AlexNet applies it and how closely a backend's gradient must agree with eager.

Tests, benchmarks (matrix, pre-timing check, % of copy bandwidth), counting and reports read ``OPS``;
the custom-op backends' side of each op (schemas, fakes, what autograd keeps) is declared in
``kernels/custom_ops.py``. Besides the three public ops, ``unfused`` is the chain
``relu_lrn`` then ``max_pool`` of one backend: what the fused op is measured against.

Minimal bytes (so that achieved GB/s = minimal bytes / time is a lower bound on what a kernel moved):
the forward reads ``x`` once and writes ``y`` once; forward+backward adds reading ``dy`` and ``x`` (the
only tensor a minimal kernel keeps: ReLU, LRN and the pool's argmax can be recomputed from it) and
writing ``dx``. The unfused chain is charged the fused op's minimum: its extra round trip of the
intermediate is exactly the cost fusion removes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from kernels.ops import max_pool, relu_lrn, relu_lrn_pool
from kernels.paper import PAPER_LRN, PAPER_POOL, pool_output_size

DIRECTIONS = ("fwd", "fwdbwd")
LRN_SETTINGS = tuple(PAPER_LRN)  # size, alpha, beta, k
POOL_SETTINGS = tuple(PAPER_POOL)  # kernel_size, stride

# Fraction of gradient elements within tolerance that an op with a max-pool over float32 LRN values
# needs: eager picks a window's maximum among LRN values rounded by its own arithmetic, a backend
# among its own; near-ties route a gradient to a different pixel. Measured: 9 of 4.6M gradient
# elements at conv1, batch 16, channels_last (float32, the cpp backend); in 16-bit types eager rounds the
# LRN values to 16 bits first, and at least 98% agree.
LRN_POOL_GRAD_AGREEMENT = {torch.float32: 1.0 - 1e-5, torch.bfloat16: 0.98, torch.float16: 0.98}


def unfused(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int, *,
            backend: str) -> torch.Tensor:
    """``relu_lrn`` then ``max_pool`` of one backend: two kernels, the intermediate in memory."""
    return max_pool(relu_lrn(x, size, alpha, beta, k, backend=backend), kernel_size, stride, backend=backend)


@dataclass(frozen=True)
class OpSpec:
    """One op: ``function(x, **settings, backend=...)``; ``lrn`` (applies ReLU then LRN) and ``pool``
    (max-pools), in that order, say which settings it takes."""

    name: str
    function: Callable[..., torch.Tensor]
    lrn: bool
    pool: bool
    alexnet_sites: tuple[str, ...]  # the conv layers whose activations it follows in AlexNet
    fused: bool = True  # False: the chain of the single ops (two kernels, the intermediate in memory)

    def settings(self, **overrides) -> dict:
        """The op's keyword settings: the paper's (``kernels.paper``) with ``overrides`` applied."""
        names = (LRN_SETTINGS if self.lrn else ()) + (POOL_SETTINGS if self.pool else ())
        unknown = set(overrides) - set(names)
        if unknown:
            raise TypeError(f"{self.name} takes no setting {', '.join(sorted(unknown))}; its settings: {names}")
        return {**{n: {**PAPER_LRN, **PAPER_POOL}[n] for n in names}, **overrides}

    def call(self, x: torch.Tensor, backend: str, **overrides) -> torch.Tensor:
        """The op on ``x`` through ``backend`` with the paper's settings unless overridden."""
        return self.function(x, **self.settings(**overrides), backend=backend)

    def reference(self, x: torch.Tensor, **overrides) -> torch.Tensor:
        """The eager reference: the fused op's semantics (the chain is the same math)."""
        return self.call(x, "eager", **overrides)

    def output_shape(self, shape, **overrides) -> tuple[int, int, int, int]:
        n, c, h, w = (int(d) for d in shape)
        if not self.pool:
            return (n, c, h, w)
        kw = self.settings(**overrides)
        ks, st = kw["kernel_size"], kw["stride"]
        return (n, c, pool_output_size(h, ks, st), pool_output_size(w, ks, st))

    def minimal_bytes(self, shape, element_size: int, direction: str, **overrides) -> int:
        """Minimum bytes the op must move on an input of ``shape`` (see the module docstring)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if element_size <= 0:
            raise ValueError(f"element_size must be positive, got {element_size}")
        x, y = math.prod(int(d) for d in shape), math.prod(self.output_shape(shape, **overrides))
        elements = x + y  # forward: read x, write y
        if direction == "fwdbwd":
            elements += y + x + x  # backward: read dy, re-read x, write dx
        return elements * element_size

    def grad_agreement(self, dtype: torch.dtype) -> float:
        """Fraction of input-gradient elements that must be within tolerance (1.0 but for near-ties)."""
        return LRN_POOL_GRAD_AGREEMENT.get(dtype, 1.0) if self.lrn and self.pool else 1.0


OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("relu_lrn", relu_lrn, lrn=True, pool=False, alexnet_sites=("conv1", "conv2")),
    OpSpec("max_pool", max_pool, lrn=False, pool=True, alexnet_sites=("conv1", "conv2", "conv5")),
    OpSpec("relu_lrn_pool", relu_lrn_pool, lrn=True, pool=True, alexnet_sites=("conv1", "conv2")),
    OpSpec("unfused", unfused, lrn=True, pool=True, alexnet_sites=("conv1", "conv2"), fused=False),
)}
PUBLIC_OPS = tuple(name for name, spec in OPS.items() if spec.fused)


def op_spec(name: str) -> OpSpec:
    """The entry for ``name``, or a ValueError that lists the ops."""
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; choose one of {', '.join(OPS)}") from None
