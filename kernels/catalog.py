"""Each op described once: its name, how to call it, the steps of its math (each with its settings and
their paper values, its counted vector work and its ONNX equivalent), its eager reference, its output
shape, the bytes it must move, where AlexNet applies it and how closely a backend's gradient must agree
with eager.

Each public op's entry also declares it as a custom op of the ``cpp`` and ``triton`` backends (schema,
fakes, what autograd keeps: ``OpSpec.custom``, collected in ``CUSTOM_OPS``; ``kernels/custom_ops.py``
says how), and both backends register from it. Tests, benchmarks (matrix, pre-timing check, % of the
memory and compute roofs), the peers' ONNX graphs, counting and reports read ``OPS``. Besides the three
public ops, ``unfused`` is the chain ``relu_lrn`` then ``max_pool`` of one backend: what the fused op is
measured against.

Minimal bytes (so that achieved GB/s = minimal bytes / time is a lower bound on what a kernel moved):
the forward reads ``x`` once and writes ``y`` once; forward+backward adds reading ``dy`` and ``x`` (the
only tensor a minimal kernel keeps: ReLU, LRN and the pool's argmax can be recomputed from it) and
writing ``dx``. The unfused chain is charged the fused op's minimum: its extra round trip of the
intermediate is exactly the cost fusion removes.

Vector operations (the compute roof): the arithmetic operations per element of a step's output that a
vectorized kernel of it needs at least, counted on the formulas (one operation = one instruction on a
full vector; loads, stores and index work are not counted, so the roof they give is optimistic):
* ReLU + LRN forward: ReLU 1 (max), square 1, the sliding window sum over channels 2 (add the entering
  square, subtract the leaving one), k + alpha * sum 1 (FMA), d^-beta for beta = 3/4 as r = rsqrt(d)
  refined by one Newton step (estimate 1 + 3) times sqrt(r) = r * rsqrt(r) refined likewise (1 + 3 + 1),
  then the product 1 and a * d^-beta 1: 15. Its backward: the forward's window sum and d^-beta recomputed
  (15), 1/d (estimate and one Newton step: 3), t = dy * a * d^-beta * (1/d) (3), the window sum of t (2),
  dx = dy * d^-beta - 2 alpha beta * a * sum(t) (3), the ReLU mask (1): 27.
* 3x3 max-pool at stride 2, per output element: each window row's maximum is 2 operations, rows shared
  by vertically neighbouring windows count once (3 rows of which 1 is shared: 2.5 rows), and 2 more
  combine the rows: 7. Its backward: 1 (the gradient added at its argmax).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple

import torch

from kernels import op_shapes
from kernels.custom_ops import CustomOp
from kernels.ops import max_pool, relu_lrn, relu_lrn_pool
from kernels.paper import PAPER_LRN, PAPER_POOL, normalising_scale, pool_output_size

DIRECTIONS = ("fwd", "fwdbwd")
Shape = tuple[int, int, int, int]


class OnnxNode(NamedTuple):
    """An ONNX operator of a step: its type, its attributes, and the values of the constant scalar inputs
    it takes after the tensor it is chained on (ONNX's ``Mul`` takes its factor so)."""

    op_type: str
    attributes: Mapping = MappingProxyType({})
    constants: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class Step:
    """One step of an op's math on an NCHW activation, as ops chain them.

    ``settings`` maps each of the step's keyword settings to its paper value; ``output_shape(shape,
    settings)`` and ``onnx(settings)`` (the ONNX operators computing the same, in order) take the step's
    settings; ``forward_ops`` / ``backward_ops`` count vector operations per output element (see the
    module docstring); ``input_scale`` is the scale of a standard normal input at which the step's math
    is exercised (LRN: where it normalises, ``kernels.paper.normalising_scale``), 1 when any input is.
    """

    name: str
    settings: Mapping[str, float]
    output_shape: Callable[[Shape, dict], Shape]
    onnx: Callable[[dict], list[OnnxNode]]
    forward_ops: int
    backward_ops: int
    input_scale: float = 1.0


def _same_shape(shape: Shape, settings: dict) -> Shape:
    return shape


def _pooled_shape(shape: Shape, settings: dict) -> Shape:
    n, c, h, w = shape
    ks, st = settings["kernel_size"], settings["stride"]
    return (n, c, pool_output_size(h, ks, st), pool_output_size(w, ks, st))


def _relu_lrn_onnx(s: dict) -> list[OnnxNode]:
    # ONNX: y = x / (bias + alpha / size * sum x^2) ** beta, so alpha = size * (paper alpha)
    size = int(s["size"])
    lrn = dict(size=size, alpha=float(s["alpha"]) * size, beta=float(s["beta"]), bias=float(s["k"]))
    return [OnnxNode("Relu"), OnnxNode("LRN", lrn)]


def _max_pool_onnx(s: dict) -> list[OnnxNode]:
    ks, st = int(s["kernel_size"]), int(s["stride"])
    return [OnnxNode("MaxPool", dict(kernel_shape=[ks, ks], strides=[st, st], pads=[0, 0, 0, 0], ceil_mode=0))]


RELU_LRN = Step("relu_lrn", PAPER_LRN, _same_shape, _relu_lrn_onnx, forward_ops=15, backward_ops=27,
                input_scale=normalising_scale())
MAX_POOL = Step("max_pool", PAPER_POOL, _pooled_shape, _max_pool_onnx, forward_ops=7, backward_ops=1)

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
    """One op: ``function(x, **settings, backend=...)`` computes its ``steps`` in order; its settings are
    theirs (the paper's values by default)."""

    name: str
    function: Callable[..., torch.Tensor]
    steps: tuple[Step, ...]
    alexnet_sites: tuple[str, ...]  # the conv layers whose activations it follows in AlexNet
    # its declaration as a custom op of the cpp and triton backends (schema, fakes, what autograd keeps);
    # None: not one op there (the unfused chain)
    custom: CustomOp | None = None
    fused: bool = True  # False: the chain of the single ops (two kernels, the intermediate in memory)
    batch_sweep: bool = False  # also measured on a GPU at other batch sizes (bench/shapes.py)

    def __post_init__(self):
        names = [n for step in self.steps for n in step.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: its steps' settings overlap: {names}")
        if self.custom is not None and (self.custom.name, self.custom.settings) != (self.name, tuple(names)):
            raise ValueError(f"{self.name}: declared as {self.custom.name}{self.custom.settings}, "
                             f"its steps' settings are {tuple(names)}")

    @property
    def defaults(self) -> dict:
        """Every setting with its paper value, in the steps' order."""
        return {n: v for step in self.steps for n, v in step.settings.items()}

    @property
    def input_scale(self) -> float:
        """The scale of a standard normal input at which the op's math is exercised (the largest any of
        its steps needs; 1 when any input is)."""
        return max(step.input_scale for step in self.steps)

    def settings(self, **overrides) -> dict:
        """The op's keyword settings: the paper's (``kernels.paper``) with ``overrides`` applied."""
        defaults = self.defaults
        unknown = set(overrides) - set(defaults)
        if unknown:
            raise TypeError(f"{self.name} takes no setting {', '.join(sorted(unknown))}; "
                            f"its settings: {tuple(defaults)}")
        return {**defaults, **overrides}

    def call(self, x: torch.Tensor, backend: str, **overrides) -> torch.Tensor:
        """The op on ``x`` through ``backend`` with the paper's settings unless overridden."""
        return self.function(x, **self.settings(**overrides), backend=backend)

    def reference(self, x: torch.Tensor, **overrides) -> torch.Tensor:
        """The eager reference: the fused op's semantics (the chain is the same math)."""
        return self.call(x, "eager", **overrides)

    def step_shapes(self, shape, **overrides) -> list[Shape]:
        """The shape after each step, for an NCHW input of ``shape``."""
        settings, shapes = self.settings(**overrides), []
        current = tuple(int(d) for d in shape)
        for step in self.steps:
            current = step.output_shape(current, settings)
            shapes.append(current)
        return shapes

    def output_shape(self, shape, **overrides) -> Shape:
        return self.step_shapes(shape, **overrides)[-1]

    def minimal_bytes(self, shape, element_size: int, direction: str, **overrides) -> int:
        """Minimum bytes the op must move on an input of ``shape`` (see the module docstring)."""
        _check_direction(direction)
        if element_size <= 0:
            raise ValueError(f"element_size must be positive, got {element_size}")
        x, y = math.prod(int(d) for d in shape), math.prod(self.output_shape(shape, **overrides))
        elements = x + y  # forward: read x, write y
        if direction == "fwdbwd":
            elements += y + x + x  # backward: read dy, re-read x, write dx
        return elements * element_size

    def vector_ops(self, shape, direction: str, **overrides) -> int:
        """Counted arithmetic vector operations of one lane each (divide by the vector width) on an input
        of ``shape``: each step's count per element of its output (see the module docstring)."""
        _check_direction(direction)
        total = 0
        for step, out in zip(self.steps, self.step_shapes(shape, **overrides)):
            per_element = step.forward_ops + (step.backward_ops if direction == "fwdbwd" else 0)
            total += per_element * math.prod(out)
        return total

    def onnx_nodes(self, **overrides) -> list[OnnxNode]:
        """The ONNX operators computing the op, in order (each step's with its settings)."""
        settings = self.settings(**overrides)
        return [node for step in self.steps for node in step.onnx(settings)]

    def grad_agreement(self, dtype: torch.dtype) -> float:
        """Fraction of input-gradient elements that must be within tolerance (1.0 but for near-ties)."""
        pools_computed_values = MAX_POOL in self.steps[1:]  # a max over values the op itself computed
        return LRN_POOL_GRAD_AGREEMENT.get(dtype, 1.0) if pools_computed_values else 1.0


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("relu_lrn", relu_lrn, (RELU_LRN,), alexnet_sites=("conv1", "conv2"), batch_sweep=True,
           custom=CustomOp(op_shapes.relu_lrn, op_shapes.relu_lrn_backward, saves=("x",))),
    OpSpec("max_pool", max_pool, (MAX_POOL,), alexnet_sites=("conv1", "conv2", "conv5"),
           custom=CustomOp(op_shapes.max_pool, op_shapes.max_pool_backward, saves=("offsets",), geometry=True)),
    OpSpec("relu_lrn_pool", relu_lrn_pool, (RELU_LRN, MAX_POOL), alexnet_sites=("conv1", "conv2"), batch_sweep=True,
           custom=CustomOp(op_shapes.relu_lrn_pool, op_shapes.relu_lrn_pool_backward, saves=("x", "offsets"))),
    OpSpec("unfused", unfused, (RELU_LRN, MAX_POOL), alexnet_sites=("conv1", "conv2"), fused=False),
)}
# The custom ops of the cpp and triton backends (kernels/custom_ops.py says how they are declared)
CUSTOM_OPS: dict[str, CustomOp] = {name: spec.custom for name, spec in OPS.items() if spec.custom is not None}
PUBLIC_OPS = tuple(name for name, spec in OPS.items() if spec.fused)


def op_spec(name: str) -> OpSpec:
    """The entry for ``name``, or a ValueError that lists the ops."""
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; choose one of {', '.join(OPS)}") from None
