"""Every backend against the eager reference: forward and input gradient, per-dtype tolerances,
AlexNet's layer shapes at small batch, odd shapes, all layouts; inputs at the scale where LRN
normalises; NaN/inf in float32 and bfloat16; fused == unfused; errors."""
import pytest
import torch

from kernels import BACKENDS, get_backend, max_pool, relu_lrn, relu_lrn_pool
from kernels.backends import eager as reference
from kernels.catalog import MAX_POOL, OPS, PUBLIC_OPS, RELU_LRN
from kernels.paper import PAPER_LRN, normalising_scale
from tests.conftest import GRAD_TOLERANCES, assert_close, cached_backend_status, make_input, on_ci, require_backend

LRN = dict(PAPER_LRN)
LRN_OPS = [op for op in PUBLIC_OPS if RELU_LRN in OPS[op].steps]  # the public ops that apply ReLU then LRN
POOL_OPS = [op for op in PUBLIC_OPS if MAX_POOL in OPS[op].steps]  # the public ops that max-pool
ALEXNET_SHAPES = [(2, 96, 55, 55), (2, 256, 27, 27), (2, 256, 13, 13)]  # conv1, conv2, conv5 (batch 2)
ODD_SHAPES = [(3, 7, 13, 11), (2, 1, 5, 6), (1, 4, 9, 9), (2, 3, 3, 3), (1, 5, 4, 7)]

# At AlexNet's shapes every shape runs in both layouts and each layout in both dtypes, without the full
# product: under Triton's interpreter one case there costs 5-20 s of a 2-core CI machine.
ALEXNET_CASES = [
    (ALEXNET_SHAPES[0], torch.float32, "nchw"), (ALEXNET_SHAPES[0], torch.float32, "channels_last"),
    (ALEXNET_SHAPES[1], torch.float32, "nchw"), (ALEXNET_SHAPES[1], torch.bfloat16, "channels_last"),
    (ALEXNET_SHAPES[2], torch.bfloat16, "nchw"), (ALEXNET_SHAPES[2], torch.float32, "channels_last"),
]
CASES = (
    ALEXNET_CASES
    + [(s, torch.float32, layout) for s in ODD_SHAPES for layout in ("nchw", "channels_last", "strided")]
    + [((3, 7, 13, 11), dt, layout) for dt in (torch.bfloat16, torch.float16) for layout in ("nchw", "channels_last", "strided")]
)
# The compile backend compiles each shape, dtype and layout anew (static shapes, see its module): on a
# cold cache every case is an Inductor C++ build of 15-20 s on a 2-core CPU. It runs the cases that give
# every dtype and layout once, AlexNet's two LRN sites included; the other backends run them all.
COMPILE_CASES = [
    (ALEXNET_SHAPES[0], torch.float32, "nchw"), (ALEXNET_SHAPES[1], torch.bfloat16, "channels_last"),
    ((3, 7, 13, 11), torch.float32, "strided"), ((3, 7, 13, 11), torch.float16, "channels_last"),
    ((2, 1, 5, 6), torch.float32, "nchw"),
]
assert all(case in CASES for case in COMPILE_CASES)


def _case_id(shape, dtype, layout) -> str:
    return f"{'x'.join(map(str, shape))}-{str(dtype)[6:]}-{layout}"


OP_CASES = [pytest.param(backend, op, *case, id=f"{backend}-{op}-{_case_id(*case)}")
            for op in PUBLIC_OPS for backend in BACKENDS for case in CASES
            if backend != "compile" or case in COMPILE_CASES]


def _reference(op: str, x: torch.Tensor, **kw) -> torch.Tensor:
    """The eager reference in float32 (float64 stays float64) on the same input values."""
    x32 = x.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32).requires_grad_()
    return x32, OPS[op].reference(x32, **kw)


