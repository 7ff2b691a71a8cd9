"""Training images/s of the CIFAR-10 study's arms, timed side by side: what LRN costs the 4-layer CNN
with each way of computing it - a Markdown page.

    python -m bench.tools.cifar_throughput --out reports/cifar10-cpu/throughput.md
    python -m bench.tools.cifar_throughput --arms towers --amp off --out reports/cifar10-cpu/throughput-towers.md

The study's own images/s column comes from runs that shared the machine with other work; this tool
answers "what does the LRN arm run at with the project's kernels" on a quiet machine instead. Every arm
trains the same net (``bench.ablations.cifar_train.build_model``, the study's settings: batch 128,
channels-last, SGD with momentum, bfloat16 autocast with LRN in float32, the paper regime's 0-255 px
inputs and cuda-convnet init by default) on the same batches of real CIFAR-10 images, and the arms take
turns: each round times ``--steps`` training steps of every arm in turn, after ``--warmup`` untimed
steps, so a change in the machine's speed falls on all arms alike. The page gives each arm's median over
the rounds and its ratio to the first arm.

Two sets of arms (``--arms``). ``lrn``: the baseline (no LRN); LRN through ``kernels.relu_lrn`` with the
``cpp`` backend (what the study uses); the same op with the ``eager`` backend (PyTorch's reference chain);
and ``ChannelLRN``'s einsum (a banded matrix product, what the first study's LRN arm ran). ``towers``: the
towers experiment's two nets (two towers, the full width in all; one tower with half the kernels in every
conv layer) beside the full-width one-tower net, no LRN, laid out as ``alexnet.cifar_cnn`` places them on
one CPU. Run it with nothing else using the cores; the page names the machine, versions, date and command.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from alexnet.cifar_cnn import ChannelLRN
from alexnet.train_step import sgd_step
from infra import machine, report_kit
from bench.tools import page_cli
from infra.errors import run_cli

# arm name -> (LRN on, how ChannelLRN computes it: a kernels backend, "einsum", or None for no LRN)
ARMS = {
    "baseline: no LRN": (False, None),
    "LRN: kernels.relu_lrn, cpp": (True, "cpp"),
    "LRN: kernels.relu_lrn, eager": (True, "eager"),
    "LRN: ChannelLRN einsum": (True, "einsum"),
}
# arm name -> the run settings that differ from the full-width one-tower net: the towers experiment's arms
# (bench.ablations.cifar.ARMS) and that net itself as the yardstick
TOWER_ARMS = {
    "one tower, full width": "base",
    "two towers, half the kernels each": "two-tower",
    "one tower, half the kernels in every conv layer": "one-tower-half",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tools.cifar_throughput", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="cifar10",
                   help="'cifar10' (../shared/data/cifar10-jpg.tar.gz or $ALEXNET_CIFAR10), an archive, a folder, "
                        "or 'synthetic' (default cifar10)")
    p.add_argument("--arms", default="lrn", choices=("lrn", "towers"),
                   help="lrn: the ways of computing LRN against no LRN (default); towers: the towers experiment's nets")
    p.add_argument("--regime", default="paper", choices=("paper", "unit"),
                   help="paper: 0-255 px inputs, cuda-convnet init; unit: unit-variance inputs, PyTorch init")
    p.add_argument("--amp", default="bf16", choices=("bf16", "off"), help="bfloat16 autocast as the study (default)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each times every arm once (default 5)")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per arm and round (default 40)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per arm before the rounds (default 5)")
    page_cli.add_threads_and_out(p)
    return p


def train_steps(model, opt, data, spec, gen: torch.Generator, steps: int) -> tuple[float, torch.Tensor | None]:
    """``steps`` training steps of ``model`` on batches drawn from ``data`` with ``gen`` (drawn before the
    clock starts), as the study trains (``spec``'s input scale and autocast); the seconds taken and the
    last loss (None for no steps)."""
    batches = [torch.randint(0, len(data.train_y), (spec.batch_size,), generator=gen) for _ in range(steps)]
    loss = None
    start = time.perf_counter()
    for idx in batches:
        x, y = data.inputs(data.train_x[idx], spec.input_scale), data.train_y[idx]
        loss = sgd_step(model, opt, x, y, amp=spec.amp)[1]
    return time.perf_counter() - start, loss


class Arm:
    """One arm's net, optimiser and batch stream; ``run(steps)`` trains and returns the seconds taken."""

    def __init__(self, name: str, lrn: bool, impl: str | None, data, spec_kwargs: dict):
        from bench.ablations.cifar_train import RunSpec, build_model

        self.name = name
        self.spec = RunSpec(**{"lrn": lrn, **spec_kwargs})
        self.model = build_model(self.spec, data.num_classes)
        for m in self.model.modules():
            if isinstance(m, ChannelLRN):
                if impl == "einsum":
                    m.nonnegative = False
                else:
                    m.kernels_backend = impl
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.spec.lr, momentum=self.spec.momentum,
                                   weight_decay=self.spec.weight_decay)
        self.data = data
        self.gen = torch.Generator().manual_seed(0)  # every arm draws the same batches

    def run(self, steps: int) -> float:
        spec, data = self.spec, self.data
        if steps < 1:
            return 0.0
        seconds, loss = train_steps(self.model, self.opt, data, spec, self.gen, steps)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{self.name}: the training loss is {float(loss)} - the arm does not train at "
                               f"lr {spec.lr}, so its speed would not be the study's")
        return seconds


