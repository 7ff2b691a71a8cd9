"""CPU peers timed beside the project's backends: OpenVINO and ONNX Runtime (``bench.peers``).

Each peer runs the same op chain (ReLU -> LRN -> max-pool and its parts, from an ONNX graph) at the CPU
kernel cases' shapes (float32, NCHW, forward: what an inference runtime does), and the paper's AlexNet
inference at 227 px (batch ``shapes.CPU_BATCH``, eager-kernels weights). Outputs are checked against
eager like every other case before they are timed. Results have the same fields as the kernel and
model benchmarks (``backend`` / ``kernels`` = the peer's name), so tables, speedups and targets treat a
peer like a backend. Absent peers (``pip install -e '.[peers]'``) are skipped with the reason.
"""
from __future__ import annotations

import pytest
import torch

from bench import checks, counting, peers, roofs, shapes, timing

ON_GPU = torch.cuda.is_available()
STATUS = peers.peer_status()
KERNEL_CASES = [c for c in shapes.kernel_cases(on_gpu=False) if c.op in peers.CHAIN_OPS and "triton" not in c.backends]
MODEL_CASES = [c for c in shapes.model_cases(on_gpu=False) if c.paper_size and c.mode == "infer" and c.amp == "none"
               and c.kernels == "eager" and not c.compile_model and c.variant == "paper" and not c.channels_last]

pytestmark = pytest.mark.skipif(ON_GPU, reason="the peers are CPU runtimes; a GPU run times the GPU backends")


def _skip_if_absent(peer: str) -> None:
    if STATUS.get(peer) is not None:
        pytest.skip(f"peer {peer} unavailable: {STATUS[peer]}")


def _threads() -> int:
    return torch.get_num_threads()  # the same threads torch's backends use in this run


@pytest.mark.parametrize("peer", peers.PEERS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.headline]
                                               if shapes.is_headline_kernel(c, torch.float32, False) else [])
                                  for c in KERNEL_CASES])
def test_peer_kernel(benchmark, bench_env, bench_device, timer, case, peer):
    _skip_if_absent(peer)
    run_peer = peers.compile_peer(peer, peers.chain_model(case.op, case.shape), _threads())
    x = torch.randn(case.shape)
    benchmark.extra_info.update(kind="kernel", op=case.op, backend=peer, dtype="float32",
                                shape_name=case.shape_name, memory_format="nchw", direction="fwd")
    try:
        benchmark.extra_info.update(checks.check_kernel(case.op, run_peer, x, None, fwdbwd=False))
    except checks.CheckFailed as exc:
        benchmark.extra_info["check_ok"] = False
        pytest.fail(f"not timed: {exc}")
    benchmark.group = f"{case.id}-float32-nchw-fwd"
    result = timer.time(benchmark, lambda: run_peer(x), cache="cold")
    nbytes = counting.minimal_bytes(case.op, case.shape, 4, "fwd")
    info = {"kind": "kernel", "op": case.op, "backend": peer, "dtype": "float32", "shape_name": case.shape_name,
            "shape": list(case.shape), "memory_format": "nchw", "direction": "fwd", "cpu": True,
            "device": str(bench_device), "bytes": nbytes, "threads": _threads(), **result.summary()}
    info["gbps"] = nbytes / info["time_s"] / 1e9
    info["copy_gbps"] = bench_env["copy_bytes_per_s"] / 1e9
    info["pct_copy_bw"] = 100.0 * nbytes / info["time_s"] / bench_env["copy_bytes_per_s"]
    info.update(timer.measure(lambda: run_peer(x), cache="warm").warm_summary())
    info.update(roofs.roof_fields(timer, bench_env, case.op, case.shape, "fwd", nbytes,
                                  {"": info["time_s"], "warm_": info["warm_time_s"]}))
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("peer", peers.PEERS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.headline]) for c in MODEL_CASES])
def test_peer_alexnet(benchmark, bench_env, bench_device, timer, case, peer):
    _skip_if_absent(peer)
    from alexnet.model import AlexNetConfig, build_model

    model = build_model(AlexNetConfig(**shapes.VARIANTS[case.variant], layout=case.layout, kernels="eager")).eval()
    size = shapes.image_size(case, on_gpu=False)
    x = torch.randn(case.batch, 3, size, size)
    run_peer = peers.alexnet_peer(peer, model, x, _threads())
    benchmark.extra_info.update(kind="model", variant=case.variant, kernels=peer, batch=case.batch, mode="infer",
                                amp="none", compile_model=False)
    # The model benchmarks' tolerance for float32 logits (bench.checks.MODEL_TOLERANCE), relative to their scale.
    rtol, atol = checks.MODEL_TOLERANCE["none"]
    with torch.no_grad():
        expected, got = model(x), run_peer(x)
    err = float((got - expected).abs().max())
    ok = torch.allclose(got, expected, rtol=rtol, atol=atol * float(expected.abs().max()))
    benchmark.extra_info.update(check_ok=ok, check_logits_max_abs_err=err,
                                check_reference="eager kernels, same weights, float32")
    if not ok:
        pytest.fail(f"not timed: {peer} AlexNet logits differ from eager: max |diff| {err:.3g}")
    benchmark.group = f"model-infer-b{case.batch}-none-nchw"
    result = timer.time(benchmark, lambda: run_peer(x), cpu_seconds=timing.CPU_MODEL_TARGET_SECONDS, cache="warm")
    flops = counting.alexnet_step_flops(size, train=False, layout=case.layout)  # the paper-size net's defaults
    info = {"kind": "model", "group": case.group, "variant": case.variant, "kernels": peer, "layout": case.layout,
            "batch": case.batch, "mode": "infer", "amp": "none", "channels_last": False, "compile_model": False,
            "devices": "one", "image_size": size, "cpu": True, "device": str(bench_device), "threads": _threads(),
            **result.summary()}
    info["images_per_s"] = case.batch / info["time_s"]
    info["flops_per_image"] = flops
    info["tflops"] = flops * case.batch / info["time_s"] / 1e12
    info["peak_mem_bytes"] = None
    benchmark.extra_info.update(info)
