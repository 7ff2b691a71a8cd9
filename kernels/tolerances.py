"""How close a backend's result must be to the eager reference, and the comparison that says so.

The reference is eager evaluated in float32 on the same (upcast) input values - float64 stays float64 -
so 16-bit results are judged against what the exact math gives, not against another rounding.
``TOLERANCES`` (outputs) and ``GRAD_TOLERANCES`` (input gradients) are (rtol, atol) per dtype; the
tests and the benchmarks' pre-timing check use the same numbers. The one documented exception, the
fraction of gradient elements that must agree where a max-pool follows LRN (near-ties), is each op's
``grad_agreement`` in ``kernels.catalog``. ``FLOAT64_REL_ERR``: how far the cpp backend's LRN forward
may be from the float64 result, at every instruction-set build.

Where these are checked: inputs at randn's scale and at ``kernels.paper.normalising_scale()`` (~89, where
alpha times the window sum is ~k and the outputs are ~20-40). float32: a backend computes in float32
with a few roundings and d^-beta from refined estimates (within 4 eps of float64); the reference adds
its own few roundings, so 2e-5 (~170 eps) is wide for the math but is what summation orders and
libm's pow leave room for. 16-bit: eager on a CPU computes in float32 and rounds once (half an ulp:
2**-8 relative in bfloat16, 2**-11 in float16); a backend computing in float32 and rounding once may
round the other way at a tie boundary (one ulp, 2**-7 = 7.8e-3 in bfloat16), and a backend that
computes in 16 bits throughout (eager and torchscript on a GPU) adds a few roundings more: 2e-2 in
bfloat16 is ~2.5 ulp.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (2e-5, 2e-6),
    torch.float16: (4e-3, 2e-3),
    torch.bfloat16: (2e-2, 1e-2),
}
# Gradients in 16-bit: a pixel that is the maximum of two overlapping windows receives the sum of two
# upstream gradients, rounded once more; with cancellation that costs up to ~2 ulp of the summands.
GRAD_TOLERANCES = {**TOLERANCES, torch.float16: (4e-3, 4e-3), torch.bfloat16: (2e-2, 3e-2)}
# The cpp backend's LRN forward against float64 at every instruction-set build, relative: float32 within
# 4 eps (d^-3/4 from two refined reciprocal-square-root estimates, see csrc/cpu_lrn.h); a 16-bit output
# is that float32 result rounded once, half an ulp more (2**-8 in bfloat16, 2**-11 in float16).
FLOAT32_EPS = 2.0 ** -23
FLOAT64_REL_ERR = {
    torch.float32: 4 * FLOAT32_EPS,
    torch.bfloat16: 2.0 ** -8 + 4 * FLOAT32_EPS,
    torch.float16: 2.0 ** -11 + 4 * FLOAT32_EPS,
}


@dataclass
class Comparison:
    """``actual`` against ``expected`` with the per-dtype tolerance: the worst element and the verdict."""

    ok: bool
    max_abs_err: float
    max_rel_err: float  # |a - e| / |e| at the worst element (where |e| > 0)
    agree_frac: float  # fraction of elements within tolerance
    message: str

    def to_dict(self, prefix: str) -> dict:
        return {f"{prefix}_ok": self.ok, f"{prefix}_max_abs_err": self.max_abs_err,
                f"{prefix}_max_rel_err": self.max_rel_err, f"{prefix}_agree_frac": self.agree_frac}


def compare(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str, grad: bool = False,
            agreement: float = 1.0) -> Comparison:
    """Compare in float64; NaNs must sit at the same places; ``agreement`` < 1 tolerates that fraction."""
    if actual.shape != expected.shape:
        return Comparison(False, float("inf"), float("inf"), 0.0,
                          f"{what}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    rtol, atol = (GRAD_TOLERANCES if grad else TOLERANCES)[dtype]
    a, e = actual.detach().double(), expected.detach().double()
    close = torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    diff = (a - e).abs().nan_to_num(nan=0.0, posinf=float("inf"))
    diff = torch.where(close & (a.isnan() | e.isnan()), torch.zeros_like(diff), diff)
    worst = int(diff.flatten().argmax()) if diff.numel() else 0
    max_abs = float(diff.flatten()[worst]) if diff.numel() else 0.0
    ref = float(e.flatten()[worst].abs()) if diff.numel() else 0.0
    max_rel = max_abs / ref if ref > 0 else (0.0 if max_abs == 0 else float("inf"))
    frac = float(close.double().mean()) if close.numel() else 1.0
    ok = frac >= agreement if agreement < 1.0 else bool(close.all())
    message = "" if ok else (
        f"{what}: {100 * (1 - frac):.4f}% of elements outside rtol={rtol:g}, atol={atol:g} "
        f"(need {100 * agreement:g}% inside); worst at index {tuple(torch.unravel_index(torch.tensor(worst), a.shape))}"
        f" |diff| {max_abs:.3g} vs reference {ref:.3g}")
    return Comparison(ok, max_abs, max_rel, frac, message)