def measure(args) -> dict:
    """images/s per arm and round, every arm timed in turn each round."""
    from bench.ablations.cifar_train import load_cifar_tensors

    data = load_cifar_tensors(args.data)
    spec_kwargs = {"lr": 0.005, "momentum": 0.9, "weight_decay": 5e-4, "flip": False, "batch_size": 128,
                   "amp": args.amp, **({"input_scale": "pixels", "init": "cuda-convnet"} if args.regime == "paper" else {})}
    arms, missing = [], {}
    if args.arms == "towers":
        from bench.ablations.cifar import ARMS as STUDY_ARMS

        spec_kwargs["lr"] = 0.00125  # the rate the towers experiment picked for both of its arms
        arms = [Arm(name, False, None, data, {**spec_kwargs, **STUDY_ARMS[key]}) for name, key in TOWER_ARMS.items()]
    else:
        for name, (lrn, impl) in ARMS.items():
            reason = _unavailable(impl)
            if reason:
                missing[name] = reason
            else:
                arms.append(Arm(name, lrn, impl, data, spec_kwargs))
    return {"rates": rates_in_turns(arms, args), "missing": missing, "data": data.source, "spec": spec_kwargs}


def rates_in_turns(arms: list, args) -> dict[str, list[float]]:
    """Images/s of each arm per round: ``args.warmup`` untimed steps each, then ``args.rounds`` rounds in which
    every arm trains ``args.steps`` steps in turn, so that a change in the machine's load falls on all arms."""
    for arm in arms:
        arm.run(args.warmup)
    rates = {arm.name: [] for arm in arms}
    for _ in range(args.rounds):
        for arm in arms:
            rates[arm.name].append(args.steps * arm.spec.batch_size / arm.run(args.steps))
    return rates


def _unavailable(impl: str | None) -> str | None:
    """Why a kernels backend cannot run here (None if it can, or if the arm uses none)."""
    if impl in (None, "einsum"):
        return None
    from kernels.ops import BackendUnavailable, get_backend

    try:
        get_backend(impl)
    except BackendUnavailable as exc:
        return str(exc).split("\n")[0]
    return None


def render(result: dict, args, command: str) -> str:
    rates, spec = result["rates"], result["spec"]
    base = statistics.median(next(iter(rates.values())))
    cpu = machine.cpu_info()["cpu_model"]
    regime = ("paper regime: 0-255 px, cuda-convnet init" if args.regime == "paper"
              else "unit-variance inputs, PyTorch init")
    what = "each arm" if args.arms == "lrn" else "the towers experiment's nets"
    lines = [f"# CIFAR-10 study: training images/s of {what}, timed side by side", "",
             f"- Machine: {cpu}, {torch.get_num_threads()} threads, no GPU; torch {torch.__version__}; "
             f"{datetime.now(timezone.utc).date().isoformat()}.",
             f"- Command: `{command}`",
             f"- The study's 4-layer CNN, {regime}, batch 128, channels-last, SGD (momentum 0.9, weight decay "
             f"5e-4, lr {spec['lr']}), {'bfloat16 autocast, LRN in float32' if args.amp == 'bf16' else 'float32'}, "
             f"on random batches of `{Path(result['data']).name}`. {args.rounds} rounds; in each, every arm trains "
             f"{args.steps} steps in turn (after {args.warmup} untimed warm-up steps per arm). Training steps only: "
             "no evaluation, no data decoding.", ""]
    rows = rate_rows(rates, base)
    rows += [[name, f"not run: {reason}", "", "", ""] for name, reason in result["missing"].items()]
    lines += report_kit.table(["arm", "images/s (median)", "range over rounds", "vs first row",
                               "ms per step"], rows)
    if args.arms == "towers":
        lines += ["", "The two-tower net runs on one CPU, its towers inside single grouped ops (`alexnet.cifar_cnn`, "
                  "layout `two-gpu`), so its time is that net's arithmetic on these cores, not the two-GPU speed the "
                  "paper reports."]
    lines += [""]
    return "\n".join(lines)


def rate_rows(rates: dict[str, list[float]], base: float, batch: int = 128) -> list[list[str]]:
    """Table rows per arm: median images/s, the range over rounds, the ratio to ``base``, ms per step."""
    rows = []
    for name, values in rates.items():
        med = statistics.median(values)
        rows.append([name, report_kit.num(med, ",.0f"),
                     f"{report_kit.num(min(values), ',.0f')}-{report_kit.num(max(values), ',.0f')}",
                     report_kit.ratio(med / base), report_kit.num(1e3 * batch / med, ".2f")])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        page_cli.require_at_least(args, ("rounds", "steps"))
        page_cli.require_at_least(args, ("warmup",), minimum=0)
        page_cli.prepare(args)
        result = measure(args)
        page_cli.emit(render(result, args, page_cli.command_line("bench.tools.cifar_throughput", argv)), args.out)
    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
