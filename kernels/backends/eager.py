"""The ``eager`` backend: the PyTorch reference built from ``torch.nn.functional`` ops.

Tests and benchmarks compare every other backend against these functions. ``alpha`` arrives in the
paper's convention; ``F.local_response_norm`` divides alpha by ``size``, so it is given ``alpha * size``.
ATen has no float16/bfloat16 ``avg_pool3d`` on CPU (which ``F.local_response_norm`` uses), so on CPU
the LRN of a 16-bit tensor is computed in float32 and cast back; on GPU it runs in the input dtype.
"""
import torch
import torch.nn.functional as F


def unavailable_reason() -> str | None:
    return None


def device_problem(device: torch.device) -> str | None:
    return None


def relu_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    if x.device.type == "cpu" and (x.dtype == torch.float16 or x.dtype == torch.bfloat16):
        return F.local_response_norm(torch.relu(x.float()), size, alpha=alpha * size, beta=beta, k=k).to(x.dtype)
    return F.local_response_norm(torch.relu(x), size, alpha=alpha * size, beta=beta, k=k)


def max_pool(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size, stride)


def relu_lrn_pool(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int
) -> torch.Tensor:
    return F.max_pool2d(relu_lrn(x, size, alpha, beta, k), kernel_size, stride)
