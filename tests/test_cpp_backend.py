"""Tests specific to the ``cpp`` backend (the C++/CUDA extension): lazy cached build, clear build
failures, what autograd saves, device guard, and torch.compile seeing opaque ops.

Cross-backend correctness against the reference lives in tests/test_kernels.py.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.backends import cpp as cpp_backend
from kernels import op_shapes
from kernels.backends import eager as reference
from kernels.paper import normalising_scale
from kernels.tolerances import BF16_UNREFINED_POWER_REL_ERR, FLOAT64_REL_ERR

REPO_ROOT = Path(__file__).resolve().parents[1]
LRN = (5, 1e-4, 0.75, 2.0)


@pytest.fixture(scope="module")
def backend():
    reason = cpp_backend.unavailable_reason()
    if reason is not None:
        pytest.skip(f"cpp backend unavailable: {reason}")
    return cpp_backend


def _run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env_overrides}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)


def test_import_does_not_build(tmp_path):
    probe = "import kernels, kernels.backends.cpp; import os, sys; sys.exit(len(os.listdir(os.environ['TORCH_EXTENSIONS_DIR'])))"
    result = _run_python(probe, TORCH_EXTENSIONS_DIR=str(tmp_path))
    assert result.returncode == 0, f"importing built something or failed: {result.stderr[-2000:]}"


def test_second_process_reuses_cached_build(backend):
    from torch.utils.cpp_extension import _get_build_directory

    build_dir = Path(_get_build_directory(cpp_backend.extension_name(), verbose=False))
    libraries = list(build_dir.glob("*.so"))
    assert libraries, f"no built library in {build_dir}"
    before = {p: p.stat().st_mtime_ns for p in libraries}
    result = _run_python(
        "from kernels.backends import cpp as cb; r = cb.unavailable_reason(); assert r is None, r"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in libraries} == before, "the cached extension was rebuilt"


def test_build_targets_this_cpus_instruction_set(backend):
    """The build is compiled for the level torch dispatches to on this CPU, named for it in the cache
    (so a shared cache never hands one CPU another's build), and the loaded library says so itself."""
    isa = cpp_backend.cpu_isa()
    aten = cpp_backend.aten_level(isa)
    assert aten == (torch.backends.cpu.get_cpu_capability() if isa != "DEFAULT" else "DEFAULT")
    bf16_stores = os.environ.get("ALEXNET_AVX512_BF16", "1") == "1" and torch.cpu._is_avx512_bf16_supported()
    assert (isa == "AVX512_BF16") == (aten == "AVX512" and bf16_stores)
    assert cpp_backend.extension_name(with_cuda=False).endswith("_" + isa.lower())
    assert cpp_backend.extension_name(with_cuda=False, isa="AVX2") != cpp_backend.extension_name(False, "AVX512")
    assert cpp_backend.extension_name(False, "AVX512") != cpp_backend.extension_name(False, "AVX512_BF16")
    assert torch.ops.alexnet_cpp_ext.cpu_isa() == isa
    flags = cpp_backend.isa_flags(isa)
    assert f"-DCPU_CAPABILITY={aten}" in flags  # ATen's Vectorized of that level
    assert ("-mavx2" in flags) == (isa == "AVX2") and ("-mavx512f" in flags) == (aten == "AVX512")
    assert ("-mavx512bf16" in flags) == (isa == "AVX512_BF16")


def test_lowered_capability_selects_another_build():
    """$ATEN_CPU_CAPABILITY (torch's own switch) lowers the level, and with it the build's cache name."""
    result = _run_python("from kernels.backends import cpp as cb; print(cb.cpu_isa(), cb.extension_name(False))",
                         ATEN_CPU_CAPABILITY="default")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["DEFAULT", "alexnet_kernels_ext_cpu_default"]


@pytest.mark.skipif(not (torch.cpu._is_avx512_supported() and torch.cpu._is_avx512_bf16_supported()),
                    reason="this CPU has no AVX512-BF16: only the plain levels apply")
def test_avx512_bf16_level_is_chosen_unless_switched_off():
    """An AVX512-BF16 CPU builds the AVX512_BF16 level; ALEXNET_AVX512_BF16=0 keeps plain AVX512 (its own
    cache entry), and any other value is refused with the variable named."""
    query = "from kernels.backends import cpp as cb; print(cb.cpu_isa(), cb.extension_name(False))"
    chosen = {flag: _run_python(query, ATEN_CPU_CAPABILITY="avx512", ALEXNET_AVX512_BF16=flag)
              for flag in ("1", "0", "yes")}
    assert chosen["1"].stdout.split() == ["AVX512_BF16", "alexnet_kernels_ext_cpu_avx512_bf16"]
    assert chosen["0"].stdout.split() == ["AVX512", "alexnet_kernels_ext_cpu_avx512"]
    assert chosen["yes"].returncode != 0 and "ALEXNET_AVX512_BF16='yes'" in chosen["yes"].stderr


def test_missing_compiler_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    reason = cpp_backend.build_extension(tmp_path / "build", name="alexnet_kernels_ext_failtest")
    assert reason is not None and "no-such-compiler" in reason and "not on PATH" in reason


def test_missing_ninja_is_named(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    reason = cpp_backend.build_extension(tmp_path / "build", name="alexnet_kernels_ext_failtest")
    assert reason is not None and "ninja" in reason


def test_compiler_error_output_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "fake-cxx"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version|-v) echo "g++ (fake) 12.2.0"; exit 0;; esac\n'
        'echo "fake-cxx: intentional failure" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    reason = cpp_backend.build_extension(tmp_path / "build", name="alexnet_kernels_ext_failtest")
    assert reason is not None
    assert "failed" in reason and str(fake) in reason and "fake-cxx: intentional failure" in reason


def test_cuda_tensor_on_cpu_only_build_is_refused():
    if torch.version.cuda is not None:
        pytest.skip("this PyTorch has CUDA")
    problem = cpp_backend.device_problem(torch.device("cuda"))
    assert problem is not None and "CPU-only" in problem
    assert cpp_backend.device_problem(torch.device("cpu")) is None


def _saved_tensors(fn, x):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    return y, saved


def test_relu_lrn_saves_only_input(backend):
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    _, saved = _saved_tensors(lambda t: backend.relu_lrn(t, *LRN), x)
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()


def test_max_pool_saves_int8_offsets_only(backend):
    x = torch.randn(2, 8, 13, 13, requires_grad=True)
    y, saved = _saved_tensors(lambda t: backend.max_pool(t, 3, 2), x)
    assert [(t.dtype, tuple(t.shape)) for t in saved] == [(torch.int8, tuple(y.shape))]


def test_fused_saves_input_and_int8_offsets_only(backend):
    x = torch.randn(2, 8, 13, 13, requires_grad=True)
    y, saved = _saved_tensors(lambda t: backend.relu_lrn_pool(t, *LRN, 3, 2), x)
    assert len(saved) == 2 and saved[0].data_ptr() == x.data_ptr()
    assert (saved[1].dtype, tuple(saved[1].shape)) == (torch.int8, tuple(y.shape))
    # Saved bytes beyond x: one byte per pooled element (ATen's max_pool2d keeps int64 indices).
    assert saved[1].element_size() * saved[1].numel() == y.numel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_ties_and_nan_pick_and_route_as_eager(backend, dtype, layout):
    """Whole-number inputs put several equal maxima in most windows: the first in row-major order wins, a
    NaN wins over everything (the last NaN), and each pooled gradient goes to exactly the element ATen's
    max_pool2d picks, summed where overlapping windows pick the same one. Whole-number gradients keep
    every sum exact, so the gradients compare for equality."""
    torch.manual_seed(0)
    x = torch.randint(0, 3, (2, 19, 13, 15)).to(dtype)  # 19 channels: whole vectors and a partial one
    x[0, 3, 4, 4], x[0, 3, 4, 5], x[1, 18, 0, 0], x[1, 7, 6, 6] = float("nan"), float("nan"), float("nan"), float("inf")
    x = x.contiguous(memory_format=layout)
    for ks, st in ((3, 2), (2, 2), (3, 1)):
        xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
        ys = [backend.max_pool(xs[0], ks, st), torch.nn.functional.max_pool2d(xs[1], ks, st)]
        assert torch.equal(ys[0].isnan(), ys[1].isnan()) and ys[0].isnan().any()
        assert torch.equal(ys[0].nan_to_num(-9.0), ys[1].nan_to_num(-9.0))
        gy = torch.randint(-4, 5, ys[0].shape).to(dtype)
        for xi, yi in zip(xs, ys):
            yi.backward(gy)
        assert torch.equal(xs[0].grad, xs[1].grad), (ks, st)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(2, 96, 9, 11), (2, 19, 9, 11), (2, 40, 7, 75), (2, 3, 13, 130)])
