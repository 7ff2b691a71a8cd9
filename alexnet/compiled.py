"""Whole-model ``torch.compile`` (``--compile-model`` and the benchmarks' baseline) with the Inductor
settings that keep its gradients equal to eager.

torch 2.13's C++ (CPU) Inductor backend drops a read-after-mutation dependency: when it aligns the loop
ranges of two pointwise nodes to fuse them (``SchedulerNode.recompute_size_and_body``), it re-derives
the first node's reads from its loop body and forgets that the buffer it reads was since mutated by
an extern kernel. In AlexNet's backward that buffer is the zero-filled gradient of pool5's max-pool,
which the ``scatter_add`` of ``max_pool2d_with_indices_backward``'s decomposition fills in place; the
peak-memory reordering pass (``reorder_for_peak_memory``) then runs the ReLU backward of conv5 before
the scatter, reading zeros, and one tower's conv3..conv5 get zero gradients. Turning that pass off
keeps the graph's own order, which is correct. ``bench/tools/inductor_mutation_repro.py`` shows the
fault without this project; ``tests/test_inductor_repro.py`` says when a torch release fixes it.
"""
from __future__ import annotations

import torch

# Inductor options for a compile whose model has a tower on the CPU (the C++ backend has the fault).
CPU_INDUCTOR_OPTIONS = {"reorder_for_peak_memory": False}


def inductor_options(devices) -> dict:
    """The ``torch.compile(options=...)`` for a model on ``devices`` (torch.device or names)."""
    return dict(CPU_INDUCTOR_OPTIONS) if any(torch.device(d).type == "cpu" for d in devices) else {}


def compile_model(module: torch.nn.Module, devices) -> torch.nn.Module:
    """``torch.compile(module)`` (Inductor) with ``inductor_options(devices)``."""
    return torch.compile(module, options=inductor_options(devices) or None)
