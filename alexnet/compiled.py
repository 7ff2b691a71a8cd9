"""Whole-model ``torch.compile`` (``--compile-model`` and the benchmarks' baseline) whose gradients equal
eager's on a CPU.

torch 2.13's C++ (CPU) Inductor backend loses a read-after-mutation dependency (pytorch/pytorch#185509,
fixed upstream by pytorch/pytorch#185873): Inductor decomposes ``max_pool2d_with_indices_backward`` into
a zero-filled buffer that an extern ``scatter_add`` fills in place; when the scheduler aligns the loop
ranges of two pointwise nodes to fuse them (``SchedulerNode.recompute_size_and_body``) it re-derives a
node's reads without the mutation renames, so the ReLU backward that reads the scattered gradient only
waits for the zero fill. The peak-memory reordering then runs it first: it reads zeros, and in AlexNet
one tower's conv3..conv5 get zero gradients (67 and 131 px inputs, where pool5's output is 1x1 or 3x3).

The workaround, for models with a tower on the CPU: compile with Inductor's own lowering of the max-pool
backward (it gathers, nothing is mutated) instead of that decomposition, and with the peak-memory
reordering off. It is the Inductor backend otherwise; the architecture and ``state_dict`` are untouched.
``tests/repros/inductor_scatter_mutation.py`` shows the fault without this project and
``tests/test_inductor_repro.py`` says when a torch release fixes it (then drop this workaround).
"""
from __future__ import annotations

import torch

import kernels

# Changes the compile's cache key too: an artifact compiled without the workaround is never reused.
CPU_INDUCTOR_OPTIONS = {"reorder_for_peak_memory": False}
_MAX_POOL_BACKWARD = torch.ops.aten.max_pool2d_with_indices_backward.default


def inductor_options(devices) -> dict:
    """Inductor config patches for a model on ``devices`` (torch.device or names): the CPU ones or none."""
    return dict(CPU_INDUCTOR_OPTIONS) if any(torch.device(d).type == "cpu" for d in devices) else {}


def cpu_safe_inductor(gm: torch.fx.GraphModule, example_inputs):
    """A ``torch.compile`` backend: Inductor without the scatter-based max-pool backward decomposition."""
    from torch._inductor.compile_fx import compile_fx
    from torch._inductor.decomposition import select_decomp_table

    table = {op: fn for op, fn in select_decomp_table().items() if op is not _MAX_POOL_BACKWARD}
    return compile_fx(gm, example_inputs, config_patches=dict(CPU_INDUCTOR_OPTIONS), decompositions=table)


def _resolve_kernels_backends(module: torch.nn.Module) -> None:
    """Look up every kernels backend the model names before Dynamo traces it. The first lookup imports
    the backend's module; traced, that import is a graph break, and Dynamo keeps it in the compiled code
    for good (measured: the two-tower AlexNet, compiled first in a process, became 8 graphs instead of 1)."""
    for name in {getattr(getattr(m, "cfg", None), "kernels", None) for m in module.modules()} - {None}:
        kernels.get_backend(name)


def compile_model(module: torch.nn.Module, devices, dynamic: bool | None = None) -> torch.nn.Module:
    """``torch.compile(module)`` with Inductor, made safe for the CPU when a tower is there.

    ``dynamic`` is ``torch.compile``'s: ``None`` (a second input shape recompiles with symbolic sizes,
    what training wants) or ``False`` (every shape compiled as a constant, what a benchmark of fixed
    shapes measures)."""
    _resolve_kernels_backends(module)
    if inductor_options(devices):
        return torch.compile(module, backend=cpu_safe_inductor, dynamic=dynamic)
    return torch.compile(module, dynamic=dynamic)
