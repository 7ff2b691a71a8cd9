"""Build the cpp extension at one instruction-set level and measure it: run as
``ATEN_CPU_CAPABILITY=<level> python -m tests.isa_probe`` (torch reads the level once, at start-up, so
each level needs its own process; ``tests/test_cpp_isa_builds.py`` starts them).

Prints one JSON object: the level torch dispatches to, the level the loaded build reports, its cache
name, the LRN forward's error against float64 (max relative error and max ulp, float32 and bfloat16,
both layouts, over window sums from ~0 to ~1e36 and at the normalising scale), and every op's forward
and input gradient against eager at the normalising scale (``kernels.tolerances.compare``), NaN/inf
positions included. Exit 0 with ``"reason"`` set when the build failed.
"""
from __future__ import annotations

import itertools
import json
import sys

import torch

from kernels.backends import cpp as cpp_backend
from kernels.backends import eager as reference
from kernels.catalog import OPS
from kernels.paper import PAPER_LRN, normalising_scale
from kernels.tolerances import compare

LRN = dict(PAPER_LRN)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _error_inputs() -> list[torch.Tensor]:
    """Window sums from ~0 to ~1e36 (per position a scale 10^-3..10^18; 64 channels: whole vectors and
    edges), and randn at the normalising scale (19 channels: a vector tail)."""
    gen = torch.Generator().manual_seed(0)
    scale = torch.logspace(-3, 18, 1024, dtype=torch.float64)
    wide = (scale[:, None] * torch.rand(1024, 64, generator=gen, dtype=torch.float64)).T.reshape(1, 64, 32, 32)
    normalising = torch.randn(2, 19, 15, 13, generator=gen, dtype=torch.float64) * normalising_scale()
    return [wide, normalising]


def _ulp(ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype`` at |ref| (normal range): 2^(exponent - mantissa bits)."""
    _, exponent = torch.frexp(ref.abs())
    bits = {torch.float32: 24, torch.bfloat16: 8, torch.float16: 11}[dtype]
    return torch.ldexp(torch.ones_like(ref), (exponent - bits).to(torch.int32).double())


def forward_error(dtype: torch.dtype) -> dict:
    """Max relative error and max ulp of the cpp LRN forward against float64, over both layouts."""
    worst_rel, worst_ulp = 0.0, 0.0
    for x64 in _error_inputs():
        x = x64.to(dtype)  # the float64 reference sees the same (rounded) input values
        ref = reference.relu_lrn(x.double(), **LRN)
        for fmt in LAYOUTS.values():
            y = cpp_backend.relu_lrn(x.contiguous(memory_format=fmt), **LRN).double()
            nonzero = ref != 0
            if not torch.equal(y[~nonzero], ref[~nonzero]):
                raise AssertionError(f"{dtype}: nonzero output where float64 gives 0")
            err = (y - ref).abs()[nonzero]
            worst_rel = max(worst_rel, float((err / ref.abs()[nonzero]).max()))
            worst_ulp = max(worst_ulp, float((err / _ulp(ref[nonzero], dtype)).max()))
    return {"max_rel_err": worst_rel, "max_ulp": worst_ulp}


def _special(x: torch.Tensor) -> torch.Tensor:
    """x with a NaN, a -inf and two +inf, at fixed positions (wrapped into x's shape)."""
    x = x.clone()
    nan, inf = float("nan"), float("inf")
    for at, value in (((0, 2, 1, 1), nan), ((0, 0, 3, 3), -inf), ((1, 18, 5, 2), inf), ((1, 7, 6, 6), inf)):
        x[tuple(i % n for i, n in zip(at, x.shape))] = value
    return x


def _classes(t: torch.Tensor) -> torch.Tensor:
    return torch.stack([t.isnan(), t.isposinf(), t.isneginf()])


def against_eager() -> list[str]:
    """Every op, fp32 and bf16, both layouts, at the normalising scale (with and without NaN/inf):
    forward and input gradient, and the inference form's forward (no autograd: the values-only kernels),
    against eager; the failures' messages. Two shapes: a pooled row of under one vector, and one of
    several (whose column maxima carry from one output vector to the next)."""
    failures = []
    gen = torch.Generator().manual_seed(1)
    bases = [torch.randn(2, 19, 15, 13, generator=gen) * normalising_scale(),
             torch.randn(1, 5, 9, 75, generator=gen) * normalising_scale()]
    for dtype, layout, base, special in itertools.product((torch.float32, torch.bfloat16), LAYOUTS, bases,
                                                          (False, True)):
        fmt = LAYOUTS[layout]
        x = (_special(base) if special else base).to(dtype).contiguous(memory_format=fmt)
        for op, spec in OPS.items():
            if not spec.fused:
                continue
            what = f"{op} {str(dtype)[6:]} {layout} {tuple(x.shape)}{' NaN/inf' if special else ''}"
            xb = x.detach().requires_grad_()
            xr = x.detach().float().requires_grad_()
            yb, yr = spec.call(xb, "cpp"), spec.reference(xr)
            g = torch.randn(yb.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
            (gb,) = torch.autograd.grad(yb, xb, g)
            (gr,) = torch.autograd.grad(yr, xr, g.float())
            with torch.no_grad():
                yi = spec.call(x, "cpp")
            for name, a, e, grad in (("forward", yb, yr, False), ("grad", gb, gr, True),
                                     ("inference forward", yi, yr.detach(), False)):
                if not torch.equal(_classes(a), _classes(e)):
                    failures.append(f"{what} {name}: NaN/inf positions differ from eager")
                result = compare(a, e, dtype, f"{what} {name}", grad=grad,
                                 agreement=spec.grad_agreement(dtype) if grad else 1.0)
                if not result.ok:
                    failures.append(result.message)
    return failures


def main() -> int:
    torch.set_num_threads(1)
    result = {"dispatch_isa": cpp_backend.cpu_isa(), "extension": cpp_backend.extension_name(with_cuda=False)}
    reason = cpp_backend.unavailable_reason()
    result["reason"] = reason
    if reason is None:
        result["built_isa"] = torch.ops.alexnet_cpp_ext.cpu_isa()
        result["forward_error"] = {str(dt)[6:]: forward_error(dt) for dt in (torch.float32, torch.bfloat16)}
        result["failures"] = against_eager()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
