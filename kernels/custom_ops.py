"""How a custom op of the ``cpp`` and ``triton`` backends is declared, as PyTorch's
``native_functions.yaml`` declares ATen's: ``CustomOp`` holds its forward and backward signature (the
annotated fakes of ``kernels/op_shapes.py``, whose signatures are the schemas), what autograd keeps for
the backward, and whether the backward is told the input's height and width. Each op's declaration is
part of its entry in ``kernels.catalog.OPS`` (``OpSpec.custom``; ``kernels.catalog.CUSTOM_OPS`` collects
them).

Both backends loop over ``CUSTOM_OPS``: the ``cpp`` backend defines every schema (``define_schemas``)
before its extension loads (the C++ side only implements them), the ``triton`` backend wraps its
launchers in these signatures; both register the fakes and the one autograd pattern
(``kernels/backends/autograd.py``) from the same entries, and make each op's Python function with
``CustomOp.backend_function``. A pooling op returns ``(y, offsets)``, and on a CPU the ``cpp`` backend
also has an inference-only ``<op>_values`` form that returns ``y`` alone (``values_schema``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch

SAVABLE = ("x", "offsets")  # the forward's input, the forward's second output


@dataclass(frozen=True)
class CustomOp:
    forward: Callable  # the forward's fake: its name and annotated signature are the op's
    backward: Callable  # the backward's: (grad_y, *saved, [height, width,] *settings)
    saves: tuple[str, ...]  # what autograd keeps, from SAVABLE, in the backward's argument order
    geometry: bool = False  # the backward is told the input's height and width

    def __post_init__(self):
        unknown = set(self.saves) - set(SAVABLE)
        if unknown:
            raise ValueError(f"{self.name}: cannot save {sorted(unknown)}; choose from {SAVABLE}")
        expected = ["grad_y", *self.saves, *(("height", "width") if self.geometry else ()), *self.settings]
        if list(inspect.signature(self.backward).parameters) != expected:
            raise ValueError(f"{self.backward.__name__} must take ({', '.join(expected)})")

    @property
    def name(self) -> str:
        return self.forward.__name__

    @property
    def backward_name(self) -> str:
        return self.backward.__name__

    @property
    def settings(self) -> tuple[str, ...]:
        """The forward's arguments after ``x``: the op's settings, in schema order."""
        return tuple(inspect.signature(self.forward).parameters)[1:]

    @property
    def pooled(self) -> bool:
        """Returns ``(y, offsets)`` (a pooling op) rather than ``y``."""
        return "offsets" in self.saves

    @property
    def schema(self) -> str:
        return torch.library.infer_schema(self.forward, mutates_args=())

    @property
    def backward_schema(self) -> str:
        return torch.library.infer_schema(self.backward, mutates_args=())

    @property
    def values_schema(self) -> str:
        """The inference-only ``<name>_values`` form's schema: the forward's, returning ``y`` alone."""
        return self.schema.rsplit("->", 1)[0] + "-> Tensor"

    def values_fake(self, *args):
        return self.forward(*args)[0]

    def backend_function(self, output: Callable) -> Callable:
        """A backend's Python function for this op, named and signed as declared: ``op(x, *settings)``,
        settings by position or keyword (a TypeError names a missing or unknown one), returning
        ``output(x, settings)`` with the settings in schema order."""
        signature = inspect.signature(self.forward)

        def op(x: torch.Tensor, *settings, **named) -> torch.Tensor:
            if named:
                settings = tuple(signature.bind(x, *settings, **named).arguments.values())[1:]
            return output(x, settings)

        op.__name__ = op.__qualname__ = self.name
        op.__signature__ = signature
        return op


def define_schemas(library: torch.library.Library, values: bool = False) -> None:
    """Defines every declared op (``kernels.catalog.CUSTOM_OPS``) and its backward op in ``library`` (and
    each pooling op's ``_values`` form if asked)."""
    from kernels.catalog import CUSTOM_OPS  # the catalog holds the declarations and imports this module

    for op in CUSTOM_OPS.values():
        library.define(op.name + op.schema)
        library.define(op.backward_name + op.backward_schema)
        if values and op.pooled:
            library.define(f"{op.name}_values{op.values_schema}")
