"""Train AlexNet with a chosen kernels backend: ``python -m alexnet.train --kernels triton``.

Shaped like torchvision's classification reference: ``build_parser``, ``train_one_epoch``, ``evaluate``,
``main(args)``. The parsed args become, once, a typed ``TrainOptions`` (``TrainOptions.from_args``) that
the loop, the checkpoint and the summary read; ``train_one_epoch`` takes it, the run's machinery (a
``StepContext``: device, augmentation, scaler, warm-up, processes) and the loop's counters and history (a
``LoopState``). ``main`` sets up (a ``Setup``: data, model, optimizer, loaders), resumes, loops and
finishes, one named function each. Its parts: ``alexnet.train_config`` (the command line, its defaults and
checks, ``TrainOptions``), ``alexnet.train_epoch`` (one epoch, one evaluation), ``alexnet.train_report``
(curves and report.md); this module runs them and re-exports the names other code reads from it.

Every flag has a default resolved at start (the resolved config is printed): with a GPU the paper's
setting (256 px images, 227 px crops, batch 128); without one a small CPU run (76 px images, 67 px
crops, batch 32, 384 synthetic images, 3 epochs = 36 steps) that finishes in minutes, announced as such.
Explicit flags always win.

Recipe (paper, section 5): SGD (fused where PyTorch has it: ``alexnet.optim``), momentum 0.9, weight
decay 5e-4, lr 0.01 divided by 10 when the validation error stops improving (``ReduceLROnPlateau`` on
val top-1 error, ``--lr-patience`` epochs), optional linear warm-up. A non-finite loss stops the run cleanly with ``summary["diverged"] = True``.

Outputs in ``--out``: ``metrics.jsonl`` (one line per epoch; step lines with ``--log-every``),
``checkpoint.pt`` (written atomically after every epoch, with optimizer, scheduler, scaler and every
RNG state, so ``--resume`` continues exactly), ``summary.json`` and ``report.md``.

Distributed data parallel: ``torchrun --nproc_per_node=N -m alexnet.train ...``; ``--batch-size`` is the
global batch (split evenly over the processes, as the paper's 128 was over its GPUs) and only rank 0
writes files.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Sampler

import kernels
from alexnet import compiled, distributed, placement
from alexnet.augment import EvalTransform, TrainAugment
from alexnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from alexnet.data import DataBundle, make_loader
from alexnet.distributed import DistContext
from alexnet.model import AlexNetConfig, build_model, count_parameters
from alexnet.optim import paper_sgd
from alexnet.train_config import (CPU_DEFAULTS, EPOCHS_DEFAULT, GPU_DEFAULTS, TrainOptions, build_parser,
                                  build_run_data, check_amp, check_output_dir, data_settings, input_std,
                                  model_config, network_input_std, resolve_config)
from alexnet.train_epoch import (LoopState, StepContext, Warmup, evaluate, peak_memory, reset_peak_memory,
                                 train_one_epoch)
from alexnet.train_report import plot_curves, render_report
from infra.atomic_io import write_json_atomic, write_text_atomic
from infra.errors import UsageError, parse_and_run
from infra.machine import machine_info

# what other code imports from alexnet.train, wherever it is defined
__all__ = ["ARCH_FIELDS", "CPU_DEFAULTS", "EPOCHS_DEFAULT", "GPU_DEFAULTS", "LoopState", "MetricsLog", "Setup",
           "StepContext", "TrainOptions", "Warmup", "build_parser", "build_run_data", "capture_rng", "check_amp",
           "check_output_dir", "cli", "data_settings", "evaluate", "input_std", "main", "model_config",
           "network_input_std", "plot_curves", "render_report", "resolve_config", "restore_rng", "train_one_epoch"]

# Model fields that must match between a checkpoint and the resuming run (kernels may differ).
ARCH_FIELDS = ("num_classes", "layout", "conv_widths", "fc_width", "lrn", "lrn_size", "lrn_alpha", "lrn_beta",
               "lrn_k", "pool_kernel", "pool_stride", "activation")


# ----------------------------------------------------------------------------------------------------
# RNG state (everything that decides the next random number, so resuming continues exactly)


def capture_rng(generator: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "augment": generator.get_state(),
    }


def restore_rng(rng: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    generator.set_state(rng["augment"])


# ----------------------------------------------------------------------------------------------------
# main


@dataclass
class Setup:
    """Everything a run builds before its first step (``_setup``); the loop reads it and changes only the
    model's, optimizer's, scheduler's, scaler's and generator's state."""

    ctx: DistContext
    devices: list[torch.device]  # devices[0] holds the inputs
    cfg: AlexNetConfig
    data: DataBundle
    model: torch.nn.Module  # the bare model: its state_dict is what the checkpoint saves
    net: torch.nn.Module  # what runs: the model placed, DDP-wrapped and maybe compiled
    optimizer: torch.optim.SGD
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # augmentation randomness
    augment: TrainAugment
    eval_transform: EvalTransform
    train_sampler: Sampler | None
    val_loader: Iterable
    batch: int  # images per step on this process
    drop_last: bool
    steps_per_epoch: int

    @property
    def device(self) -> torch.device:
        return self.devices[0]

    def step_context(self, warmup: Warmup) -> StepContext:
        """What ``train_one_epoch`` needs of this setup, with the run's lr warm-up."""
        return StepContext(device=self.device, augment=self.augment, generator=self.generator, scaler=self.scaler,
                           warmup=warmup, ctx=self.ctx, devices=self.devices)


