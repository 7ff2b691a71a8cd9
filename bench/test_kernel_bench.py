"""Kernel benchmarks: each op x backend x dtype x AlexNet shape x memory format x direction.

Ops: ``relu_lrn``, ``max_pool`` (3/2), ``relu_lrn_pool`` and ``unfused`` (``relu_lrn`` then
``max_pool`` of the same backend: what fusion is measured against). Before a case is timed its output
(and input gradient) is checked against eager (``bench.checks``): a mismatch fails the case with the
error instead of timing it. Cases marked ``headline`` (``bench.shapes``) are the quick set that
``pytest bench/ -m headline`` runs. Each result's ``extra_info``
holds the case, the timing summary (``bench.timing``), achieved GB/s from the minimal bytes
(``bench.counting``), the percentage of this session's measured copy bandwidth, on a CPU the case
timed again warm (``warm_*``: the primary figures are cold, the caches flushed before each round) and
each state's memory and compute roof with the % of the binding one (``bench.timing``), the bytes autograd
saves for the backward, peak memory of forward+backward and the GPU's state. Speedups over
eager and compile are added when the JSON is written (``bench.derive``).
"""
from __future__ import annotations

import pytest
import torch

import kernels
from kernels.catalog import op_spec
from bench import checks, counting, env_info, roofs, shapes, timing

ON_GPU = torch.cuda.is_available()
STATUS = kernels.backend_status()
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
CASES = [
    pytest.param(case, backend, dtype, id=f"{case.id}-{backend}-{DTYPE_NAMES[dtype]}",
                 marks=[pytest.mark.headline] if shapes.is_headline_kernel(case, dtype, ON_GPU) else [])
    for case in shapes.kernel_cases(ON_GPU)
    for backend in case.backends
    for dtype in case.dtypes
]


def make_op(op: str, backend: str):
    """The callable under test: ``op``'s entry in ``kernels.catalog`` with the paper's settings."""
    spec = op_spec(op)
    return lambda x: spec.call(x, backend)


def make_input(shape, dtype, memory_format: str, device, requires_grad: bool) -> torch.Tensor:
    x = torch.randn(shape, dtype=dtype, device=device)
    if memory_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(requires_grad)


def skip_reason(backend: str, device: torch.device) -> str | None:
    if STATUS.get(backend) is not None:
        return f"backend {backend!r} unavailable: {STATUS[backend]}"
    problem = kernels.get_backend(backend).device_problem(device)
    return f"backend {backend!r} cannot run on {device}: {problem}" if problem else None


@pytest.mark.parametrize("direction", counting.DIRECTIONS)
@pytest.mark.parametrize("memory_format", ("nchw", "channels_last"))
@pytest.mark.parametrize("case,backend,dtype", CASES)
def test_kernel(benchmark, bench_env, bench_device, timer, case, backend, dtype, memory_format, direction):
    reason = skip_reason(backend, bench_device)
    if reason:
        pytest.skip(reason)
    op = make_op(case.op, backend)
    fwdbwd = direction == "fwdbwd"
    x = make_input(case.shape, dtype, memory_format, bench_device, requires_grad=fwdbwd)
    dy = torch.randn_like(op(x.detach()))  # also fails early and clearly if the op rejects the input
    benchmark.extra_info.update(kind="kernel", op=case.op, backend=backend, dtype=DTYPE_NAMES[dtype],
                                shape_name=case.shape_name, memory_format=memory_format, direction=direction)
    try:
        benchmark.extra_info.update(checks.check_kernel(case.op, op, x, dy, fwdbwd))
    except checks.CheckFailed as exc:
        benchmark.extra_info["check_ok"] = False
        pytest.fail(f"not timed: {exc}")

    if backend == "triton" and not ON_GPU:
        errs = ", ".join(f"{k[6:-12]} {v:.2g}" for k, v in benchmark.extra_info.items() if k.endswith("_max_abs_err"))
        pytest.skip(f"checked against eager (max abs err: {errs}); not timed: Triton runs through its CPU interpreter")

    if fwdbwd:
        def run():
            op(x).backward(dy)

        def before_each():
            x.grad = None
    else:
        def run():
            with torch.no_grad():
                op(x)

        before_each = None

    benchmark.group = f"{case.id}-{DTYPE_NAMES[dtype]}-{memory_format}-{direction}"
    result = timer.time(benchmark, run, before_each, cache="cold")  # a GPU round is always cold

    element_size = x.element_size()
    nbytes = counting.minimal_bytes(case.op, case.shape, element_size, direction)
    copy_bw = bench_env["copy_bytes_per_s"]
    info = {
        "kind": "kernel",
        "op": case.op,
        "backend": backend,
        "dtype": DTYPE_NAMES[dtype],
        "shape_name": case.shape_name,
        "shape": list(case.shape),
        "memory_format": memory_format,
        "direction": direction,
        "cpu": not ON_GPU,
        "device": str(bench_device),
        "bytes": nbytes,
        **result.summary(),
    }
    info["gbps"] = nbytes / info["time_s"] / 1e9
    info["copy_gbps"] = copy_bw / 1e9
    info["pct_copy_bw"] = 100.0 * nbytes / info["time_s"] / copy_bw
    if not ON_GPU:  # the second cache state, and each state's roofs (bench.timing's module doc)
        info.update(timer.measure(run, before_each, cache="warm").warm_summary())
        info.update(roofs.roof_fields(timer, bench_env, case.op, case.shape, direction, nbytes,
                                      {"": info["time_s"], "warm_": info["warm_time_s"]}))
    if fwdbwd:
        x.grad = None
        info["saved_bytes"] = timing.saved_tensor_bytes(lambda: op(x), exclude=(x,))
        info["peak_mem_bytes"] = timing.peak_memory_delta(run, bench_device)
    info["gpu_state"] = env_info.gpu_state(bench_device)
    benchmark.extra_info.update(info)