def test_half_maxima_in_their_own_bits_order_every_value_as_eager(backend, dtype, layout, shape):
    """The channels_last inference pool takes 16-bit maxima as integers (an order-preserving key of the bits,
    32 channels a vector, the tails masked; NCHW widens to float): random bit patterns put NaNs of both signs
    with any payload, both infinities and zeros, subnormals and every magnitude into the windows, and the
    pooled values must be eager's exactly: a NaN where eager has one, else the same value (a zero of either
    sign where eager's is a zero: eager keeps the window's first of equal maxima)."""
    g = torch.Generator().manual_seed(shape[1] * shape[3])
    bits = torch.randint(-(2**15), 2**15, shape, generator=g, dtype=torch.int16)
    bits[0, :, :4] &= 0x7FFF  # rows of positive values only, and of negative values only
    bits[1, :, :4] |= -(2**15)
    x = bits.view(dtype)
    for special in (float("inf"), float("-inf"), 0.0, -0.0):
        x[torch.rand(x.shape, generator=g) < 0.02] = special
    infinity = torch.tensor(float("inf"), dtype=dtype).view(torch.int16)  # exponent all ones, mantissa 0
    payload = torch.randint(1, int(~infinity & 0x7FFF) + 1, x.shape, generator=g, dtype=torch.int16)
    sign = torch.randint(0, 2, x.shape, generator=g, dtype=torch.int16) * -(2**15)
    nan = (sign | infinity | payload).view(dtype)  # NaNs of either sign, any payload
    x = torch.where(torch.rand(x.shape, generator=g) < 0.01, nan, torch.where(x.isnan(), 0.5, x))
    x = x.contiguous(memory_format=layout)
    for ks, st in ((3, 2), (2, 2), (3, 1)):
        with torch.no_grad():
            got = backend.max_pool(x, ks, st)
        want = torch.nn.functional.max_pool2d(x.float(), ks, st).to(dtype)
        assert got.is_contiguous(memory_format=layout)
        assert torch.equal(got.isnan(), want.isnan()) and want.isnan().any(), (ks, st)
        assert torch.equal(got.nan_to_num(0.0), want.nan_to_num(0.0)), (ks, st)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_forms_equal_the_training_forms(backend, dtype, layout):
    """Without autograd the pooling ops take the offset-free CPU forms: the same values (NaN where the
    training form has NaN, infinities kept), at the scale where LRN normalises. For 16-bit inputs the fused
    inference form pools LRN values kept in float and rounds the maxima, the training form rounds every LRN
    value first: equal because rounding is monotonic."""
    x = torch.randn(2, 19, 15, 13, dtype=torch.float64).mul_(normalising_scale()).to(dtype)
    x[0, 3, 4, 4], x[1, 7, 0, 12], x[1, 8, 9, 2] = float("nan"), float("inf"), float("-inf")
    x = x.contiguous(memory_format=layout)
    ops = torch.ops.alexnet_cpp_ext
    for ks, st in ((3, 2), (2, 2), (3, 1)):
        with torch.no_grad():
            y = backend.max_pool(x, ks, st)
            yf = backend.relu_lrn_pool(x, *LRN, ks, st)
        for got, full in ((y, ops.max_pool(x, ks, st)[0]), (yf, ops.relu_lrn_pool(x, *LRN, ks, st)[0])):
            assert got.is_contiguous(memory_format=layout)
            assert torch.equal(got.isnan(), full.isnan()) and y.isnan().any()
            assert torch.equal(got.nan_to_num(0.0), full.nan_to_num(0.0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_offsets_widen_for_windows_over_128_positions(backend, dtype, layout):
    """int32 offsets for 12x12 windows, through the scalar (float64) and vectorized (float32) paths;
    19 channels: full vectors and a tail in channels_last."""
    x = torch.randn(1, 19, 13, 14, dtype=dtype).contiguous(memory_format=layout).requires_grad_()
    y = backend.max_pool(x, 12, 1)
    torch.testing.assert_close(y, reference.max_pool(x, 12, 1))
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(reference.max_pool(x, 12, 1).sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("kernel_size", [3, 11, 12])
def test_offsets_dtype_is_the_shared_rule(backend, kernel_size):
    """The C++ copy of the offset dtype rule (csrc/alexnet_ops.h) agrees with kernels/op_shapes.py."""
    x = torch.randn(1, 3, 12, 12)
    ops = torch.ops.alexnet_cpp_ext
    for _, offsets in (ops.max_pool(x, kernel_size, 1), ops.relu_lrn_pool(x, *LRN, kernel_size, 1)):
        assert offsets.dtype == op_shapes.offsets_dtype(kernel_size)


def test_torch_compile_sees_opaque_ops(backend):
    from torch._dynamo.testing import CompileCounterWithBackend

    counter = CompileCounterWithBackend("aot_eager")

    def net(x):
        return backend.max_pool(backend.relu_lrn(x, *LRN), 3, 2).sum() + backend.relu_lrn_pool(x, *LRN, 3, 2).sum()

    compiled = torch.compile(net, backend=counter, fullgraph=True)
    x = torch.randn(2, 6, 9, 9).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = compiled(x)
    (grad,) = torch.autograd.grad(out, x)
    x_eager = x.detach().clone().requires_grad_(True)
    out_eager = net(x_eager)
    (grad_eager,) = torch.autograd.grad(out_eager, x_eager)
    assert counter.frame_count == 1
    torch.testing.assert_close(out, out_eager)
    torch.testing.assert_close(grad, grad_eager)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [5, 9])  # 5: register-window kernels; 9: direct-sum fallback
def test_cuda_kernels_match_cpu_kernels(backend, channels_last, size):
    lrn = (size, 0.5, 0.75, 1.0)
    x = torch.randn(2, 16, 27, 27, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for fn in (
        lambda t: backend.relu_lrn(t, *lrn),
        lambda t: backend.max_pool(t, 3, 2),
        lambda t: backend.relu_lrn_pool(t, *lrn, 3, 2),
    ):
        x_cpu = x.clone().requires_grad_(True)
        x_gpu = x.cuda().requires_grad_(True)
        y_cpu, y_gpu = fn(x_cpu), fn(x_gpu)
        g = torch.randn_like(y_cpu)
        (gx_cpu,) = torch.autograd.grad(y_cpu, x_cpu, g)
        (gx_gpu,) = torch.autograd.grad(y_gpu, x_gpu, g.cuda())
        torch.testing.assert_close(y_gpu.cpu(), y_cpu)
        torch.testing.assert_close(gx_gpu.cpu(), gx_cpu)
        assert y_gpu.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_backward_ops_name_bad_arguments(backend):
    """The checks the CPU and CUDA entry points share (alexnet_ops.h): shapes and offset dtypes."""
    ops = torch.ops.alexnet_cpp_ext
    x = torch.randn(1, 4, 9, 9)
    with pytest.raises(RuntimeError, match=r"relu_lrn_backward: grad shape \[1, 4, 8, 9\] does not match"):
        ops.relu_lrn_backward(torch.randn(1, 4, 8, 9), x, *LRN)
    g, off = torch.randn(1, 4, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.int8)
    with pytest.raises(RuntimeError, match="max_pool_backward: offsets must be Char"):
        ops.max_pool_backward(g, off.int(), 9, 9, 3, 2)
    with pytest.raises(RuntimeError, match=r"max_pool_backward: grad shape \[1, 4, 4, 4\] does not fit input size 7x7"):
        ops.max_pool_backward(g, off, 7, 7, 3, 2)
    with pytest.raises(RuntimeError, match="relu_lrn_pool_backward: grad shape .* do not match the pooled shape"):
        ops.relu_lrn_pool_backward(g[..., :3], x, off[..., :3], *LRN, 3, 2)
    ops.max_pool_backward(g, off, 9, 9, 3, 2)  # the right arguments pass


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_three_quarters_power_is_within_a_few_eps_of_float64(backend, layout):
    """The paper's beta = 3/4 takes refined reciprocal-square-root estimates instead of pow: every output
    stays within 4 float32 eps (relative) of the float64 result, over denominators from k = 2 up to
    1e32 and down to 1e-29 (a tiny k), and +/-Inf and NaN inputs give what the reference gives."""
    torch.manual_seed(0)
    C, fmt = 64, torch.channels_last if layout == "channels_last" else torch.contiguous_format
    scale = torch.logspace(-3, 18, 1024)  # per position: window sums from 0 to ~1e36
    x = (scale[:, None] * torch.rand(1024, C)).T.reshape(1, C, 32, 32).contiguous(memory_format=fmt)
    for x_case, k in ((x, 2.0), (x * 1e-12, 1e-29)):
        y = backend.relu_lrn(x_case, 5, 1e-4, 0.75, k).double()
        ref = reference.relu_lrn(x_case.double(), 5, 1e-4, 0.75, k)
        nonzero = ref != 0
        assert torch.equal(y[~nonzero], ref[~nonzero])
        assert float(((y - ref).abs() / ref.abs())[nonzero].max()) <= FLOAT64_REL_ERR[torch.float32]  # 4 eps
    special = torch.tensor([float("inf"), 1.0, float("nan"), 0.0, 3e19, -1.0, float("-inf"), 2.0])
    for seed in range(4):
        order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
        xs = special[order].reshape(1, 8, 1, 1).repeat(1, 1, 3, 5).contiguous(memory_format=fmt)
        torch.testing.assert_close(backend.relu_lrn(xs, *LRN), reference.relu_lrn(xs, *LRN), equal_nan=True)


@pytest.mark.parametrize("spatial", [(55, 55), (3, 3)])
def test_relu_lrn_streamed_output_equals_plain_stores_bit_for_bit(backend, spatial):
    """relu_lrn's NCHW float32 output, when input and output together pass the last-level cache, is written
    with streaming stores from each channel row's first aligned vector on (the unaligned head and a partial
    tail as plain stores; 3x3 rows are shorter than a vector). Such an input gives, bit for bit, the outputs
    of its images computed in batches small enough for plain stores, and matches eager. The threshold is the
    cache size the benchmarks read from sysfs, where it has one."""
    from bench.timing import cpu_last_level_cache_bytes

    threshold = torch.ops.alexnet_cpp_ext.stream_threshold_bytes()
    llc = cpu_last_level_cache_bytes()
    if llc:
        assert threshold == llc
    per_image = 96 * spatial[0] * spatial[1] * 4 * 2  # float32 in + out
    n = threshold // per_image + 1
    if n * per_image > 512 << 20:
        pytest.skip(f"a last-level cache of {threshold} bytes is too large to pass in a test")
    torch.manual_seed(0)
    x = torch.randn(n, 96, *spatial) * 30  # where the LRN term is comparable to k
    x[0, 3, 0, 0], x[n - 1, 90, -1, -1] = float("inf"), float("nan")
    y = backend.relu_lrn(x, *LRN)
    chunk = max(1, n // 3)  # each batch under the threshold
    plain = torch.cat([backend.relu_lrn(x[i:i + chunk], *LRN) for i in range(0, n, chunk)])
    torch.testing.assert_close(y, plain, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(y, reference.relu_lrn(x, *LRN), equal_nan=True)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("op", ["relu_lrn", "relu_lrn_pool"])
def test_bfloat16_forward_is_within_0_64_bfloat16_ulp(backend, op, layout):
    """The bfloat16 forward takes d^-3/4 from the unrefined hardware estimates (relative error below
    5.5e-4, at most 0.14 of a bfloat16 ulp): after rounding, every output stays within 0.64 ulp of the
    float64 result (a correctly rounded one is within 0.5), over window sums from 0 to ~1e36; +/-Inf and
    NaN give what the reference gives. A coarser power (one more estimate error, or none refined in
    float16 or float32) breaks the bound here or in the float32 test above."""
    torch.manual_seed(0)
    C, fmt = 64, torch.channels_last if layout == "channels_last" else torch.contiguous_format
    scale = torch.logspace(-3, 18, 1024)
    x = (scale[:, None] * torch.randn(1024, C)).T.reshape(1, C, 32, 32).to(torch.bfloat16)
    x = x.contiguous(memory_format=fmt)
    args = LRN + ((3, 2) if op == "relu_lrn_pool" else ())
    y = getattr(backend, op)(x, *args).double()
    ref = getattr(reference, op)(x.double(), *args)
    nonzero = ref != 0
    assert torch.equal(y[~nonzero], ref[~nonzero])
    ulp = torch.exp2(torch.floor(torch.log2(ref[nonzero].abs())) - 7)  # 8 significant bits
    # half an ulp of rounding plus the estimates' error, at most 0.14 ulp (an ulp is >= 2**-8 of the value)
    assert float(((y[nonzero] - ref[nonzero]).abs() / ulp).max()) <= 0.5 + BF16_UNREFINED_POWER_REL_ERR / 2.0 ** -8
    special = torch.tensor([float("inf"), 1.0, float("nan"), 0.0, 3e19, -1.0, float("-inf"), 2.0])
    xs = special.reshape(1, 8, 1, 1).repeat(1, 1, 3, 5).to(torch.bfloat16).contiguous(memory_format=fmt)
    torch.testing.assert_close(getattr(backend, op)(xs, *args), getattr(reference, op)(xs, *args), equal_nan=True)


def test_backend_functions_take_the_declared_settings_by_keyword(backend):
    """Each backend function made from an op's declaration has its signature: keywords as positions,
    a missing setting named."""
    x = torch.randn(1, 8, 9, 9, generator=torch.Generator().manual_seed(3))
    size, alpha, beta, k = LRN
    assert torch.equal(backend.relu_lrn(x, size=size, alpha=alpha, beta=beta, k=k), backend.relu_lrn(x, *LRN))
    assert torch.equal(backend.max_pool(x, 3, stride=2), backend.max_pool(x, 3, 2))
    with pytest.raises(TypeError, match="'k'"):
        backend.relu_lrn(x, size=size, alpha=alpha, beta=beta)


GUARD_PAGE_CHECK = """
import torch, kernels
from tests.guard_page import tensor_before_guard_page
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16):
    for fmt in (torch.contiguous_format, torch.channels_last):
        for n, c, h, w in ((1, 3, 7, 35), (2, 5, 9, 40), (1, 4, 11, 55), (1, 2, 6, 100), (1, 16, 5, 9), (2, 3, 4, 32),
                           (1, 2, 6, 64), (1, 2, 7, 65)):
            x = tensor_before_guard_page((torch.randn(n, c, h, w) * 30).to(dtype).contiguous(memory_format=fmt))
            ops = [lambda t: kernels.relu_lrn(t, backend="cpp")]
            for k, s in ((3, 2), (2, 2)):
                ops += [lambda t, k=k, s=s: kernels.max_pool(t, backend="cpp", kernel_size=k, stride=s),
                        lambda t, k=k, s=s: kernels.relu_lrn_pool(t, backend="cpp", kernel_size=k, stride=s)]
            for op in ops:
                with torch.no_grad():
                    op(x)
                y = op(x.detach().requires_grad_())
                # the backward's incoming gradient ends before an unreadable page too, in the output's layout
                g = tensor_before_guard_page(torch.randn(y.shape).to(dtype).contiguous(memory_format=fmt))
                y.backward(g)
print("read nothing past the end")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="guard pages through Linux's mmap/mprotect")
def test_kernels_read_nothing_past_their_input(backend):
    """Every op, both layouts, float32 and bfloat16, inference and training forms and backwards, on inputs
    and incoming gradients that end right before an unreadable page (tests/guard_page.py): the whole-vector
    loads near a tensor's end must stop at it. Widths where a pooled row's last vector reaches into the last
    rows of the tensor, and pooled widths that are whole vectors (32: a load after the last output vector
    stays in the loop, where the compiler cannot drop it). A read past the end kills the child process
    (SIGSEGV)."""
    result = _run_python(GUARD_PAGE_CHECK)
    assert result.returncode != -signal.SIGSEGV, f"a kernel read past its input's end: {result.stderr[-2000:]}"
    assert result.returncode == 0, f"the check itself failed: {result.stderr[-2000:]}"
    assert "read nothing past the end" in result.stdout