class MetricsLog:
    """Appends one JSON line per record to ``path`` (on the main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def __call__(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def main(args: argparse.Namespace) -> dict:
    """Train as configured by ``args`` (from ``build_parser``); return the summary (also in summary.json)."""
    on_gpu = torch.cuda.is_available() and (args.devices is None or "cuda" in args.devices)
    ctx = distributed.init_distributed("cuda" if on_gpu else "cpu")
    try:
        return _run(args, on_gpu, ctx)
    finally:
        distributed.cleanup_distributed(ctx)


def _run(args: argparse.Namespace, on_gpu: bool, ctx: DistContext) -> dict:
    args, notes = resolve_config(args, on_gpu)
    saved = _read_checkpoint(args.resume) if args.resume else None
    setup = _setup(args, ctx)
    state = _resume(setup, saved, args.resume, notes) if saved is not None else LoopState()
    options = TrainOptions.from_args(args)
    config = _run_config(options, setup)
    if ctx.is_main:
        options.out.mkdir(parents=True, exist_ok=True)
        _announce(notes, config)
    run_start = time.perf_counter()
    _train_loop(options, setup, state, MetricsLog(options.out / "metrics.jsonl", enabled=ctx.is_main))
    return _finish(options, setup, state, config, seconds=time.perf_counter() - run_start)


def _say(ctx: DistContext, *parts) -> None:
    if ctx.is_main:
        print(*parts)


def _read_checkpoint(resume: str) -> dict:
    try:
        return load_checkpoint(resume, map_location="cpu")
    except CheckpointError as exc:
        raise CheckpointError(f"--resume: {exc}") from exc


def _setup(args: argparse.Namespace, ctx: DistContext) -> Setup:
    """Check that the backend runs here, seed, and build data, model, placement, optimizer and loaders."""
    status = kernels.backend_status([args.kernels])[args.kernels]
    if status is not None:
        raise UsageError(f"--kernels {args.kernels} is unavailable here: {status}")
    devices = placement.parse_devices(args.devices, args.layout, local_rank=ctx.local_rank,
                                      local_world_size=ctx.local_world_size)
    check_amp(args.amp, devices)
    batch = distributed.per_rank_batch_size(args.batch_size, ctx)
    device = devices[0]
    problem = kernels.get_backend(args.kernels).device_problem(device)
    if problem is not None:
        raise UsageError(f"--kernels {args.kernels} cannot run on {device}: {problem}")

    # seeds first: weights, data order, dropout and augmentation all derive from --seed
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed * 1000 + ctx.rank + 1)

    data = build_run_data(vars(args))
    cfg = model_config(args, num_classes=len(data.classes), input_std=network_input_std(args, data.stats))
    model = build_model(cfg)

    placed = placement.place_model(model, devices, concurrent_towers=args.concurrent_towers,
                                   micro_batches=args.micro_batches)
    if args.channels_last:
        placed = placed.to(memory_format=torch.channels_last)
    net = distributed.wrap_ddp(placed, ctx, devices)
    if args.compile_model:  # Inductor options that keep CPU gradients equal to eager (alexnet.compiled)
        net = compiled.compile_model(net, devices)
    normalize = args.input_scale == "unit"
    augment = TrainAugment(data.stats, crop_size=args.crop_size, lighting=not args.no_pca_lighting,
                           normalize=normalize).to(device)
    eval_transform = EvalTransform(data.stats, crop_size=args.crop_size, ten_crop=args.ten_crop,
                                   normalize=normalize).to(device)

    optimizer = paper_sgd(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=args.lr_patience)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    train_sampler = distributed.make_sampler(data.train, ctx, shuffle=True, seed=args.seed)
    val_sampler = distributed.make_sampler(data.val, ctx, shuffle=False, seed=args.seed)
    val_loader = make_loader(data.val, batch, shuffle=False, seed=args.seed, num_workers=args.workers,
                             sampler=val_sampler, drop_last=False)
    drop_last = len(data.train) >= args.batch_size
    steps_per_epoch = len(data.train) // args.batch_size if drop_last else 1
    return Setup(ctx=ctx, devices=devices, cfg=cfg, data=data, model=model, net=net, optimizer=optimizer,
                 plateau=plateau, scaler=scaler, generator=generator, augment=augment, eval_transform=eval_transform,
                 train_sampler=train_sampler, val_loader=val_loader, batch=batch, drop_last=drop_last,
                 steps_per_epoch=steps_per_epoch)


def _resume(setup: Setup, saved: dict, where: str, notes: list[str]) -> LoopState:
    """Load a checkpoint's model, optimizer, scheduler, scaler and RNG states; return the loop's state."""
    _check_compatible(saved, setup.cfg, where)
    setup.model.load_state_dict(saved["model"])
    setup.optimizer.load_state_dict(saved["optimizer"])
    setup.plateau.load_state_dict(saved["scheduler"])
    setup.scaler.load_state_dict(saved["scaler"])
    restore_rng(saved["rng"], setup.generator)
    history = list(saved["history"])
    state = LoopState(step=saved["step"], epoch=saved["epoch"], history=history,
                      best_val_top1_err=min([h["val_top1_err"] for h in history], default=math.inf))
    notes.append(f"resuming from {where}: {state.epoch} epoch(s), {state.step} step(s) done")
    return state


def _run_config(options: TrainOptions, setup: Setup) -> dict:
    """The resolved config as printed at start and stored in summary.json."""
    return {**options.flags, "devices": [str(d) for d in setup.devices], "world_size": setup.ctx.world_size,
            "num_classes": setup.cfg.num_classes, "train_images": len(setup.data.train),
            "val_images": len(setup.data.val), "skipped_images": setup.data.skipped,
            "steps_per_epoch": setup.steps_per_epoch, "num_parameters": count_parameters(setup.model),
            "model": setup.cfg.to_dict()}


def _announce(notes: list[str], config: dict) -> None:
    for note in notes:
        print(f"note: {note}")
    print("resolved config:")
    for key, value in config.items():
        if key != "model":
            print(f"  {key:20s} {value}")
    print(f"  {'model':20s} {json.dumps(config['model'])}")


def _train_loop(options: TrainOptions, setup: Setup, state: LoopState, log: MetricsLog) -> None:
    """Train and evaluate from epoch ``state.epoch`` to ``options.epochs`` (or ``options.max_steps``), logging
    every epoch and checkpointing after it; stop at the first non-finite loss (``state.diverged_at``)."""
    ctx, devices, optimizer = setup.ctx, setup.devices, setup.optimizer
    run = setup.step_context(Warmup(steps=round(options.warmup_epochs * setup.steps_per_epoch), peak_lr=options.lr))
    for epoch in range(state.epoch, options.epochs):
        if options.max_steps is not None and state.step >= options.max_steps:
            break
        if setup.train_sampler is not None and hasattr(setup.train_sampler, "set_epoch"):
            setup.train_sampler.set_epoch(epoch)
        train_loader = make_loader(setup.data.train, setup.batch, shuffle=setup.train_sampler is None,
                                   seed=options.seed * 1000 + epoch, num_workers=options.workers,
                                   sampler=setup.train_sampler, drop_last=setup.drop_last)
        reset_peak_memory(devices)
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(setup.net, optimizer, train_loader, epoch, run=run, options=options, state=state,
                                log=log)
        if state.diverged_at is not None:
            log({"type": "diverged", **state.diverged_at})
            _say(ctx, f"diverged: non-finite loss at epoch {state.diverged_at['epoch']} step "
                 f"{state.diverged_at['step']}; stopping (last good checkpoint kept)")
            break
        val = evaluate(setup.net, setup.val_loader, setup.device, transform=setup.eval_transform, amp=options.amp,
                       channels_last=options.channels_last, ctx=ctx)
        if epoch + 1 > options.warmup_epochs:
            setup.plateau.step(val["val_top1_err"])
        record = {"epoch": epoch + 1, **train, **val, "lr": lr, "seconds": time.perf_counter() - epoch_start,
                  "peak_mem_bytes": peak_memory(devices)}
        state.history.append(record)
        state.epoch = epoch + 1
        state.best_val_top1_err = min(state.best_val_top1_err, val["val_top1_err"])
        log({"type": "epoch", **record})
        _say(ctx, f"epoch {epoch + 1}: train loss {train['train_loss']:.4f} top-1 err {train['train_top1_err']:.3f} | "
             f"val loss {val['val_loss']:.4f} top-1 err {val['val_top1_err']:.3f} top-5 err {val['val_top5_err']:.3f} | "
             f"{train['images_per_s']:.0f} img/s, grad-norm {train['grad_norm']:.3g}, lr {lr:.3g}, "
             f"{record['seconds']:.1f} s")
        if ctx.is_main:
            _save(options, setup, state, options.out / "checkpoint.pt")


def _save(options: TrainOptions, setup: Setup, state: LoopState, path: Path) -> None:
    save_checkpoint({
        "model": setup.model.state_dict(), "optimizer": setup.optimizer.state_dict(),
        "scheduler": setup.plateau.state_dict(), "scaler": setup.scaler.state_dict(),
        "rng": capture_rng(setup.generator), "epoch": state.epoch, "step": state.step, "history": state.history,
        "model_config": setup.cfg.to_dict(),
        "args": {k: v for k, v in options.flags.items() if isinstance(v, (int, float, str, bool, type(None)))},
    }, path)


def _finish(options: TrainOptions, setup: Setup, state: LoopState, config: dict, seconds: float) -> dict:
    """The run's summary; the main process writes curves.png, summary.json and report.md."""
    out = options.out
    best = state.best_val_top1_err
    summary = {
        "config": config, "history": state.history, "diverged": state.diverged_at is not None,
        "diverged_at": state.diverged_at, "out_dir": str(out), "best_val_top1_err": best if math.isfinite(best) else None,
        "seconds": seconds, "steps": state.step, "machine": machine_info(setup.devices),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, "-m", "alexnet.train", *sys.argv[1:]]),
    }
    if setup.ctx.is_main:
        curves = plot_curves(state.history, out / "curves.png")
        write_json_atomic(out / "summary.json", summary)  # its presence marks the run as finished
        write_text_atomic(out / "report.md", render_report(summary, curves.name if curves else None))
        print(f"wrote {out / 'metrics.jsonl'}, {out / 'checkpoint.pt'}, {out / 'summary.json'}, {out / 'report.md'}")
    return summary


def _check_compatible(resume_state: dict, cfg: AlexNetConfig, where: str) -> None:
    saved = resume_state.get("model_config", {})
    now = cfg.to_dict()
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in ARCH_FIELDS if saved.get(k) != now[k]]
    if diff:
        raise UsageError(f"--resume {where} was trained with a different model: " + "; ".join(diff)
                         + "; resume with the flags it was started with, or start a new run")



def cli(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
