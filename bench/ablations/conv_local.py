"""The conv-local LRN study: cuda-convnet's 13pct and 11pct nets, its recipe, per seed; resumable; one JSON per run.

    python -m bench.ablations.conv_local --plan study --state-dir DIR      # the whole study, resumable
    python -m bench.ablations.conv_local --arms 11pct --seeds 0 --schedule short --state-dir DIR
    python -m bench.ablations.conv_local --report-only                    # reports/cifar10-cpu/conv-local.md
    python -m bench.ablations.conv_local --report-only --update-readme README.md   # and the README's rows

Schedules (epochs per phase: train on batches 1-4, fold in batch 5, lr/10, lr/100):

* ``full``: 350, 150, 10, 10 (520 epochs; the layer-params-conv-local-11pct.cfg methodology comment: "after
  about 350 epochs" on 1-4, "about 150 more" on 1-5, then 10 and 10). Validation/test error every 5 epochs
  and at each phase end.
* ``short`` (fixed before any run): one tenth of each phase, each drop kept at one epoch: 35, 15, 1, 1
  (52 epochs). Validation/test error after every epoch.

``--plan study`` runs, in this order, ``short`` seeds 0, 1 and 2 of both nets (13pct first in each pair), then
``full`` seed 0 of both nets, the two advancing alternately 10 epochs at a time: three paired seeds first,
each a run that ends within hours, then the one full-schedule pair the paper's figures need (about 12
CPU-hours a net here), whose per-epoch state lives on the machine that trains it; the full pair is kept
level, so a study stopped at any point (budget, a killed process, a new machine) still has pairs.

Each finished run writes ``<records>/<schedule>/<arm>/seed<k>.json`` (atomically); a run whose record exists
with the same settings is skipped, with other settings refused (one line, exit 2). The training state is
``<state-dir>/<schedule>-<arm>-seed<k>.pt`` after every epoch; a killed command resumes from there. After
each run (and with ``--report-only``) the report is rendered from the records alone
(``bench.ablations.conv_local_report``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from alexnet.conv_local import ARMS
from bench.ablations.conv_local_report import README_SECTION, SCHEDULES, STUDY_PLAN, readme_rows, render_report
from bench.ablations.conv_local_train import ConvLocalSpec, CifarImages, load_images, train_run
from infra.atomic_io import write_json_atomic
from infra.errors import UsageError, check_output_folder, run_cli
from infra.machine import machine_info
from infra.report_kit import update_section

PROG = "python -m bench.ablations.conv_local"
RECORD_FORMAT = "alexnet-kernels/conv-local-record-v1"
DEFAULT_RECORDS = Path("reports/cifar10-cpu/runs/conv-local")
DEFAULT_REPORT = Path("reports/cifar10-cpu/conv-local.md")
FULL_CHUNK = 10  # --plan study advances the two full runs alternately, this many epochs at a time


def make_spec(schedule: str, arm: str, seed: int, **overrides) -> ConvLocalSpec:
    if schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    epochs, eval_every = SCHEDULES[schedule]
    return ConvLocalSpec(arm=arm, seed=seed, schedule=schedule, epochs=epochs, eval_every=eval_every, **overrides)


def record_path(records: Path, spec: ConvLocalSpec) -> Path:
    return records / spec.schedule / spec.arm / f"seed{spec.seed}.json"


def existing_record(path: Path, spec: ConvLocalSpec) -> dict | None:
    """The record at ``path`` if it was made with ``spec``; None if absent; a ``UsageError`` if made otherwise."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"record {path} cannot be read ({exc}); move it away to rerun that run") from exc
    if rec.get("format") != RECORD_FORMAT or rec.get("spec") != spec.to_dict():
        raise UsageError(f"record {path} was made with other settings ({rec.get('spec')}, not {spec.to_dict()}); "
                         "move it away or run with its settings")
    return rec