def _run(op: str, x: torch.Tensor, backend: str, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    xg = x.detach().requires_grad_()  # a fresh leaf on the same storage: strides kept as they are
    return xg, OPS[op].call(xg, backend, **kw)


def _upstream(y: torch.Tensor, seed: int = 1) -> torch.Tensor:
    return torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(device=y.device, dtype=y.dtype)


def _check_op(op: str, backend: str, x: torch.Tensor, what: str, grad_agreement: float = 1.0, **kw) -> None:
    xb, yb = _run(op, x, backend, **kw)
    xr, yr = _reference(op, x, **kw)
    assert yb.dtype == x.dtype, f"{what}: output dtype {yb.dtype} != input dtype {x.dtype}"
    assert_close(yb, yr, x.dtype, f"{what} forward")
    g = _upstream(yb)
    (gb,) = torch.autograd.grad(yb, xb, g)
    (gr,) = torch.autograd.grad(yr, xr, g.to(yr.dtype))
    assert gb.dtype == x.dtype and gb.shape == x.shape
    if grad_agreement == 1.0:
        assert_close(gb, gr, x.dtype, f"{what} grad", grad=True)
    else:
        rtol, atol = GRAD_TOLERANCES[x.dtype]
        close = torch.isclose(gb.double(), gr.double(), rtol=rtol, atol=atol)
        frac = close.double().mean().item()
        assert frac >= grad_agreement, (
            f"{what} grad: only {frac:.4%} of elements agree (need {grad_agreement:.1%}); "
            f"first differing index {tuple(torch.nonzero(~close)[0].tolist())}"
        )


@pytest.mark.parametrize("backend_name,op,shape,dtype,layout", OP_CASES)
def test_op_matches_reference(backend_name, op, shape, dtype, layout):
    """Each public op with the paper's settings. A fused op may pick the window maximum among LRN values
    rounded otherwise than eager's: near-ties then route a few gradients to a different element,
    legitimately (``grad_agreement``, kernels.catalog); the forward is checked strictly. Upcasting bf16/fp16
    to fp32 is exact, so max_pool's first maximum is the same element: exact routing."""
    backend = require_backend(backend_name)
    _check_op(op, backend, make_input(shape, dtype, layout), f"{op}[{backend}]",
              grad_agreement=OPS[op].grad_agreement(dtype))


# ---------------------------------------------------------------- where LRN normalises

# randn inputs leave the paper's LRN term (alpha = 1e-4) at ~1e-4 of k: a window of 3 instead of 5 moves
# the outputs by 9e-6 (median; 4e-4 at most) and keeping only each channel's own gradient terms moves the
# gradient by 3e-5 (median), below the 16-bit tolerances. At normalising_scale() (89 for the paper's
# constants) alpha times the window sum is ~k and the same faults move them by 4.5% and 15% (median;
# float64, this shape). 19 channels: two edges, interior channels with full windows, and
# whole vectors plus a tail in channels_last (8 float lanes with AVX2, 16 with AVX-512).
LRN_SCALE = normalising_scale(PAPER_LRN["size"], PAPER_LRN["alpha"], PAPER_LRN["k"])
NORMALISING_SHAPE = (2, 19, 9, 9)
NORMALISING_CASES = [(NORMALISING_SHAPE, torch.float32, layout) for layout in ("nchw", "channels_last", "strided")] + [
    (NORMALISING_SHAPE, torch.bfloat16, layout) for layout in ("nchw", "channels_last")]
# The compile backend: one Inductor build per case (see COMPILE_CASES), so one case, the fused op in
# bfloat16 at the shape test_nan_and_inf_like_reference compiles too (Inductor's graph cache serves both).
COMPILE_NORMALISING_CASES = [("relu_lrn_pool", ((1, 9, 7, 7), torch.bfloat16, "channels_last"))]
NORMALISING_PARAMS = [
    pytest.param(backend, op, *case, id=f"{backend}-{op}-{_case_id(*case)}")
    for backend in BACKENDS
    for op, case in (COMPILE_NORMALISING_CASES if backend == "compile" else
                     [(op, case) for op in LRN_OPS for case in NORMALISING_CASES])
]


def _denominator_over_k(x: torch.Tensor) -> torch.Tensor:
    """d / k of the paper's LRN at every positive input, in float64 from the reference's own output:
    y = a (d / k)^-beta k^-beta, so d / k = (a k^-beta / y)^(1 / beta)."""
    beta, k = PAPER_LRN["beta"], PAPER_LRN["k"]
    x64 = x.detach().double().cpu()
    a = torch.relu(x64)
    y = reference.relu_lrn(x64, **LRN)
    pos = a > 0
    return (a[pos] * k ** -beta / y[pos]) ** (1 / beta)


def test_normalising_inputs_are_where_lrn_normalises():
    """The premise of the tests below: at LRN_SCALE the denominator is ~2k (alpha times the window sum
    ~k), at randn's scale it is k to within 1e-3."""
    assert LRN_SCALE == pytest.approx(89.44, abs=0.01)
    for dtype in (torch.float32, torch.bfloat16):
        ratio = _denominator_over_k(make_input(NORMALISING_SHAPE, dtype, "nchw", scale=LRN_SCALE))
        assert 1.7 < float(ratio.median()) < 2.3 and float(ratio.min()) < 1.2 and float(ratio.max()) > 3
    assert float(_denominator_over_k(make_input(NORMALISING_SHAPE, torch.float32, "nchw")).max()) < 1.001


@pytest.mark.parametrize("backend_name,op,shape,dtype,layout", NORMALISING_PARAMS)
def test_ops_match_reference_where_lrn_normalises(backend_name, op, shape, dtype, layout):
    backend = require_backend(backend_name)
    x = make_input(shape, dtype, layout, seed=21, scale=LRN_SCALE)
    _check_op(op, backend, x, f"{op}[{backend}] at scale {LRN_SCALE:.0f}", grad_agreement=OPS[op].grad_agreement(dtype))


@pytest.mark.parametrize("kernel_size,stride", [(2, 2), (3, 1), (1, 1), (5, 3)])
def test_pool_windows(backend, kernel_size, stride):
    x = make_input((2, 6, 11, 9), torch.float32, "nchw", seed=3)
    for op in POOL_OPS:
        _check_op(op, backend, x, f"{op}{kernel_size}/{stride}[{backend}]", kernel_size=kernel_size, stride=stride)


@pytest.mark.parametrize("size", [1, 3, 7])
def test_lrn_window_sizes(backend, size):
    x = make_input((2, 6, 7, 5), torch.float32, "nchw", seed=4)
    _check_op("relu_lrn", backend, x, f"relu_lrn size={size}[{backend}]", size=size, alpha=1e-2, beta=0.75, k=1.0)


@pytest.mark.parametrize("beta", [0.5, 1.0])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_lrn_exponents_other_than_three_quarters(backend, beta, layout):
    """beta = 3/4 may take a cheaper exact form; every other exponent goes through the general path."""
    if backend == "compile":
        pytest.skip("the compile backend is the eager reference under Inductor: one C++ build per case, no own path")
    x = make_input((2, 11, 5, 5), torch.float32, layout, seed=12)
    for op in LRN_OPS:
        _check_op(op, backend, x, f"{op} beta={beta}[{backend}]", size=5, alpha=0.05, beta=beta, k=1.0)


def test_pytorch_alpha_convention(backend):
    """alpha_convention='pytorch' divides alpha by size, exactly like F.local_response_norm."""
    x = make_input((2, 8, 5, 5), torch.float32, "nchw", seed=5)
    y = relu_lrn(x, 5, 0.5, 0.75, 1.0, alpha_convention="pytorch", backend=backend)
    expected = torch.nn.functional.local_response_norm(torch.relu(x), 5, alpha=0.5, beta=0.75, k=1.0)
    assert_close(y, expected, torch.float32, f"pytorch convention[{backend}]")
    paper = relu_lrn(x, 5, 0.5 / 5, 0.75, 1.0, backend=backend)
    assert_close(y, paper, torch.float32, f"pytorch vs paper convention[{backend}]")


def test_gradcheck_float64(backend):
    x = make_input((1, 6, 5, 5), torch.float64, "nchw", seed=6).requires_grad_()
    lrn = dict(size=5, alpha=0.1, beta=0.75, k=2.0)  # a large alpha so the normalisation matters
    # Under Triton's interpreter every launch costs milliseconds and full gradcheck launches one per
    # input element; fast mode checks random projections of the Jacobian instead (same tolerance).
    fast = backend == "triton"
    # gradcheck calls backward with retain_graph=True, which AOTAutograd's donated buffers forbid; the
    # compiled graphs built here (float64 is used by no other test) are built without them.
    with torch._functorch.config.patch(donated_buffer=False):
        for op in PUBLIC_OPS:
            spec = OPS[op]
            settings = lrn if RELU_LRN in spec.steps else {}
            assert torch.autograd.gradcheck(lambda t: spec.call(t, backend, **settings), (x,), fast_mode=fast), op


@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_public_op_traces_without_graph_break(backend, op):
    """torch.compile(fullgraph=True) of a function calling the public op: no graph break, same values."""
    if backend in ("torchscript",):
        pytest.skip("a scripted function is opaque to Dynamo by design; only the other backends are traceable")
    spec = OPS[op]
    # A backend's first lookup imports it, which Dynamo cannot trace: resolved before compiling, as
    # alexnet.compiled does for a model (so the test does not depend on which test ran before it).
    get_backend(backend)
    x = make_input((2, 6, 9, 9), torch.float32, "nchw", seed=11).requires_grad_()
    compiled = torch.compile(lambda t: spec.call(t, backend) * 2.0, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    assert_close(y, spec.reference(x.detach()) * 2.0, torch.float32, f"compiled {op}[{backend}]")
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_fused_equals_unfused(backend, layout):
    x = make_input((2, 9, 13, 13), torch.float32, layout, seed=7)
    xa = x.detach().clone().requires_grad_()
    xb = x.detach().clone().requires_grad_()
    fused = relu_lrn_pool(xa, backend=backend, **LRN)
    chain = max_pool(relu_lrn(xb, backend=backend, **LRN), 3, 2, backend=backend)
    assert_close(fused, chain, torch.float32, f"fused vs chain forward[{backend}]")
    g = _upstream(fused)
    fused.backward(g)
    chain.backward(g)
    assert_close(xa.grad, xb.grad, torch.float32, f"fused vs chain grad[{backend}]", grad=True)


def test_output_keeps_channels_last(backend):
    x = make_input((2, 8, 9, 9), torch.float32, "channels_last")
    for op in PUBLIC_OPS:
        y = OPS[op].call(x, backend)
        assert y.is_contiguous(memory_format=torch.channels_last), f"{op}[{backend}]: output lost channels_last"


def _special_input(layout: str = "nchw", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """NaN, +inf and -inf among values at the scale where LRN normalises, in every window position
    (channel edges and interior)."""
    x = make_input((1, 9, 7, 7), torch.float32, "nchw", seed=8, scale=LRN_SCALE)
    x[0, 2, 1, 1] = float("nan")
    x[0, 4, 5, 2] = float("inf")
    x[0, 0, 3, 3] = float("-inf")
    x[0, 8, 2, 5] = float("inf")
    x[0, 6, 6, 6] = float("nan")
    x = x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def _assert_same_specials(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """NaN, +inf, -inf and finite at exactly the same positions."""
    for name, test in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf),
                       ("finite", torch.isfinite)):
        a, e = test(actual), test(expected)
        assert torch.equal(a, e), (f"{what}: {name} at {int((a & ~e).sum())} positions where the reference has "
                                   f"none and missing at {int((e & ~a).sum())}; "
                                   f"first {tuple(torch.nonzero(a ^ e)[0].tolist())}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_nan_and_inf_like_reference(backend, op, layout, dtype):
    if backend == "compile" and dtype == torch.bfloat16 and (op, layout) != ("relu_lrn_pool", "channels_last"):
        pytest.skip("the compile backend compiles each op, dtype and layout anew: in bfloat16 the fused op in "
                    "channels_last only")
    x = _special_input(layout, dtype)
    xb, yb = _run(op, x, backend)
    xr, yr = _reference(op, x)
    what = f"{op}[{backend}] {str(dtype)[6:]} with NaN/inf"
    _assert_same_specials(yb, yr, f"{what} forward")
    assert_close(yb, yr, dtype, f"{what} forward")
    g = _upstream(yb)
    (gb,) = torch.autograd.grad(yb, xb, g)
    (gr,) = torch.autograd.grad(yr, xr, g.to(yr.dtype))
    _assert_same_specials(gb, gr, f"{what} grad")
    assert_close(gb, gr, dtype, f"{what} grad", grad=True)


def test_reference_matches_paper_formula_float64():
    from tests.paper_formula import max_pool_float64, paper_lrn_float64

    for shape in [(2, 96, 13, 13), (3, 7, 5, 4), (1, 1, 3, 3), (1, 4, 6, 6)]:
        x = make_input(shape, torch.float64, "nchw", seed=9) * 20  # large enough that LRN is not ~identity
        for n, alpha, beta, k in [(5, 1e-4, 0.75, 2.0), (3, 0.05, 0.5, 1.0), (7, 1e-3, 0.9, 2.5)]:
            expected = paper_lrn_float64(torch.relu(x), n, alpha, beta, k)
            got = reference.relu_lrn(x, n, alpha, beta, k)
            assert_close(got, expected, torch.float64, f"reference LRN n={n} vs paper formula {shape}")
            got_pool = reference.relu_lrn_pool(x, n, alpha, beta, k, 3, 2)
            assert_close(got_pool, max_pool_float64(expected, 3, 2), torch.float64, f"reference pool {shape}")


def test_paper_defaults_are_the_papers():
    x = make_input((1, 10, 3, 3), torch.float64, "nchw") * 30
    from tests.paper_formula import paper_lrn_float64

    assert_close(relu_lrn(x), paper_lrn_float64(torch.relu(x), 5, 1e-4, 0.75, 2.0), torch.float64, "defaults")


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("op", [OPS[name].function for name in PUBLIC_OPS], ids=PUBLIC_OPS)
def test_bad_input_errors(op):
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        op(torch.randn(1, 3, 8, 8), backend="nope")
    with pytest.raises(ValueError, match=r"4-D.*3-D.*\(3, 8, 8\)"):
        op(torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="torch.int64"):
        op(torch.ones(1, 3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="no elements"):
        op(torch.randn(0, 3, 8, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        op([[1.0]])


def test_even_lrn_window_is_rejected():
    with pytest.raises(ValueError, match="odd.*got 4"):
        relu_lrn(torch.randn(1, 8, 4, 4), size=4)
    with pytest.raises(ValueError, match="alpha_convention"):
        relu_lrn(torch.randn(1, 8, 4, 4), alpha_convention="caffe")


@pytest.mark.parametrize("op", [OPS[name].function for name in POOL_OPS], ids=POOL_OPS)
def test_window_larger_than_input_is_rejected(op):
    with pytest.raises(ValueError, match=r"2x9 is smaller than the pooling window 3.*empty"):
        op(torch.randn(1, 3, 2, 9))


@pytest.mark.parametrize("name", ["triton", "cpp"])
def test_device_mismatch_is_rejected(name):
    """A tensor on a device the backend cannot serve (here: 'meta') gets an error naming the device."""
    require_backend(name)
    x = torch.empty(1, 4, 8, 8, device="meta")
    with pytest.raises(ValueError, match=f"backend '{name}' cannot run on a meta tensor"):
        relu_lrn(x, backend=name)


def test_every_backend_is_available_in_ci():
    """CI pins a torch where all five backends work on CPU: none may silently drop out there."""
    status = cached_backend_status()
    assert set(status) == set(BACKENDS) == {"eager", "torchscript", "compile", "cpp", "triton"}
    if on_ci():
        missing = {name: why for name, why in status.items() if why is not None}
        assert not missing, f"backends unavailable in CI: {missing}"
