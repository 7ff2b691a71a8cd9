"""Where one AlexNet training step (or inference forward) spends its time, from torch.profiler: the step's
phases and the operators by self time, with the share taken by this suite's own ops - a Markdown page.

    python -m bench.tools.profile_step --kernels cpp --out reports/NAME/profile.md
    python -m bench.tools.profile_step --kernels cpp --mode infer --out reports/NAME/profile-infer.md
    python -m bench.tools.profile_step --kernels cpp --channels-last --out reports/NAME/profile-cl.md
    python -m bench.tools.profile_step --kernels cpp --channels-last --amp bf16 --out /tmp/cpp-bf16.md
    python -m bench.tools.profile_step --kernels eager --no-lrn --channels-last --amp bf16 --out /tmp/no-lrn.md

It answers what bounds a target such as "the training step >= 1.5x the eager kernels": if the suite's
ops are a few percent of the step, no kernel of theirs can move it much. Two profiles side by side (the
cpp kernels, and the same net without LRN) show op by op where a "free LRN" target is lost. Run it on a
quiet machine (nothing else using the cores); the page names the machine, versions, date and command. With ``--out
PAGE.md`` the share of this suite's ops is also written to ``PAGE.json`` (``bench.report.step_profile``),
which the benchmark report reads for its ceilings.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from alexnet.model import AlexNetConfig, build_model
from alexnet.optim import paper_sgd
from infra import machine, report_kit
from bench.report import step_profile
from bench.report.step_profile import StepProfileSummary
from bench.tools import page_cli
from infra.errors import UsageError, run_cli
from kernels.backends import BACKENDS

OWN_OPS = ("alexnet_cpp_ext", "GeneratedBackwardFor_alexnet", "alexnet_triton")  # profiler keys of our ops
PHASES = ("zero_grad", "forward", "backward", "optimizer step")
MODES = {"train": "training step", "infer": "inference forward"}  # --mode: what one profiled step is
AMP = ("off", "bf16")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tools.profile_step", description=__doc__.split("\n")[0])
    p.add_argument("--kernels", default="cpp", choices=BACKENDS, help="kernels backend of the model (default cpp)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16, the CPU headline's)")
    p.add_argument("--image-size", type=int, default=227, help="input size in pixels (default 227, the paper's)")
    p.add_argument("--steps", type=int, default=5, help="profiled steps, after 3 warm-up steps (default 5)")
    p.add_argument("--mode", default="train", choices=MODES,
                   help="train: an SGD step (forward, backward, update); infer: the forward alone in eval mode "
                        "under no_grad (default train)")
    p.add_argument("--channels-last", action="store_true",
                   help="model and input in channels_last memory format (default NCHW), as the benchmark's "
                        "channels_last rows")
    p.add_argument("--amp", default="off", choices=AMP,
                   help="bf16: the forward (and loss) under CPU bfloat16 autocast, as the benchmark's bf16 rows "
                        "(default off: float32)")
    p.add_argument("--no-lrn", action="store_true",
                   help="the same net without its two LRN layers (ReLU and max-pool only), as the benchmark's "
                        "no-lrn variant")
    page_cli.add_threads_and_out(p)
    return p


def profile_steps(kernels: str, batch: int, image_size: int, steps: int, mode: str = "train",
                  channels_last: bool = False, amp: str = "off", lrn: bool = True):
    """(key averages, ms per step) of ``steps`` SGD steps (``mode="train"``) or inference forwards
    (``"infer"``) of the paper's AlexNet (``lrn=False``: without its LRN layers) on the CPU, in NCHW or
    (``channels_last``) channels_last, in float32 or (``amp="bf16"``) under bfloat16 autocast."""
    torch.manual_seed(0)
    model = build_model(AlexNetConfig(kernels=kernels, lrn=lrn))
    x = torch.randn(batch, 3, image_size, image_size)
    if channels_last:  # as bench/test_model_bench.py lays out its channels_last cases
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = paper_sgd(model.parameters(), lr=0.01)  # as train.py: fused where PyTorch has it
    y = torch.randint(0, 1000, (batch,))
    record = torch.profiler.record_function

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")

    def infer():
        with torch.no_grad(), record("forward"), autocast():
            model(x)

    def train():
        with record("zero_grad"):
            opt.zero_grad(set_to_none=True)
        with record("forward"), autocast():
            loss = F.cross_entropy(model(x), y)
        with record("backward"):
            loss.backward()
        with record("optimizer step"):
            opt.step()

    if mode == "infer":
        model.eval()
    step = infer if mode == "infer" else train
    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall_ms = 1e3 * (time.perf_counter() - start) / steps
    return prof.key_averages(), wall_ms


def summarize(averages, wall_ms: float, args) -> StepProfileSummary:
    """This suite's share of the profiled steps: the record the report reads (``bench.report.step_profile``)."""
    self_total = sum(e.self_cpu_time_total for e in averages) or 1.0
    ours = [e for e in averages if any(tag in e.key for tag in OWN_OPS)]
    ours_us = sum(e.self_cpu_time_total for e in ours)
    names = sorted({e.key.split("::")[-1] for e in ours if "::" in e.key and not e.key.startswith("autograd")})
    return StepProfileSummary(mode=args.mode, kernels=args.kernels, layout=step_profile.layout_name(args.channels_last),
                              amp=args.amp, lrn=not args.no_lrn, steps=args.steps, ms_per_step=round(wall_ms, 3),
                              own_ops=tuple(names), own_ms_per_step=round(ours_us / 1e3 / args.steps, 3),
                              own_share=ours_us / self_total)


