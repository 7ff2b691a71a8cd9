"""How close a backend's result must be to the eager reference, and the comparison that says so.

The reference is eager evaluated in float32 on the same (upcast) input values - float64 stays float64 -
so 16-bit results are judged against what the exact math gives, not against another rounding.
``TOLERANCES`` (outputs) and ``GRAD_TOLERANCES`` (input gradients) are (rtol, atol) per dtype; the
tests and the benchmarks' pre-timing check use the same numbers. The one documented exception, the
fraction of gradient elements that must agree where a max-pool follows LRN (near-ties), is each op's
``grad_agreement`` in ``kernels.catalog``. ``FLOAT64_REL_ERR``: how far the cpp backend's LRN forward
may be from the float64 result, at every instruction-set build.

Where they are checked: inputs at randn's scale and at ``kernels.paper.normalising_scale()`` (~89, where
alpha times the window sum is ~k). float32: 2e-5 is ~170 eps, room for summation order and pow against
exp2/log2 or refined reciprocal square roots (each within a few eps of float64). 16-bit: eager on a CPU
computes in float32 and rounds once (half an ulp: 2**-8 relative in bfloat16); a backend that computes
in float32 and rounds once can land one ulp (2**-7 = 7.8e-3) away after its own few-eps differences
cross a rounding boundary, and one that computes in 16 bits throughout (eager or torchscript on a GPU)
adds roundings: 2e-2 is ~2.5 bfloat16 ulp. Gradients: an upstream gradient of |g| ~ 4 has a bfloat16
ulp of 2**-5 = 0.031, which sets their atol.
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
# 4 eps (d^-3/4 from two refined reciprocal-square-root estimates, see csrc/cpu_lrn.h); float16 is that
# float32 result rounded once, half an ulp more (2**-11); bfloat16 takes d^-3/4 from the two estimates
# unrefined (at most 2.25 * 2**-12 from it with AVX2's 12-bit estimate, less with AVX-512's, exact
# without either), then rounds once (2**-8).
FLOAT32_EPS = 2.0 ** -23
BF16_UNREFINED_POWER_REL_ERR = 2.25 * 2.0 ** -12
FLOAT64_REL_ERR = {
    torch.float32: 4 * FLOAT32_EPS,
    torch.bfloat16: 2.0 ** -8 + BF16_UNREFINED_POWER_REL_ERR + 4 * FLOAT32_EPS,
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
