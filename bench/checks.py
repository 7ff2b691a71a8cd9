"""Every benchmark case is checked before it is timed: its output (and, for forward+backward, the input
gradient) against eager at the same shape, dtype and memory format, with the tests' tolerances
(``kernels.tolerances``). A fast wrong answer must never become a number in a report.

``check_kernel(op, fn, x, dy, fwdbwd)``: the eager reference is computed in float32 on the upcast input
(float64 stays float64). For ops with LRN the input's even rows are first multiplied by
``kernels.paper.normalising_scale()`` (~89), where alpha times the window sum is ~k: on ``randn`` values
alone the LRN term is ~1e-4 of k and a wrong window or a lost cross-channel gradient term would pass.
Scaling rows of the same tensor costs no second run (a whole second check at AlexNet's conv1 shape
costs 1.5-5 s per case on a 2-core CPU) and keeps its shape, so a compiled case is not recompiled. ``check_model(...)``: the model's logits (and, when training, the first
convolution's weight gradient) against the same weights with eager kernels and no whole-model
compile; the logits element by element, the gradient by its relative L2 error (see ``GRAD_L2_TOLERANCE``).
Both return ``extra_info`` fields (``check_*``) and raise ``CheckFailed`` on a mismatch.
"""
from __future__ import annotations

import torch

from kernels.catalog import op_spec
from kernels.tolerances import compare


class CheckFailed(AssertionError):
    """A benchmark case's result differs from eager beyond the tolerance; the message says where."""


def eager_reference(op: str, x: torch.Tensor) -> torch.Tensor:
    """``op`` (an entry of ``kernels.catalog.OPS``) with the paper's settings, eager backend."""
    return op_spec(op).reference(x)


def scaled_rows(x: torch.Tensor, scale: float) -> torch.Tensor:
    """A copy of ``x`` (same strides) with its even rows times ``scale``."""
    x = x.detach().clone(memory_format=torch.preserve_format)
    x[..., ::2, :] *= scale
    return x


def check_kernel(op: str, fn, x: torch.Tensor, dy: torch.Tensor, fwdbwd: bool, normalising: bool = True) -> dict:
    """Run ``fn`` once on ``x`` (for an op whose math needs a larger input scale, such as LRN where it
    normalises, with half its rows at that scale unless ``normalising`` is False) and compare with eager;
    ``check_*`` fields, or ``CheckFailed``."""
    dtype = x.dtype
    ref_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    info = {"check_reference": f"eager, {str(ref_dtype).removeprefix('torch.')} on the upcast input"}
    scale = op_spec(op).input_scale
    if normalising and scale != 1.0:
        x = scaled_rows(x, scale)
        info["check_input"] = f"even rows x {scale:.1f} (the input scale its steps need, kernels.catalog)"
    xb = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(fwdbwd)
    xr = x.detach().to(ref_dtype).requires_grad_(fwdbwd)
    with torch.set_grad_enabled(fwdbwd):
        yb, yr = fn(xb), eager_reference(op, xr)
    failures = []
    out = compare(yb, yr, dtype, f"{op} forward")
    info.update(out.to_dict("check_out"))
    if yb.dtype != dtype:
        failures.append(f"{op} forward: output dtype {yb.dtype} != input dtype {dtype}")
    if not out.ok:
        failures.append(out.message)
    if fwdbwd:
        (gb,) = torch.autograd.grad(yb, xb, dy)
        (gr,) = torch.autograd.grad(yr, xr, dy.to(ref_dtype))
        grad = compare(gb, gr, dtype, f"{op} input gradient", grad=True, agreement=op_spec(op).grad_agreement(dtype))
        info.update(grad.to_dict("check_grad"))
        if not grad.ok:
            failures.append(grad.message)
    info["check_ok"] = not failures
    if failures:
        raise CheckFailed("; ".join(failures))
    return info


# bf16 autocast runs whole convolutions and GEMMs in bfloat16: the logits of two correct backends
# differ by that rounding, compounded over eight layers. Loose, but a dropped or garbage kernel gives
# errors of the logits' own size, far outside it.
MODEL_TOLERANCE = {"none": (1e-3, 1e-4), "bf16": (1e-1, 5e-2)}

# conv1's weight gradient is not compared element by element: a ReLU whose input lies within one rounding
# of zero (1 of ~10^7 activations at 227 px, batch 16) falls on the other side of its kink in one of two
# correct runs, and its whole upstream gradient is dropped or kept. Measured with the cpp backend (fp32,
# NCHW, two towers, six weight/input seeds): relative L2 error 1e-6 in three, 1.7e-3, 6.5e-3 and 8.3e-3 in
# the others, each traced to one conv3/conv4 activation of |x| < 3e-7. A dropped tower, a wrong kernel
# or a lost gradient moves it by the gradient's own size.
GRAD_L2_TOLERANCE = {"none": 5e-2, "bf16": 2e-1}


def check_model(model, runner, reference, x: torch.Tensor, labels: torch.Tensor, amp: str, train: bool) -> dict:
    """``runner`` (the case's model, maybe compiled) against ``reference`` (same weights, eager kernels).

    Dropout is switched off for the comparison (both in eval mode); when training, the loss's gradient
    w.r.t. conv1's weight is compared too. Gradients are cleared afterwards.
    """
    import torch.nn.functional as F

    rtol, atol = MODEL_TOLERANCE[amp]
    device_type = x.device.type
    was_training = model.training
    model.eval()
    reference.eval()
    results, failures = {}, []
    try:
        for name, net in (("case", runner), ("reference", reference)):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                logits = net(x)
            entry = {"logits": logits.detach().float()}
            if train:
                loss = F.cross_entropy(logits.float(), labels)
                conv1 = _conv1_weight(model if net is runner else reference)
                (entry["grad"],) = torch.autograd.grad(loss, conv1)
            results[name] = entry
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    info = {}
    for key in ("logits", "grad") if train else ("logits",):
        a, e = results["case"][key], results["reference"][key]
        diff = (a - e).abs()
        scale = e.abs().max().clamp_min(1e-12)
        info[f"check_{key}_max_abs_err"] = float(diff.max())
        info[f"check_{key}_max_rel_err"] = float(diff.max() / scale)
        if key == "grad":
            l2 = float((a - e).norm() / e.norm().clamp_min(1e-30))
            info["check_grad_rel_l2_err"] = l2
            if not l2 <= GRAD_L2_TOLERANCE[amp]:
                failures.append(f"conv1 weight gradient: relative L2 error {l2:.3g} > {GRAD_L2_TOLERANCE[amp]:g}")
        elif not torch.allclose(a, e, rtol=rtol, atol=atol * float(scale)):
            failures.append(f"{key}: max |diff| {float(diff.max()):.3g} vs reference scale {float(scale):.3g} "
                            f"(rtol {rtol:g}, atol {atol:g} x scale)")
    info["check_reference"] = "same weights, eager kernels, no whole-model compile"
    info["check_ok"] = not failures
    if failures:
        raise CheckFailed("model output differs from eager kernels: " + "; ".join(failures))
    return info


def _conv1_weight(model) -> torch.Tensor:
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.weight
    raise ValueError("model has no Conv2d layer")
