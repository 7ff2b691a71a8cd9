"""The paper's optimiser: SGD with momentum and weight decay, in PyTorch's fused form where it has one.

``paper_sgd`` builds ``torch.optim.SGD`` with ``fused=True`` when every parameter is a floating-point
tensor on the CPU or a CUDA GPU (where PyTorch has fused SGD kernels), else PyTorch's default form.
The update is the same (``torch.optim.SGD``'s documented rule); the fused one reads and writes each
parameter, gradient and momentum buffer once per step, where the default form makes several passes:
on a 2-core CPU one step over AlexNet's 61M parameters takes about 24 ms fused against 95-130 ms
(``bench/tools/profile_step.py`` shows its share of a training step).
"""
from __future__ import annotations

from typing import Iterable

import torch


FUSED_DEVICE_TYPES = ("cpu", "cuda")  # the suite's devices; PyTorch has fused SGD kernels for both


def paper_sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9,
              weight_decay: float = 5e-4) -> torch.optim.SGD:
    """SGD with momentum and weight decay over ``params``, fused where PyTorch can fuse it.

    (``torch.optim.SGD`` checks a fused optimiser's tensors only at its first step, so the check is made
    here, before building it.)
    """
    params = list(params)
    fusable = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICE_TYPES for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fusable or None)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` runs PyTorch's fused kernels."""
    return bool(optimizer.defaults.get("fused"))
