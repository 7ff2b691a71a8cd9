"""One optimisation step of a classifier, shared by the training loops (``alexnet.train``, the CIFAR-10
studies and the speed tools): autocast by name, the forward with its cross-entropy loss, and the update."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device_type: str, amp: str):
    """The autocast context for ``amp`` ('off', 'bf16' or 'fp16') on ``device_type``."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=AMP_DTYPES[amp])


def logits_and_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, amp: str = "off",
                    device_type: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits (float32 whatever the autocast) and their mean cross-entropy against ``y``."""
    with autocast(device_type, amp):
        logits = model(x).float()
        return logits, F.cross_entropy(logits, y)


def sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
             amp: str = "off", device_type: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward and one ``opt`` update on the batch (x, y); the detached logits and loss."""
    logits, loss = logits_and_loss(model, x, y, amp=amp, device_type=device_type)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits.detach(), loss.detach()
