"""The benchmarks' pre-timing check: a correct backend passes with its errors recorded, a wrong output or
a wrong gradient fails naming which, and a model whose kernels misbehave (or that torch.compile broke)
is caught against the same weights with eager kernels."""
import pytest
import torch

import kernels
from bench import checks
from kernels.catalog import OPS, RELU_LRN
from kernels.paper import PAPER_LRN, PAPER_POOL
from tests.conftest import cached_backend_status


def _x(dtype=torch.float32, channels_last=False):
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(3)).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("backend", ["eager", "triton"])
@pytest.mark.parametrize("op", list(OPS))
def test_correct_backends_pass_with_their_errors_recorded(backend, op):
    if cached_backend_status()[backend] is not None:
        pytest.skip(f"{backend} unavailable: {cached_backend_status()[backend]}")
    def fn(x):
        return OPS[op].call(x, backend)
    x = _x(channels_last=True)
    dy = torch.randn_like(fn(x))
    info = checks.check_kernel(op, fn, x, dy, fwdbwd=True)
    assert info["check_ok"] and info["check_out_ok"] and info["check_grad_ok"]
    assert 0 <= info["check_out_max_abs_err"] < 1e-5 and 0 <= info["check_grad_max_abs_err"] < 1e-5
    assert ("check_input" in info) == (RELU_LRN in OPS[op].steps)  # with LRN: half the rows where it normalises


def test_a_wrong_output_fails_before_timing():
    def off_by_a_little(x):  # a kernel that forgot the ReLU on negative inputs' neighbours: 1e-3 off
        return kernels.relu_lrn(x, **PAPER_LRN, backend="eager") * (1 + 1e-3)

    x = _x()
    with pytest.raises(checks.CheckFailed, match="relu_lrn forward: .*outside rtol"):
        checks.check_kernel("relu_lrn", off_by_a_little, x, torch.randn_like(x), fwdbwd=False)

    def uninitialised(x):  # what a kernel dropped by a compiler leaves behind
        return torch.empty_like(kernels.max_pool(x, **PAPER_POOL, backend="eager")).fill_(0.0)
    with pytest.raises(checks.CheckFailed, match="max_pool forward"):
        checks.check_kernel("max_pool", uninitialised, x, None, fwdbwd=False)


def test_a_wrong_gradient_fails_and_names_the_gradient():
    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return kernels.relu_lrn(x, **PAPER_LRN, backend="eager")

        @staticmethod
        def backward(ctx, g):
            return g  # ignores ReLU and LRN

    x = _x()
    with pytest.raises(checks.CheckFailed, match="relu_lrn input gradient") as exc:
        checks.check_kernel("relu_lrn", WrongBackward.apply, x, torch.randn_like(x), fwdbwd=True)
    assert "forward" not in str(exc.value).split("input gradient")[0]  # the forward was right


class _OwnChannelBackward(torch.autograd.Function):
    """The paper's ReLU + LRN forward; a backward that keeps only each channel's own terms
    (g d^-beta - 2 alpha beta a^2 g d^(-beta-1)) and drops its neighbours' cross-channel ones."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return kernels.relu_lrn(x, **PAPER_LRN, backend="eager")

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        n, alpha, beta, k = (PAPER_LRN[name] for name in ("size", "alpha", "beta", "k"))
        a = torch.relu(x.float())
        d = k + alpha * n * torch.nn.functional.avg_pool3d(
            (a * a).unsqueeze(1), (n, 1, 1), stride=1, padding=(n // 2, 0, 0), count_include_pad=True).squeeze(1)
        gf = g.float()
        grad = gf * d ** -beta - 2 * alpha * beta * a * a * gf * d ** (-beta - 1)
        return torch.where(x > 0, grad, 0.0).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_a_wrong_lrn_window_fails_where_lrn_normalises(dtype):
    """A window of 3 channels instead of 5 changes randn-scale outputs by ~1e-5 (passes in bfloat16);
    where LRN normalises by ~5%: the check fails."""
    def narrow(x):
        return kernels.relu_lrn(x, **{**PAPER_LRN, "size": 3}, backend="eager")

    x = _x(dtype)
    if dtype == torch.bfloat16:  # blind at randn's scale
        assert checks.check_kernel("relu_lrn", narrow, x, None, fwdbwd=False, normalising=False)["check_ok"]
    with pytest.raises(checks.CheckFailed, match=r"relu_lrn forward: .*outside rtol"):
        checks.check_kernel("relu_lrn", narrow, x, None, fwdbwd=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_a_missing_cross_channel_gradient_fails_where_lrn_normalises(dtype):
    x = _x(dtype)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)).to(dtype)
    if dtype == torch.bfloat16:  # blind at randn's scale
        assert checks.check_kernel("relu_lrn", _OwnChannelBackward.apply, x, dy, True, normalising=False)["check_ok"]
    with pytest.raises(checks.CheckFailed, match=r"relu_lrn input gradient") as exc:
        checks.check_kernel("relu_lrn", _OwnChannelBackward.apply, x, dy, fwdbwd=True)
    assert "forward" not in str(exc.value)


def test_bf16_uses_the_bf16_tolerance():
    x = _x(torch.bfloat16)
    fn = lambda t: kernels.relu_lrn_pool(t, **PAPER_LRN, **PAPER_POOL, backend="eager")  # noqa: E731
    info = checks.check_kernel("relu_lrn_pool", fn, x, torch.randn_like(fn(x)), fwdbwd=True)
    assert info["check_ok"] and info["check_out_max_abs_err"] > 0  # bf16 output vs float32 reference


def _alexnet(kernels_backend="eager"):
    from alexnet.model import AlexNetConfig, build_model

    torch.manual_seed(0)
    return build_model(AlexNetConfig(num_classes=10, fc_width=64, kernels=kernels_backend))


def test_model_check_catches_a_broken_model():
    model, reference = _alexnet(), _alexnet()
    reference.load_state_dict(model.state_dict())
    x, labels = torch.randn(2, 3, 67, 67), torch.tensor([1, 2])
    info = checks.check_model(model, model, reference, x, labels, "none", train=True)
    assert info["check_ok"] and info["check_logits_max_abs_err"] < 1e-5 and "check_grad_max_abs_err" in info
    assert model.training and all(p.grad is None for p in model.parameters())  # state restored

    def broken(inp):  # e.g. a kernel torch.compile dropped: some layer's output never written
        return model(inp) * 0
    with pytest.raises(checks.CheckFailed, match="logits"):
        checks.check_model(model, broken, reference, x, labels, "none", train=False)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward scales the gradient (a kernel whose backward is off by a factor)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return 0.8 * grad


def test_model_check_catches_a_wrong_gradient_behind_right_logits():
    model, reference = _alexnet(), _alexnet()
    reference.load_state_dict(model.state_dict())
    x, labels = torch.randn(2, 3, 67, 67), torch.tensor([1, 2])
    conv2 = next(m for name, m in model.named_modules() if name.endswith("conv2"))
    handle = conv2.register_forward_hook(lambda mod, inp, out: _ScaleGrad.apply(out))
    try:
        with pytest.raises(checks.CheckFailed, match="conv1 weight gradient: relative L2 error"):
            checks.check_model(model, model, reference, x, labels, "none", train=True)
    finally:
        handle.remove()
    assert checks.check_model(model, model, reference, x, labels, "none", train=True)["check_grad_rel_l2_err"] < 1e-6
