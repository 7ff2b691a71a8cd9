"""Standalone repro (torch only): CPU Inductor computes wrong gradients for conv2d -> max_pool2d -> where.

torch 2.13: Inductor decomposes max_pool2d's backward into a zero-filled buffer that an extern
``scatter_add`` fills in place; aligning two pointwise loops for fusion (``recompute_size_and_body``)
drops the node's mutation renames, so a consumer of the scattered buffer is scheduled as if it read the
zeros. Upstream: pytorch/pytorch#185509, fixed by pytorch/pytorch#185873.
``python tests/repros/inductor_scatter_mutation.py`` prints the gradients' largest differences from
eager and exits 1 while the fault is there. No caching: a cached artifact would hide a fix or a fault.
"""
import sys

import torch
import torch.nn.functional as F


def fn(x, weight, bias, mask):
    conv = F.conv2d(x, weight, bias, padding=1)
    return torch.where(mask, conv, F.max_pool2d(conv, kernel_size=3, stride=1, padding=1))


def gradient_errors(backend="inductor") -> list[float]:
    """Largest |compiled - eager| of the gradients of x, weight and bias (all ~1e-4 when correct)."""
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 3, 6, 7), torch.randn(4, 3, 3, 3), torch.randn(4)
    mask = torch.rand(2, 4, 6, 7) < 0.5

    def grads(f):
        inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
        f(*inputs, mask).square().sum().backward()
        return [t.grad for t in inputs]

    torch._dynamo.reset()
    with torch._inductor.config.patch(force_disable_caches=True):
        compiled = grads(torch.compile(fn, backend=backend))
    return [(c - e).abs().max().item() for c, e in zip(compiled, grads(fn))]


if __name__ == "__main__":
    # Inductor writes its C++ for torch's thread count; with one thread the generated order happens to be right
    torch.set_num_threads(max(2, torch.get_num_threads()))
    errors = gradient_errors()
    print(f"torch {torch.__version__}: max |inductor - eager| of dx, dweight, dbias = {errors}")
    sys.exit(0 if max(errors) < 1e-2 else 1)