def render(averages, wall_ms: float, args, command: str, summary: StepProfileSummary) -> str:
    per_step = {e.key: e for e in averages}
    self_total = sum(e.self_cpu_time_total for e in averages) or 1.0
    cpu = machine.cpu_info()["cpu_model"]
    what = MODES[args.mode]
    workload = ("SGD with momentum and weight decay" if args.mode == "train"
                else "the forward alone, eval mode, under no_grad")
    net = "AlexNet without LRN" if args.no_lrn else "AlexNet"
    variant = (", channels_last" if args.channels_last else "") + (", bf16 autocast" if args.amp == "bf16" else "")
    lines = [f"# Where the {net} {what} spends its time ({args.kernels} kernels{variant}, CPU profile)", "",
             f"- Machine: {cpu}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
             f"{datetime.now(timezone.utc).date().isoformat()}.",
             f"- Command: `{command}`",
             f"- The paper's AlexNet (two towers{', without its LRN layers' if args.no_lrn else ''}), "
             f"{args.image_size} px, batch {args.batch}, {'bfloat16 autocast' if args.amp == 'bf16' else 'float32'}, "
             f"{'channels_last' if args.channels_last else 'NCHW'}, {workload}; "
             f"{args.steps} profiled step(s) after 3 warm-up steps, {wall_ms:.1f} ms per step "
             "(under the profiler, which adds a little).", "",
             "## Phases of a step", ""]
    lines += report_kit.table(["phase", "ms per step", "share of the step"], (
        [name, report_kit.num(per_step[name].cpu_time_total / 1e3 / args.steps, ".1f"),
         report_kit.pct(per_step[name].cpu_time_total / 1e3 / args.steps / wall_ms, 1)]
        for name in PHASES if name in per_step))
    lines += ["", "## Operators by self time", ""]
    top = sorted(averages, key=lambda e: -e.self_cpu_time_total)[:12]
    lines += report_kit.table(["operator", "calls per step", "self ms per step", "share"], (
        [f"`{e.key}`", report_kit.num(e.count / args.steps, ".0f"), report_kit.num(e.self_cpu_time_total / 1e3 / args.steps, ".1f"),
         report_kit.pct(e.self_cpu_time_total / self_total, 1)] for e in top))
    lines += ["", summary.summary_line(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        page_cli.require_at_least(args, ("batch", "image_size", "steps"))
        if args.image_size < 67:
            raise UsageError(f"--image-size {args.image_size} is too small for AlexNet (conv1 11/4 and three 3/2 "
                             "pools); use at least 67")
        page_cli.prepare(args)
        averages, wall_ms = profile_steps(args.kernels, args.batch, args.image_size, args.steps, args.mode,
                                          args.channels_last, args.amp, not args.no_lrn)
        summary = summarize(averages, wall_ms, args)
        page = render(averages, wall_ms, args, page_cli.command_line("bench.tools.profile_step", argv), summary)
        if page_cli.emit(page, args.out) is not None:
            print(f"wrote {step_profile.save(summary, args.out)}")
    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
