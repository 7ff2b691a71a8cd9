"""Why the CIFAR-10 study's tanh arm trains at about half the images/s of its ReLU arm - a Markdown page.

    python -m bench.tools.cifar_activation_profile --out reports/cifar10-cpu/activation-profile.md

The study's Figure-1 runs (``bench.ablations.cifar``) time whole epochs; their tanh runs report about half
of ReLU's training images/s, which makes the "seconds to 25%" row a comparison of two speeds as much as
of two activations. This tool trains the study's net (``bench.ablations.cifar_train.build_model``, the
paper regime's inputs and init, batch 128, channels-last, SGD with momentum) with each activation, under
the study's bfloat16 autocast and in float32, and with flush-to-zero for denormals on, the arms taking
turns round by round on the same batches of real CIFAR-10; then profiles a few steps of each with
``torch.profiler`` and lists the operators that take the most time (self CPU time). The page names the
machine, versions, date and command, and whether other work shared the cores; ``--out PAGE.md`` also
writes ``PAGE.json`` (the medians and profiles), from which the study's report quotes the ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.tools import page_cli
from bench.tools.cifar_throughput import rate_rows, rates_in_turns, train_steps
from infra import machine, report_kit
from infra.atomic_io import write_json_atomic
from infra.errors import run_cli

# arm -> (activation, autocast, flush denormals to zero)
ARMS = {"ReLU, bf16 autocast": ("relu", "bf16", False), "tanh, bf16 autocast": ("tanh", "bf16", False),
        "ReLU, float32": ("relu", "off", False), "tanh, float32": ("tanh", "off", False),
        "tanh, bf16 autocast, denormals flushed": ("tanh", "bf16", True)}
TOP_OPS = 8


class Arm:
    """One activation's net, optimiser and batch stream; ``run(steps)`` trains and returns the seconds."""

    def __init__(self, name: str, activation: str, amp: str, ftz: bool, data):
        from bench.ablations.cifar_train import RunSpec, build_model

        self.name, self.ftz, self.data = name, ftz, data
        self.spec = RunSpec(activation=activation, amp=amp, lr=0.00125, input_scale="pixels", init="cuda-convnet")
        self.model = build_model(self.spec, data.num_classes)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.spec.lr, momentum=self.spec.momentum)
        self.gen = torch.Generator().manual_seed(0)  # every arm draws the same batches

    def run(self, steps: int) -> float:
        torch.set_flush_denormal(self.ftz)
        try:
            return train_steps(self.model, self.opt, self.data, self.spec, self.gen, steps)[0]
        finally:
            torch.set_flush_denormal(False)

    def profile(self, steps: int) -> list[dict]:
        """The ``TOP_OPS`` operators with the most self CPU time over ``steps`` profiled steps."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            self.run(steps)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        return [{"op": e.key, "calls": e.count, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                 "share": e.self_cpu_time_total / total} for e in events[:TOP_OPS]]


def measure(args) -> dict:
    from bench.ablations.cifar_train import load_cifar_tensors

    data = load_cifar_tensors(args.data)
    arms = [Arm(name, *settings, data) for name, settings in ARMS.items()]
    rates = rates_in_turns(arms, args)
    profiles = {arm.name: arm.profile(args.profile_steps) for arm in arms}
    return {"rates": rates, "profiles": profiles, "data": data.source}


def render(result: dict, args, command: str, shared: str) -> str:
    rates = result["rates"]
    base = statistics.median(rates["ReLU, bf16 autocast"])
    lines = ["# CIFAR-10 study: why tanh trains slower than ReLU here", "",
             f"- Machine: {machine.cpu_info()['cpu_model']}, {torch.get_num_threads()} threads, no GPU; torch "
             f"{torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}); "
             f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}. {shared}",
             f"- Command: `{command}`",
             "- The study's 4-layer CNN, paper regime (0-255 px, cuda-convnet init), batch 128, channels-last, SGD "
             f"(momentum 0.9), on random batches of `{Path(result['data']).name}`. {args.rounds} rounds; in each, every "
             f"arm trains {args.steps} steps in turn (after {args.warmup} warm-up steps). Then {args.profile_steps} "
             "steps of each arm under `torch.profiler` (CPU activities).", ""]
    rows = rate_rows(rates, base)
    lines += report_kit.table(["arm", "images/s (median)", "range over rounds", "vs ReLU bf16", "ms per step"], rows)
    lines.append("")
    for name, ops in result["profiles"].items():
        lines += [f"## {name}: operators by self CPU time", ""]
        lines += report_kit.table(["operator", "calls", "ms per step", "share of self time"],
                                  [[f"`{o['op']}`", o["calls"], report_kit.num(o["ms_per_step"], ".2f"),
                                    report_kit.pct(o["share"], 1)] for o in ops])
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.cifar_activation_profile", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="cifar10", help="'cifar10', an archive, a folder, or 'synthetic' (default cifar10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each times every arm once (default 3)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per arm and round (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first (default 3)")
    p.add_argument("--profile-steps", type=int, default=3, help="profiled steps per arm (default 3)")
    page_cli.add_threads_and_out(p)
    args = p.parse_args(argv)

    def body():
        page_cli.require_at_least(args, ("rounds", "steps", "profile_steps"))
        page_cli.prepare(args)
        load_before = os.getloadavg()[0]
        shared = (f"Other work shared the cores while this ran (1-minute load average {load_before:.1f} before it "
                  f"started, on {os.cpu_count()} cores): the ratios between arms, which took turns, are the measure, "
                  "not the absolute rates." if machine.shared_load(load_before) else "")
        result = measure(args)
        command = page_cli.command_line("bench.tools.cifar_activation_profile", argv)
        if page_cli.emit(render(result, args, command, shared), args.out) is not None:
            summary = {"machine": machine.cpu_info()["cpu_model"], "threads": torch.get_num_threads(),
                       "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "torch": torch.__version__, "measured": datetime.now(timezone.utc).isoformat(timespec="minutes"),
                       "command": command, "shared": bool(shared),
                       "images_per_s": {k: statistics.median(v) for k, v in result["rates"].items()},
                       "profiles": result["profiles"]}
            print(f"wrote {write_json_atomic(args.out.with_suffix('.json'), summary)}")
    return run_cli(p.prog, body)


if __name__ == "__main__":
    sys.exit(main())