def make_record(spec: ConvLocalSpec, data: CifarImages, run: dict) -> dict:
    rows = run["epochs"]
    last = rows[-1]
    tested = [r for r in rows if "test_err" in r]
    return {
        "format": RECORD_FORMAT, "spec": spec.to_dict(), "data": data.describe(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(), "threads": torch.get_num_threads(),
        "epochs_run": len(rows), "diverged": bool(last.get("diverged")),
        "test_err": tested[-1]["test_err"] if tested else None,
        "test_err_multiview": last.get("test_err_multiview"),
        "val_err": tested[-1]["val_err"] if tested else None,
        "final_train_err": last["train_err"],
        "train_seconds": run["train_seconds"], "wall_seconds": run["wall_seconds"],
        "images_per_s": sum(r["images"] for r in rows) / run["train_seconds"] if run["train_seconds"] else None,
        "lrn_probe": run["lrn_probe"], "epochs": rows,
    }


def run_one(spec: ConvLocalSpec, data: CifarImages, records: Path, state_dir: Path, quiet: bool = False,
            stop_after: int | None = None) -> dict | None:
    """Train ``spec`` to its end (or to epoch ``stop_after``: then None, the state kept) and write its record."""
    path = record_path(records, spec)
    done = existing_record(path, spec)
    if done is not None:
        if not quiet:
            print(f"{spec.schedule} {spec.arm} seed {spec.seed}: recorded already ({path})", flush=True)
        return done
    state = state_dir / f"{spec.schedule}-{spec.arm}-seed{spec.seed}.pt"

    def log(row):
        if not quiet:
            tail = "".join(f" {k}={row[k]:.4f}" for k in ("val_err", "test_err", "test_err_multiview") if k in row)
            print(f"{spec.schedule} {spec.arm} seed {spec.seed} epoch {row['epoch']}/{spec.total_epochs} {row['phase']}: "
                  f"train_err={row['train_err']:.4f}{tail} {row['images_per_s']:.0f} img/s", flush=True)

    run = train_run(spec, data, state_path=state, log=log, stop_after=stop_after)
    if len(run["epochs"]) < spec.total_epochs and not run["epochs"][-1].get("diverged"):
        return None
    rec = make_record(spec, data, run)
    write_json_atomic(path, rec)
    if not quiet:
        print(f"wrote {path}", flush=True)
    return rec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--plan", choices=("study",), help="run the planned study (see the module docstring)")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated nets: 13pct, 11pct")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--schedule", default="short", choices=tuple(SCHEDULES), help="epoch schedule (module docstring)")
    p.add_argument("--state-dir", type=Path, help="folder for the per-epoch training state (needed to train)")
    p.add_argument("--records", type=Path, default=DEFAULT_RECORDS, help="folder of the run records")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="report file rendered from the records")
    p.add_argument("--report-only", action="store_true", help="render the report from the records; train nothing")
    p.add_argument("--update-readme", type=Path, default=None, metavar="README",
                   help="with --report-only: also fill README's <!-- conv-local:begin/end --> rows")
    p.add_argument("--data", default="cifar10", help="'cifar10', an ImageFolder directory or a .tar.gz archive")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    return p


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} wants comma-separated integers, got {text!r}") from None


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)

    if args.update_readme is not None and not args.report_only:
        raise UsageError("--update-readme goes with --report-only")
    if args.report_only:
        print(f"wrote {render_report(args.records, args.report)}")
        if args.update_readme is not None:
            link = os.path.relpath(Path(args.report).resolve(), args.update_readme.resolve().parent)
            update_section(args.update_readme, README_SECTION, readme_rows(args.records, link))
            print(f"updated {args.update_readme}")
        return
    if args.state_dir is None:
        raise UsageError("--state-dir is needed to train (or pass --report-only)")
    check_output_folder(args.state_dir, "--state-dir")
    check_output_folder(args.records, "--records")
    if args.plan == "study":
        plan = STUDY_PLAN
    else:
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        bad = [a for a in arms if a not in ARMS]
        if bad or not arms:
            raise UsageError(f"--arms: unknown net(s) {bad or arms}; choose from {', '.join(ARMS)}")
        plan = [(args.schedule, arm, seed) for seed in _ints(args.seeds, "--seeds") for arm in arms]
    specs = [make_spec(s, a, k, data=args.data) for s, a, k in plan]
    for spec in specs:  # refuse a mismatching record before hours of training
        existing_record(record_path(args.records, spec), spec)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    data = load_images(args.data)
    full = [spec for spec in specs if args.plan == "study" and spec.schedule == "full"]
    for spec in specs:
        if spec not in full:
            run_one(spec, data, args.records, args.state_dir)
            render_report(args.records, args.report)
        elif spec is full[0]:  # the full runs, where the plan first names one, advance together
            run_level(full, data, args)


def run_level(specs: list[ConvLocalSpec], data: CifarImages, args: argparse.Namespace) -> None:
    """Advance ``specs`` alternately, ``FULL_CHUNK`` epochs at a time, so that a study stopped at any point
    has them at (nearly) the same epoch."""
    for upto in range(FULL_CHUNK, max(s.total_epochs for s in specs) + FULL_CHUNK, FULL_CHUNK):
        for spec in specs:
            if run_one(spec, data, args.records, args.state_dir, stop_after=min(upto, spec.total_epochs)) is not None:
                render_report(args.records, args.report)


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
