"""The benchmark matrix: AlexNet's real activations on a GPU (batch 128) and on a CPU (batch 16).

On a GPU the kernel cases use the activations AlexNet actually produces at batch 128 (conv1
128x96x55x55, conv2 128x256x27x27, conv5 128x256x13x13) plus a batch sweep of conv2. On a CPU the
backends that run natively there (eager, torchscript, compile, cpp) are timed at the same sites at
batch 16, and the paper's full AlexNet at 227 px, batch 16: the CPU is a measured target of its own,
its results marked ``"cpu": True``. Triton runs on a CPU only through its interpreter: it is checked
against eager at a tiny shape and reported as not timed. Smaller model cases (67 px, narrow FC
layers) exercise the remaining code paths (layouts, ablations, two devices) without timing claims.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from kernels.backends import BACKENDS
from kernels.catalog import OPS, PUBLIC_OPS


@dataclass(frozen=True)
class KernelCase:
    op: str  # relu_lrn | max_pool | relu_lrn_pool | unfused
    shape_name: str  # conv1 | conv2 | conv5 | conv2-b<N> | cpu-... (names the AlexNet site)
    shape: tuple  # (N, C, H, W)
    backends: tuple  # backends that run this case
    dtypes: tuple  # dtypes it runs in

    @property
    def id(self) -> str:
        return f"{self.op}-{self.shape_name}"


GPU_SHAPES = {
    "conv1": (128, 96, 55, 55),  # relu+LRN1 input; pool1 input
    "conv2": (128, 256, 27, 27),  # relu+LRN2 input; pool2 input
    "conv5": (128, 256, 13, 13),  # pool5 input (no LRN after conv5)
}
GPU_BATCH_SWEEP = (32, 64, 256, 512)  # conv2 shape at other batches (128 is "conv2")
GPU_SWEEP_BACKENDS = ("eager", "compile", "triton")
# float16 is optional (bf16 is AlexNet's 16-bit type here): ALEXNET_BENCH_FP16=1 adds it at the AlexNet sites
GPU_DTYPES = (torch.float32, torch.bfloat16) + ((torch.float16,) if os.environ.get("ALEXNET_BENCH_FP16") == "1" else ())
GPU_SWEEP_DTYPES = (torch.bfloat16,)
# CPU: AlexNet's activations at batch 16 for the backends that run natively. Every op at conv1 in
# float32 (the targets) and the three public ops in bfloat16; conv2 and conv5 in float32 for the
# LRN and pool sites. Each compile case is an Inductor C++ build (seconds), which sizes this set:
# torch.compile runs at conv1.
CPU_BATCH = 16
CPU_SHAPES = {name: (CPU_BATCH,) + shape[1:] for name, shape in GPU_SHAPES.items()}
CPU_NATIVE_BACKENDS = tuple(b for b in BACKENDS if b != "triton")
CPU_DTYPES = (torch.float32,)
CPU_BF16_OPS = PUBLIC_OPS
# Triton under its interpreter (milliseconds per program instance): checked at a tiny shape, not timed
# (eager runs there too: the tiny case of the quick harness tests).
CPU_TINY = {"cpu-tiny": (1, 8, 9, 9)}

def kernel_cases(on_gpu: bool) -> list[KernelCase]:
    """Every (op, shape) case with the backends that should run it on this kind of machine."""
    cases: list[KernelCase] = []
    for op, spec in OPS.items():
        sites = spec.alexnet_sites
        if on_gpu:
            for site in sites:
                cases.append(KernelCase(op, site, GPU_SHAPES[site], BACKENDS, GPU_DTYPES))
            if spec.batch_sweep:
                n, c, h, w = GPU_SHAPES["conv2"]
                for batch in GPU_BATCH_SWEEP:
                    cases.append(KernelCase(op, f"conv2-b{batch}", (batch, c, h, w), GPU_SWEEP_BACKENDS,
                                            GPU_SWEEP_DTYPES))
        else:
            for site in sites:
                dtypes = CPU_DTYPES + ((torch.bfloat16,) if site == "conv1" and op in CPU_BF16_OPS else ())
                # torch.compile at conv1 only: each case is an Inductor C++ build, and conv1 carries the targets
                backends = CPU_NATIVE_BACKENDS if site == "conv1" else tuple(b for b in CPU_NATIVE_BACKENDS
                                                                             if b != "compile")
                cases.append(KernelCase(op, site, CPU_SHAPES[site], backends, dtypes))
            for name, shape in CPU_TINY.items():
                cases.append(KernelCase(op, name, shape, ("eager", "triton"), CPU_DTYPES))
    return cases


def is_headline_kernel(case: KernelCase, dtype: torch.dtype, on_gpu: bool) -> bool:
    """The quick set (``pytest bench/ -m headline``): every op and backend at AlexNet's conv1 activations,
    float32 and bfloat16, both layouts and directions; at conv2 the fusion target (fused and unfused,
    bfloat16). On a CPU, conv1 (batch 16) and the Triton correctness checks."""
    if not on_gpu:
        return case.shape_name in ("conv1",) + tuple(CPU_TINY)
    if case.shape_name == "conv1":
        return dtype in (torch.float32, torch.bfloat16)
    fusion = len(OPS[case.op].steps) > 1  # the fused op and its unfused chain
    return case.shape_name == "conv2" and fusion and dtype == torch.bfloat16


# ---------------------------------------------------------------- model cases


@dataclass(frozen=True)
class ModelCase:
    """One AlexNet benchmark: a config variant, a kernel backend and how it is run."""

    group: str  # what the case answers: grid | batch-sweep | layout | paper-claim | target
    variant: str  # paper | no-lrn | tanh | pool-2x2 | one-gpu-half
    kernels: str  # kernels backend inside the model
    layout: str  # two-gpu | one-gpu
    batch: int
    mode: str  # train | infer
    amp: str  # none | bf16
    channels_last: bool
    compile_model: bool = False  # torch.compile of the whole model (the baseline)
    devices: str = "one"  # one | two (towers on two GPUs)
    headline: bool = False  # in the quick set (pytest bench/ -m headline): the targets table's training steps
    paper_size: bool = False  # CPU: the paper's full net at 227 px (else 67 px with narrow FC layers)

    @property
    def id(self) -> str:
        parts = [self.variant, f"k-{self.kernels}", self.layout, f"b{self.batch}", self.mode,
                 "bf16" if self.amp == "bf16" else "fp32", "cl" if self.channels_last else "nchw"]
        if self.paper_size:
            parts.append("227px")
        if self.compile_model:
            parts.append("compiled")
        if self.devices == "two":
            parts.append("2dev")
        return "-".join(parts)


# AlexNetConfig overrides per variant (interfaces: alexnet/model.py)
VARIANTS = {
    "paper": {},
    "no-lrn": {"lrn": False},
    "tanh": {"activation": "tanh"},
    "pool-2x2": {"pool_kernel": 2, "pool_stride": 2},
    "one-gpu-half": {"layout": "one-gpu", "conv_widths": (48, 128, 192, 192, 256)},
}
GPU_IMAGE_SIZE = 227
CPU_IMAGE_SIZE = 67  # smallest input alexnet.model accepts: the code-path cases, no timing claims
# The code-path cases on a CPU use narrow FC layers and 10 classes; the paper-size cases (227 px, batch
# CPU_BATCH) are the full net.
CPU_MODEL_OVERRIDES = {"fc_width": 256, "num_classes": 10}


def image_size(case: "ModelCase", on_gpu: bool) -> int:
    return GPU_IMAGE_SIZE if on_gpu or case.paper_size else CPU_IMAGE_SIZE


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU (AVX-512 BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def model_cases(on_gpu: bool, device_count: int = 1) -> list[ModelCase]:
    """The model matrix: backends x layout x batch x mode x precision/layout, plus baselines."""
    cases: list[ModelCase] = []

    def add(*args, **kwargs):
        case = ModelCase(*args, **kwargs)
        case = replace(case, headline=case.group == "target")
        for i, seen in enumerate(cases):
            if seen.id == case.id:  # one benchmark answers several groups
                cases[i] = replace(seen, headline=seen.headline or case.headline)
                return
        cases.append(case)

    if on_gpu:
        for kernels in ("eager", "compile", "cpp", "triton"):
            for mode in ("train", "infer"):
                for amp, cl in (("none", False), ("bf16", True)):
                    for batch in (128, 256):
                        add("grid", "paper", kernels, "two-gpu", batch, mode, amp, cl)
        for mode in ("train", "infer"):  # whole-model compile with eager kernels: the baseline
            for amp, cl in (("none", False), ("bf16", True)):
                for batch in (128, 256):
                    add("grid", "paper", "eager", "two-gpu", batch, mode, amp, cl, compile_model=True)
        for kernels in ("eager", "triton"):
            for layout in ("one-gpu", "two-gpu"):
                for amp, cl in (("none", False), ("bf16", False), ("bf16", True)):
                    add("layout", "paper", kernels, layout, 128, "train", amp, cl)
            for batch in (32, 64, 128, 256, 512):
                for mode in ("train", "infer"):
                    add("batch-sweep", "paper", kernels, "two-gpu", batch, mode, "bf16", True)
        for variant in ("paper", "no-lrn", "tanh", "pool-2x2", "one-gpu-half"):
            layout = "one-gpu" if variant == "one-gpu-half" else "two-gpu"
            add("paper-claim", variant, "eager", layout, 128, "train", "none", False)
        # targets: batch 256 bf16 channels_last training step
        add("target", "paper", "triton", "two-gpu", 256, "train", "bf16", True)
        add("target", "no-lrn", "triton", "two-gpu", 256, "train", "bf16", True)
        add("target", "paper", "eager", "two-gpu", 256, "train", "bf16", True)
        add("target", "paper", "eager", "two-gpu", 256, "train", "bf16", True, compile_model=True)
        add("target", "paper", "triton", "two-gpu", 256, "train", "bf16", True, compile_model=True)
        if device_count >= 2:
            for variant, layout in (("paper", "two-gpu"), ("one-gpu-half", "one-gpu")):
                add("paper-claim", variant, "eager", layout, 128, "train", "none", False,
                    devices="two" if layout == "two-gpu" else "one")
            add("layout", "paper", "triton", "two-gpu", 128, "train", "bf16", True, devices="two")
    else:
        for kernels in ("eager", "torchscript", "compile"):
            add("grid", "paper", kernels, "two-gpu", 2, "train", "none", False)
        add("grid", "paper", "eager", "two-gpu", 1, "infer", "none", False)
        add("grid", "paper", "eager", "two-gpu", 2, "infer", "none", False)
        add("grid", "paper", "eager", "two-gpu", 2, "infer", "none", True)
        add("grid", "paper", "eager", "two-gpu", 2, "infer", "bf16", True)
        add("grid", "paper", "eager", "two-gpu", 2, "infer", "none", False, compile_model=True)
        add("layout", "paper", "eager", "one-gpu", 2, "train", "none", False)
        add("batch-sweep", "paper", "eager", "two-gpu", 1, "train", "none", False)
        add("batch-sweep", "paper", "eager", "two-gpu", 4, "train", "none", False)
        for variant in ("no-lrn", "tanh", "pool-2x2", "one-gpu-half"):
            layout = "one-gpu" if variant == "one-gpu-half" else "two-gpu"
            add("paper-claim", variant, "eager", layout, 2, "train", "none", False)
        add("paper-claim", "paper", "eager", "two-gpu", 2, "train", "none", False, devices="two")
        # The CPU headline: the paper's AlexNet at 227 px, batch CPU_BATCH, inference and training step,
        # with eager, cpp and compile'd kernels, the whole-model torch.compile baseline and the net
        # without LRN (the cost of LRN itself); eager and cpp kernels again under bfloat16 autocast
        # where the CPU computes bfloat16 natively (elsewhere oneDNN emulates it: minutes per case).
        # Eager, cpp and the net without LRN also in channels_last: a speedup is taken over the faster of
        # eager's two layouts, and "a free LRN" is judged layout by layout.
        bf16 = (("eager", "paper", "bf16"), ("cpp", "paper", "bf16"), ("eager", "no-lrn", "bf16")) if cpu_has_native_bf16() else ()
        for mode in ("infer", "train"):
            for kernels, variant, compiled, amp in (("eager", "paper", False, "none"), ("cpp", "paper", False, "none"),
                                                    ("compile", "paper", False, "none"),
                                                    ("eager", "paper", True, "none"), ("eager", "no-lrn", False, "none")):
                add("target", variant, kernels, "two-gpu", CPU_BATCH, mode, amp, False, compile_model=compiled,
                    paper_size=True)
            for kernels, variant, amp in (("eager", "paper", "none"), ("cpp", "paper", "none"),
                                          ("eager", "no-lrn", "none"), *bf16):
                add("target", variant, kernels, "two-gpu", CPU_BATCH, mode, amp, True, paper_size=True)
    return cases


def is_headline_model(case: ModelCase) -> bool:
    """The headline's AlexNet cases: the training steps of the targets table (batch 256, bf16 autocast,
    channels_last on a GPU): eager kernels, triton kernels, whole-model torch.compile with each, and
    the net without LRN."""
    return case.headline
