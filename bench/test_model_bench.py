"""Model benchmarks: AlexNet training step and inference, images/s per kernels backend x layout x batch.

Variants (``bench.shapes.model_cases``): fp32 NCHW and bf16-autocast channels_last, the whole-model
``torch.compile`` baseline (eager kernels; ``alexnet.compiled.compile_model``, whose CPU workaround keeps
its gradients equal to eager's), one-tower vs two-tower layouts (and two devices when
there are two GPUs), a batch sweep, and the paper's ablations (no LRN, tanh, 2/2 pooling, the
one-GPU half-width net) whose costs the paper-vs-measured table reports. Before a case is timed, its
logits (and, training, conv1's weight gradient) are checked against the same weights with eager
kernels and no whole-model compile (``bench.checks``). Each result's
``extra_info`` holds images/s, counted TFLOP/s (``bench.counting``), model-FLOPs utilisation
against this session's measured GEMM throughput, peak memory and the GPU's state.
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

import kernels
from alexnet.optim import paper_sgd
from bench import checks, counting, env_info, roofs, shapes, timing

ON_GPU = torch.cuda.is_available()
DEVICE_COUNT = torch.cuda.device_count() if ON_GPU else 1
STATUS = kernels.backend_status()


def _marks(case: shapes.ModelCase) -> list:
    return [pytest.mark.headline] if shapes.is_headline_model(case) else []


CASES = [pytest.param(case, id=case.id, marks=_marks(case)) for case in shapes.model_cases(ON_GPU, DEVICE_COUNT)]


def _import(name: str):
    try:
        return importlib.import_module(name), None
    except Exception as exc:
        return None, f"{name} cannot be imported ({type(exc).__name__}: {exc})"


def skip_reason(case: shapes.ModelCase, device: torch.device) -> str | None:
    if STATUS.get(case.kernels) is not None:
        return f"kernels backend {case.kernels!r} unavailable: {STATUS[case.kernels]}"
    problem = kernels.get_backend(case.kernels).device_problem(device)
    if problem:
        return f"kernels backend {case.kernels!r} cannot run on {device}: {problem}"
    if case.devices == "two" and ON_GPU and DEVICE_COUNT < 2:
        return f"two-device layout needs 2 GPUs, found {DEVICE_COUNT}"
    return None


def build(case: shapes.ModelCase, device: torch.device, kernels_backend: str | None = None):
    """The model (placed, compiled as the case says) and its parameters' module; ``kernels_backend``
    overrides the case's (the eager reference of the pre-timing check)."""
    model_mod, reason = _import("alexnet.model")
    if model_mod is None:
        pytest.skip(reason)
    overrides = {**shapes.VARIANTS[case.variant], "layout": case.layout}
    if not ON_GPU and not case.paper_size:
        overrides.update(shapes.CPU_MODEL_OVERRIDES)
    cfg = model_mod.AlexNetConfig(**overrides, kernels=kernels_backend or case.kernels)
    model = model_mod.build_model(cfg).to(device)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if case.devices == "two":
        placement, reason = _import("alexnet.placement")
        if placement is None:
            pytest.skip(reason)
        spec = "cuda:0,cuda:1" if ON_GPU else "cpu,cpu"
        model = placement.place_model(model, placement.parse_devices(spec, case.layout))
    if not (case.compile_model and kernels_backend is None):
        return cfg, model, model
    compiled, reason = _import("alexnet.compiled")  # the Inductor options that keep CPU gradients right
    if compiled is None:
        pytest.skip(reason)
    # Static shapes, as the kernels' compile backend: after the 67 px case, the 227 px ones would recompile
    # with symbolic sizes (2-core AMD EPYC, cold caches: inference case 582 s instead of 26 s, training
    # case 452 s instead of 122 s, and its step 1.01 s instead of 0.65 s: a handicapped baseline).
    runner = compiled.compile_model(model, [p.device for p in model.parameters()], dynamic=False)
    return cfg, model, runner


