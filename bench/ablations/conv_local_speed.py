"""Training-step speed of the conv-local nets on this CPU, and what bounds it (torch.profiler top ops).

    python -m bench.ablations.conv_local_speed [--rounds 5 --steps 10] [--out reports/cifar10-cpu/runs/conv-local/speed.json]

A step is the study's: a batch of 128 real 24x24 crops (``crops`` of the uint8 cache), forward, backward,
``ConvnetSGD`` step. Variants (net x precision x backend, and the 11pct net without its cmrnorm layers, which
prices the normalisation alone) are timed in interleaved rounds (every variant
once per round, after 3 warm-up steps each), and each variant's images/s is the median over rounds, so a
machine shared with other work slows every variant alike and their ratios stay comparable. Beside images/s (wall clock) it
records images per CPU-second of the process (``time.process_time``, all its threads): on a shared machine
the wall-clock rate falls with the CPU share the process gets, the CPU-time rate much less. Then one
profiled round per net gives the top ops by self CPU time. The JSON says the load average before and
after, the machine and the versions; the report (``bench.ablations.conv_local_report``) shows it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from alexnet.train_step import sgd_step
from bench.ablations.conv_local_train import ConvLocalSpec, build, crops, load_images
from infra.atomic_io import write_json_atomic
from infra.errors import run_cli
from infra.machine import machine_info

PROG = "python -m bench.ablations.conv_local_speed"
DEFAULT_OUT = Path("reports/cifar10-cpu/runs/conv-local/speed.json")
# (net, precision, backend, cmrnorm: None = as the cfg has it, False = the 11pct net without its cmrnorm layers)
VARIANTS = [("13pct", "off", "cpp", None), ("11pct", "off", "cpp", None), ("11pct", "off", "cpp", False),
            ("11pct", "off", "eager", None), ("11pct", "bf16", "cpp", None)]


def _stepper(spec: ConvLocalSpec, data, batch: int = 128, cmrnorm: bool | None = None):
    model, opt = build(spec, cmrnorm)
    gen = torch.Generator().manual_seed(0)
    n = len(data.train_y)

    def step():
        idx = torch.randint(0, n, (batch,), generator=gen)
        x = crops(data.train[idx], data.mean_crop, torch.randint(0, 9, (batch,), generator=gen),
                  torch.randint(0, 9, (batch,), generator=gen), torch.rand(batch, generator=gen) < 0.5)
        sgd_step(model, opt, x, data.train_y[idx], amp=spec.amp)
    return step


def measure(data, variants, rounds: int, steps: int, batch: int = 128) -> list[dict]:
    steppers = {}
    for arm, amp, backend, cmrnorm in variants:
        step = _stepper(ConvLocalSpec(arm=arm, amp=amp, backend=backend), data, batch, cmrnorm)
        for _ in range(3):
            step()
        steppers[(arm, amp, backend, cmrnorm)] = step
    times = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                steppers[v]()
            times[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    return [{"arm": v[0], "amp": v[1], "backend": v[2], "cmrnorm": v[3],
             "images_per_s": steps * batch / statistics.median(times[v]),
             "images_per_cpu_s": steps * batch / statistics.median(cpu[v]),
             "round_seconds": times[v], "round_cpu_seconds": cpu[v]} for v in variants]


def top_ops(data, arm: str, amp: str, backend: str, steps: int, limit: int = 8) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    step = _stepper(ConvLocalSpec(arm=arm, amp=amp, backend=backend), data)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in events[:limit]]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median taken)")
    p.add_argument("--steps", type=int, default=10, help="training steps per variant per round")
    p.add_argument("--data", default="cifar10", help="'cifar10' or another alexnet.data source")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON written here")
    args = p.parse_args(argv)
    data = load_images(args.data)
    load_before = os.getloadavg()
    results = measure(data, VARIANTS, args.rounds, args.steps)
    profiles = {arm: top_ops(data, arm, "off", "cpp", args.steps) for arm in ("13pct", "11pct")}
    out = {"command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info(),
           "quiet_flag_absent": not os.path.exists("/tmp/QUIET"), "loadavg_before": load_before,
           "loadavg_after": os.getloadavg(), "batch": 128, "rounds": args.rounds, "steps": args.steps,
           "results": results, "top_ops": profiles}
    write_json_atomic(args.out, out)
    for r in results:
        net = r["arm"] + (" without cmrnorm" if r["cmrnorm"] is False else "")
        print(f"{net:22s} amp={r['amp']:4s} backend={r['backend']:5s} {r['images_per_s']:7.0f} img/s "
              f"{r['images_per_cpu_s']:7.0f} img per CPU-s")
    print(f"load average before {load_before}, after {out['loadavg_after']}; wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
