"""How the host code starts a Triton kernel, and a way to record launches instead of running them.

On a GPU kernels go through ``torch.library.wrap_triton`` so that ``triton_op`` can trace them;
under the interpreter they are called directly. ``recording_launches()`` captures every launch
(kernel, grid, arguments, meta-parameters) without running it: ``bench.tools.kernel_resources`` uses it to
compile exactly what the host code would launch, for a GPU this machine does not have.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from kernels.interpreter import triton_interpreted


@dataclass
class Launch:
    """One kernel launch as the host code asked for it."""

    kernel: Any
    grid: tuple
    args: tuple
    meta: dict = field(default_factory=dict)


_recorded: list[Launch] | None = None


def launch(kernel, grid, *args, **meta) -> None:
    """Launch through ``wrap_triton`` on a GPU (traceable inside ``triton_op``), directly otherwise."""
    if _recorded is not None:
        _recorded.append(Launch(kernel, tuple(grid), args, meta))
    elif triton_interpreted():
        kernel[grid](*args, **meta)
    else:
        from torch.library import wrap_triton

        wrap_triton(kernel)[grid](*args, **meta)


@contextlib.contextmanager
def recording_launches() -> Iterator[list[Launch]]:
    """Within the block, kernels are not run; each launch is appended to the yielded list."""
    global _recorded
    previous, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = previous