@pytest.mark.parametrize("case", CASES)
def test_model(benchmark, bench_env, bench_device, timer, case):
    reason = skip_reason(case, bench_device)
    if reason:
        pytest.skip(reason)
    torch.manual_seed(0)  # the same weights and inputs in every run: the pre-timing check is reproducible
    cfg, model, runner = build(case, bench_device)
    image_size = shapes.image_size(case, ON_GPU)
    x = torch.randn(case.batch, 3, image_size, image_size, device=bench_device)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, cfg.num_classes, (case.batch,), device=bench_device)
    autocast = torch.autocast(bench_device.type, dtype=torch.bfloat16, enabled=case.amp == "bf16")
    benchmark.extra_info.update(kind="model", variant=case.variant, kernels=case.kernels, batch=case.batch,
                                mode=case.mode, amp=case.amp, compile_model=case.compile_model)
    if case.kernels != "eager" or case.compile_model:  # eager kernels without compile is the reference itself
        _, reference, _ = build(case, bench_device, kernels_backend="eager")
        reference.load_state_dict(model.state_dict())
        try:
            benchmark.extra_info.update(checks.check_model(model, runner, reference, x, labels, case.amp,
                                                           train=case.mode == "train"))
        except checks.CheckFailed as exc:
            benchmark.extra_info["check_ok"] = False
            pytest.fail(f"not timed: {exc}")
        del reference
    else:
        benchmark.extra_info.update(check_ok=True, check_reference="is the reference (eager kernels, no compile)")

    if case.mode == "train":
        model.train()
        optimizer = paper_sgd(model.parameters(), lr=1e-3)  # fused where PyTorch has it, as train.py

        def run():
            with autocast:
                loss = F.cross_entropy(runner(x), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def run():
            with torch.no_grad(), autocast:
                runner(x)

    benchmark.group = f"model-{case.mode}-b{case.batch}-{case.amp}-{'cl' if case.channels_last else 'nchw'}"
    # steps back to back, as training runs them: warm on a CPU (a GPU round is always cold)
    result = timer.time(benchmark, run, interpreted=case.kernels == "triton" and not ON_GPU,
                        cpu_seconds=timing.CPU_MODEL_TARGET_SECONDS, cache="warm")
    arch = dict(layout=cfg.layout, conv_widths=tuple(cfg.conv_widths), fc_width=cfg.fc_width,
                num_classes=cfg.num_classes, pool_kernel=cfg.pool_kernel, pool_stride=cfg.pool_stride)
    flops_per_image = counting.alexnet_step_flops(image_size, train=case.mode == "train", **arch)
    info = {
        "kind": "model",
        "group": case.group,
        "variant": case.variant,
        "kernels": case.kernels,
        "layout": case.layout,
        "batch": case.batch,
        "mode": case.mode,
        "amp": case.amp,
        "channels_last": case.channels_last,
        "compile_model": case.compile_model,
        "devices": case.devices,
        "image_size": image_size,
        "cpu": not ON_GPU,
        "device": str(bench_device),
        **result.summary(),
    }
    info["images_per_s"] = case.batch / info["time_s"]
    info["flops_per_image"] = flops_per_image
    info["tflops"] = flops_per_image * case.batch / info["time_s"] / 1e12
    info.update(roofs.mfu_fields(info["tflops"], bench_env, case.amp, ON_GPU))
    if case.layout == "two-gpu" and case.devices == "two":
        element_size = 2 if case.amp == "bf16" else 4
        info["cross_tower_bytes_per_step"] = case.batch * counting.cross_tower_bytes(
            image_size, element_size=element_size, conv_widths=arch["conv_widths"], fc_width=cfg.fc_width,
            num_classes=cfg.num_classes, pool_kernel=cfg.pool_kernel, pool_stride=cfg.pool_stride,
            train=case.mode == "train",
        )
    info["peak_mem_bytes"] = timing.peak_memory_delta(run, bench_device)
    info["gpu_state"] = env_info.gpu_state(bench_device)
    benchmark.extra_info.update(info)
