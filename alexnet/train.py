"""Train AlexNet with a chosen kernels backend: ``python -m alexnet.train --kernels triton``.

Shaped like torchvision's classification reference: ``build_parser``, ``train_one_epoch``, ``evaluate``,
``main(args)``. The parsed args become, once, a typed ``TrainOptions`` (``TrainOptions.from_args``) that
the loop, the checkpoint and the summary read; ``train_one_epoch`` takes it, the run's machinery (a
``StepContext``: device, augmentation, scaler, warm-up, processes) and the loop's counters and history (a
``LoopState``). ``main`` sets up (a ``Setup``: data, model, optimizer, loaders), resumes, loops and
finishes, one named function each.

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
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from tqdm import tqdm

import kernels
from alexnet import compiled, distributed, placement
from alexnet.augment import EvalTransform, TrainAugment, predict_averaged
from alexnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from alexnet.data import DataBundle, build_data, make_loader
from alexnet.distributed import DistContext
from alexnet.metrics import RunningSums, topk_wrong
from alexnet.model import MIN_INPUT_SIZE, PRESETS, AlexNetConfig, build_model, count_parameters
from alexnet.optim import paper_sgd
from alexnet.train_step import autocast, logits_and_loss
from infra import report_kit
from infra.atomic_io import write_json_atomic, write_text_atomic
from infra.errors import UsageError, check_output_folder, parse_and_run
from infra.machine import machine_info

# Defaults that depend on the machine (None in the parser means "resolve here").
GPU_DEFAULTS = dict(image_size=256, crop_size=227, batch_size=128, workers=min(8, os.cpu_count() or 1))
CPU_DEFAULTS = dict(image_size=76, crop_size=67, batch_size=32, workers=0, synthetic_train=384, synthetic_val=128)
EPOCHS_DEFAULT = {"synthetic": {"gpu": 10, "cpu": 3}, "real": {"gpu": 90, "cpu": 3}}
# Model fields that must match between a checkpoint and the resuming run (kernels may differ).
ARCH_FIELDS = ("num_classes", "layout", "conv_widths", "fc_width", "lrn", "lrn_size", "lrn_alpha", "lrn_beta",
               "lrn_k", "pool_kernel", "pool_stride", "activation")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m alexnet.train",
        description="Train AlexNet (Krizhevsky et al. 2012) with a chosen kernels backend.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("kernels and placement")
    g.add_argument("--kernels", default="eager", choices=kernels.BACKENDS,
                   help="backend of the ReLU+LRN+max-pool and max-pool layers")
    g.add_argument("--layout", default="two-gpu", choices=("one-gpu", "two-gpu"),
                   help="two-gpu: the paper's two towers (cross-tower links at conv3 and FC); one-gpu: one tower")
    g.add_argument("--width", default="full", choices=("full", "half"),
                   help="conv widths: full (96,256,384,384,256) or half, the paper's one-GPU control (48,128,192,192,256)")
    g.add_argument("--devices", default=None,
                   help="comma-separated devices, e.g. cuda:0,cuda:1 (one per tower); default: first GPU, else cpu")
    g.add_argument("--concurrent-towers", action="store_true",
                   help="run the two towers on their own CUDA streams (on one GPU or two) so they overlap")
    g.add_argument("--micro-batches", type=int, default=1,
                   help="split each batch into K micro-batches to pipeline the towers across devices")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format for model and inputs")
    g.add_argument("--compile-model", action="store_true",
                   help="torch.compile the whole model (Inductor; on a CPU with the workaround in alexnet/compiled.py)")
    g.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"),
                   help="autocast dtype (fp16 uses a GradScaler)")

    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic",
                   help="'synthetic' (learnable generated images), 'cifar10' (../shared/data/cifar10-jpg.tar.gz "
                        "or $ALEXNET_CIFAR10), or a path to an ImageFolder directory or .tar.gz")
    g.add_argument("--image-size", type=int, default=None,
                   help="stored image side S (paper 256); default 256 with a GPU, 76 on CPU")
    g.add_argument("--crop-size", type=int, default=None,
                   help=f"random/centre crop side (paper 227, at least {MIN_INPUT_SIZE}); default 227 with a GPU, 67 on CPU")
    g.add_argument("--limit-per-class", type=int, default=None, help="use at most this many training images per class")
    g.add_argument("--synthetic-classes", type=int, default=10, help="number of classes of the synthetic data")
    g.add_argument("--synthetic-train", type=int, default=None,
                   help="synthetic training images (default: the data module's, 384 on CPU)")
    g.add_argument("--synthetic-val", type=int, default=None,
                   help="synthetic validation images (default: the data module's, 128 on CPU)")
    g.add_argument("--workers", type=int, default=None, help="data loader worker processes (default 8 with a GPU, 0 on CPU)")
    g.add_argument("--on-corrupt", default="error", choices=("error", "skip"),
                   help="what to do with an unreadable image: stop with its name, or skip and count it")
    g.add_argument("--no-pca-lighting", action="store_true", help="ablation: no PCA lighting augmentation")
    g.add_argument("--input-scale", choices=["unit", "paper"], default="unit",
                   help="unit: mean-subtracted pixels divided by the training set's per-channel std (default; "
                        "trains with Kaiming init at lr 0.01); paper: mean-subtracted raw 0..255 pixels as in the "
                        "paper (Kaiming's conv1 weights are then divided by the pixel std)")
    g.add_argument("--ten-crop", action="store_true", help="evaluate on 10 crops (4 corners + centre, and flips)")

    g = p.add_argument_group("model ablations")
    g.add_argument("--no-lrn", action="store_true", help="ablation: no local response normalization")
    g.add_argument("--pool", default="3/2", choices=("3/2", "2/2"),
                   help="max-pool kernel/stride: 3/2 overlapping (paper) or 2/2 (ablation)")
    g.add_argument("--pool-kernel", type=int, default=None, help="max-pool kernel size (overrides --pool)")
    g.add_argument("--pool-stride", type=int, default=None, help="max-pool stride (overrides --pool)")
    g.add_argument("--activation", default="relu", choices=("relu", "tanh"), help="nonlinearity (paper: relu)")
    g.add_argument("--fc-width", type=int, default=4096,
                   help="total neurons of fc6 and fc7 (paper 4096); smaller only for quick experiments and tests")
    g.add_argument("--dropout", type=float, default=0.5, help="dropout probability after fc6 and fc7")
    g.add_argument("--init", default="kaiming", choices=("kaiming", "paper", "paper-bias0"),
                   help="weight init; 'paper' (N(0,0.01), biases 1) stays at chance at this scale")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: 90 for real data and 10 for synthetic with a GPU; 3 on CPU)")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps in total (the partial epoch is evaluated and saved)")
    g.add_argument("--batch-size", type=int, default=None, help="images per optimizer step, over all processes (default 128 with a GPU, 32 on CPU)")
    g.add_argument("--lr", type=float, default=0.01, help="learning rate (paper 0.01)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (L2, applied by SGD)")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear learning-rate warm-up length in epochs")
    g.add_argument("--lr-patience", type=int, default=3,
                   help="epochs without val top-1 improvement before the lr is divided by 10")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the total gradient norm to this value")

    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, data order, augmentation and dropout")
    g.add_argument("--out", default=None, help="output directory (default runs/<timestamp>)")
    g.add_argument("--resume", default=None, help="checkpoint file or run directory to continue from")
    g.add_argument("--log-every", type=int, default=0, help="also log a step line every N steps (0: epoch lines only)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines are still printed)")
    return p


# ----------------------------------------------------------------------------------------------------
# configuration


def resolve_config(args: argparse.Namespace, on_gpu: bool) -> tuple[argparse.Namespace, list[str]]:
    """Fill the machine-dependent defaults; return the resolved args and notes on what was chosen."""
    args = argparse.Namespace(**vars(args))
    notes = []
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    filled = []
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
            filled.append(f"--{name.replace('_', '-')} {value}")
    kind = "synthetic" if args.data in (None, "synthetic") else "real"
    if args.epochs is None:
        args.epochs = EPOCHS_DEFAULT[kind]["gpu" if on_gpu else "cpu"]
        filled.append(f"--epochs {args.epochs}")
    if not on_gpu and filled:
        notes.append("no CUDA GPU found: CPU defaults " + " ".join(filled) + " (explicit flags override)")
    if args.pool_kernel is None:
        args.pool_kernel = int(args.pool.split("/")[0])
    if args.pool_stride is None:
        args.pool_stride = int(args.pool.split("/")[1])
    if args.out is None:
        args.out = str(Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    _check_args(args)
    return args, notes


def _check_args(args: argparse.Namespace) -> None:
    def bad(msg: str) -> None:
        raise UsageError(msg)

    if args.crop_size < MIN_INPUT_SIZE:
        bad(f"--crop-size {args.crop_size} is below {MIN_INPUT_SIZE}, the smallest input AlexNet's pooling chain accepts")
    if args.crop_size > args.image_size:
        bad(f"--crop-size {args.crop_size} is larger than --image-size {args.image_size}")
    for name in ("batch_size", "epochs", "micro_batches"):
        if getattr(args, name) < 1:
            bad(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_steps is not None and args.max_steps < 1:
        bad(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.lr <= 0 or args.warmup_epochs < 0 or args.lr_patience < 0:
        bad("--lr must be positive, --warmup-epochs and --lr-patience non-negative")
    check_output_dir(Path(args.out), resuming=args.resume is not None)


def check_output_dir(out: Path, resuming: bool) -> None:
    """Refuse, before anything is written, an --out that is a file, cannot be created or written, or
    already holds a run that this one would overwrite (continue it with --resume instead)."""
    check_output_folder(out)
    if not resuming and out.is_dir() and any((out / f).exists() for f in ("checkpoint.pt", "summary.json")):
        raise UsageError(f"--out {out} already holds a run (checkpoint.pt or summary.json); continue it with "
                         f"--resume {out}, or choose another --out")


def check_amp(amp: str, devices) -> None:
    """fp16 autocast needs its GradScaler on a CUDA device; on a CPU use bf16 (or off)."""
    if amp == "fp16" and any(d.type != "cuda" for d in devices):
        raise UsageError(f"--amp fp16 needs CUDA devices (fp16 autocast with a GradScaler), got "
                         f"{', '.join(map(str, devices))}; use --amp bf16 or --amp off on a CPU")


def input_std(stats) -> float:
    """Typical std of a network input value: pixels on the 0..255 scale, from the training set's RGB
    covariance eigenvalues (computed with pixels scaled to 0..1)."""
    return float(255.0 * torch.as_tensor(stats.eigvals, dtype=torch.float64).clamp_min(0).mean().sqrt())


def network_input_std(args: argparse.Namespace, stats) -> float:
    """The std the network input has: 1 when the augmentation normalises it, the pixel std otherwise."""
    return 1.0 if args.input_scale == "unit" else input_std(stats)


def model_config(args: argparse.Namespace, num_classes: int, input_std: float = 1.0) -> AlexNetConfig:
    cfg = AlexNetConfig(input_std=input_std,
        num_classes=num_classes, layout=args.layout, lrn=not args.no_lrn, pool_kernel=args.pool_kernel,
        pool_stride=args.pool_stride, activation=args.activation, dropout=args.dropout, init=args.init,
        kernels=args.kernels, fc_width=args.fc_width,
    )
    if args.width == "half":
        cfg = replace(cfg, conv_widths=PRESETS["one-gpu-half"]["conv_widths"])
    return cfg.validate()


def data_settings(config: Mapping[str, Any]) -> dict:
    """``build_data``'s keyword arguments from a resolved config: the parsed args of this run
    (``vars(args)``) or the ``config`` of a finished run's summary.json; unset synthetic sizes keep the
    data module's defaults."""
    settings = dict(image_size=config["image_size"], on_corrupt=config["on_corrupt"],
                    limit_per_class=config["limit_per_class"], seed=config["seed"],
                    synthetic_classes=config["synthetic_classes"])
    for key in ("synthetic_train", "synthetic_val"):
        if config.get(key) is not None:
            settings[key] = config[key]
    return settings


def build_run_data(config: Mapping[str, Any]) -> DataBundle:
    """The training and validation data a run with this resolved config uses."""
    return build_data(config["data"], **data_settings(config))


@dataclass(frozen=True)
class TrainOptions:
    """The run options the training loop reads, typed; built once from the resolved args (``from_args``)."""

    # the step: autocast dtype ('off', 'bf16', 'fp16'), channels_last inputs, gradient-norm clip (None: none)
    amp: str
    channels_last: bool
    grad_clip: float | None
    # the schedule: epochs of the run, a cap on optimizer steps (None: none), peak lr and its warm-up in epochs
    epochs: int
    max_steps: int | None
    lr: float
    warmup_epochs: float
    # data order: the seed of each epoch's shuffle, and the loader's worker processes
    seed: int
    workers: int
    # output: the run folder, a step line every ``log_every`` steps (0: none), a progress bar or not
    out: Path
    log_every: int
    progress: bool
    # every resolved flag in the parser's order (read-only): the checkpoint's "args", summary.json's config
    flags: Mapping[str, Any]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        """The options of a run whose args ``resolve_config`` has filled."""
        return cls(amp=args.amp, channels_last=args.channels_last, grad_clip=args.grad_clip, epochs=args.epochs,
                   max_steps=args.max_steps, lr=args.lr, warmup_epochs=args.warmup_epochs, seed=args.seed,
                   workers=args.workers, out=Path(args.out), log_every=args.log_every, progress=not args.no_progress,
                   flags=MappingProxyType(dict(vars(args))))


# ----------------------------------------------------------------------------------------------------
# one epoch of training, one evaluation


@dataclass
class Warmup:
    """Linear learning-rate warm-up from ``peak_lr / steps`` to ``peak_lr`` over the first ``steps`` steps."""

    steps: int = 0
    peak_lr: float = 0.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set the lr of optimizer step ``step`` (0-based, counted over the run)."""
        if step < self.steps:
            for group in optimizer.param_groups:
                group["lr"] = self.peak_lr * (step + 1) / self.steps
        elif step == self.steps and self.steps > 0:
            for group in optimizer.param_groups:
                group["lr"] = self.peak_lr


@dataclass
class LoopState:
    """What the training loop carries across steps and epochs; ``epoch``, ``step`` and ``history`` are
    saved in the checkpoint, ``best_val_top1_err`` is derived from the history on resume."""

    step: int = 0  # optimizer steps taken over the run
    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    best_val_top1_err: float = math.inf
    diverged_at: dict | None = None  # {"epoch", "step", "loss"} of the first non-finite loss


@dataclass
class StepContext:
    """The run's machinery a training step uses: where the inputs go, how they are augmented, the fp16
    loss scaler, the lr warm-up and the processes the metrics are summed over."""

    device: torch.device  # the inputs' device
    augment: TrainAugment
    generator: torch.Generator  # augmentation randomness
    scaler: torch.amp.GradScaler
    warmup: Warmup = field(default_factory=Warmup)
    ctx: DistContext = field(default_factory=DistContext)  # default: one process
    devices: Sequence[torch.device] = ()  # synchronised before the epoch's time is taken (default: ``device``)


def train_one_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Iterable, epoch: int, *,
                    run: StepContext, options: TrainOptions, state: LoopState,
                    log: Callable[[dict], None] | None = None) -> dict:
    """Train for one pass over ``loader`` (epoch ``epoch``, 0-based, of ``options.epochs``); return the
    epoch's metrics.

    Advances ``state.step`` per optimizer step and stops early once it reaches ``options.max_steps``. A
    non-finite loss stops the epoch before its update and is recorded in ``state.diverged_at``. Every
    ``options.log_every`` steps a step line goes to ``log`` (and, on the main process, below the progress
    bar). ``run.devices`` (default: ``run.device``) are synchronised before the epoch's time is taken;
    ``run.ctx`` sums the metrics over the processes.
    """
    device, ctx, max_steps, log_every = run.device, run.ctx, options.max_steps, options.log_every
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    sums = RunningSums()
    steps, images = 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{options.epochs}", disable=not ctx.is_main or not options.progress,
               unit="step", dynamic_ncols=True, leave=False)
    for raw, target in bar:
        if max_steps is not None and state.step >= max_steps:
            break
        run.warmup.apply(optimizer, state.step)
        raw, target = raw.to(device, non_blocking=True), target.to(device, non_blocking=True)
        x = _memory_format(run.augment(raw, run.generator), options.channels_last)  # N x 3 x crop x crop float32
        logits, loss = logits_and_loss(model, x, target, amp=options.amp, device_type=device.type)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            state.diverged_at = {"epoch": epoch + 1, "step": state.step + 1, "loss": str(loss_value)}
            break
        grad_norm = _update(loss, params, optimizer, run.scaler, options.grad_clip)
        n = target.shape[0]
        wrong1, wrong5 = topk_wrong(logits.detach(), target)
        sums.add(loss=loss.detach() * n, wrong1=wrong1, wrong5=wrong5, count=n, grad_norm=grad_norm.detach())
        steps += 1
        images += n
        state.step += 1
        rate = images / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{rate:.0f}", refresh=False)
        if log_every and state.step % log_every == 0:
            lr = optimizer.param_groups[0]["lr"]
            if log is not None:
                log({"type": "step", "epoch": epoch + 1, "step": state.step, "loss": loss_value, "lr": lr,
                     "grad_norm": float(grad_norm), "images_per_s": rate})
            if ctx.is_main:
                bar.write(f"  step {state.step}: loss {loss_value:.4f} grad-norm {float(grad_norm):.3g} "
                          f"lr {lr:.3g} {rate:.0f} img/s")
    bar.close()
    _synchronize(run.devices or (device,))
    seconds = time.perf_counter() - start
    totals = distributed.reduce_metrics({**sums.totals(), "steps": float(steps), "seconds": seconds}, ctx)
    count = max(totals.get("count", 0.0), 1.0)
    return {
        "train_loss": totals.get("loss", float("nan")) / count,
        "train_top1_err": totals.get("wrong1", float("nan")) / count,
        "train_top5_err": totals.get("wrong5", float("nan")) / count,
        "grad_norm": totals.get("grad_norm", float("nan")) / max(totals["steps"], 1.0),
        "images_per_s": totals.get("count", 0.0) / max(totals["seconds"] / ctx.world_size, 1e-9),
        "steps": int(totals["steps"] / ctx.world_size),
    }


def _update(loss: torch.Tensor, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, grad_clip: float | None) -> torch.Tensor:
    """Backward through the (fp16-scaled) loss and one optimizer step, the gradients clipped to ``grad_clip``
    in total norm when set; the total gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    if grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    scaler.step(optimizer)
    scaler.update()
    return grad_norm


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, device: torch.device, *, transform: EvalTransform,
             amp: str = "off", channels_last: bool = False, ctx: DistContext | None = None) -> dict:
    """Validation loss and top-1/top-5 error (centre crop, or 10-crop averaged softmax, as ``transform``
    makes the views), summed over the processes of ``ctx``."""
    ctx = ctx or DistContext()
    model.eval()
    sums = RunningSums()
    for raw, target in loader:
        raw, target = raw.to(device, non_blocking=True), target.to(device, non_blocking=True)
        views = transform(raw)  # V x N x 3 x crop x crop
        with autocast(device.type, amp):
            if views.shape[0] == 1:
                scores = model(_memory_format(views[0], channels_last)).float()
                loss = F.cross_entropy(scores, target, reduction="sum")
            else:
                probs = predict_averaged(model, views).float()
                scores = probs
                loss = F.nll_loss(probs.clamp_min(1e-12).log(), target, reduction="sum")
        wrong1, wrong5 = topk_wrong(scores, target)
        sums.add(loss=loss, wrong1=wrong1, wrong5=wrong5, count=target.shape[0])
    totals = distributed.reduce_metrics(sums.totals(), ctx)
    count = max(totals.get("count", 0.0), 1.0)
    return {"val_loss": totals.get("loss", float("nan")) / count,
            "val_top1_err": totals.get("wrong1", float("nan")) / count,
            "val_top5_err": totals.get("wrong5", float("nan")) / count}


def _memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _synchronize(devices) -> None:
    for d in {d for d in devices if d.type == "cuda"}:
        torch.cuda.synchronize(d)


def _peak_memory(devices) -> dict | None:
    """Peak bytes per device since the last reset: a GPU's caching-allocator peak; on a CPU the process's
    peak resident set (``ru_maxrss``: weights, data and the allocator's and libraries' memory together,
    a high-water mark of the whole run so far), reported as ``"cpu (process peak RSS)"``."""
    cuda = sorted({d for d in devices if d.type == "cuda"}, key=str)
    peaks = {str(d): int(torch.cuda.max_memory_allocated(d)) for d in cuda}
    if any(d.type == "cpu" for d in devices):
        try:
            import resource

            peaks["cpu (process peak RSS)"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux
        except (ImportError, OSError):
            pass
    return peaks or None


def _reset_peak_memory(devices) -> None:
    for d in {d for d in devices if d.type == "cuda"}:
        torch.cuda.reset_peak_memory_stats(d)


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
        _reset_peak_memory(devices)
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
                  "peak_mem_bytes": _peak_memory(devices)}
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


def plot_curves(history: list[dict], path: Path) -> Path | None:
    """Loss (left) and top-1 error (right) per epoch, training and validation; None without epochs."""
    if not history:
        return None
    plt = report_kit.pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for ax, key, what in ((loss_ax, "loss", "loss"), (err_ax, "top1_err", "top-1 error")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="training (running)")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    report_kit.save_figure(fig, path, tight=False)  # laid out by its "constrained" engine
    return path


def render_report(summary: dict, curves: str | None = None) -> str:
    """A short human-readable summary of one run (Markdown), with its learning curves when plotted."""
    cfg, hist = summary["config"], summary["history"]
    last = hist[-1] if hist else {}
    pct = report_kit.pct
    lines = [f"# AlexNet training run: {summary['out_dir']}", "",
             f"Command: `{summary['command']}`", ""]
    if summary["diverged"]:
        lines += [f"**Diverged** (non-finite loss) at {summary['diverged_at']}; the last checkpoint is from before.", ""]
    lines += report_kit.table(
        ["epochs", "steps", "final train loss", "final val loss", "val top-1 err", "val top-5 err", "best val top-1 err",
         "images/s (last epoch)"],
        [[len(hist), summary["steps"], f"{last.get('train_loss', float('nan')):.4f}",
          f"{last.get('val_loss', float('nan')):.4f}", pct(last.get("val_top1_err")), pct(last.get("val_top5_err")),
          pct(summary["best_val_top1_err"]), f"{last.get('images_per_s', float('nan')):.1f}"]])
    lines.append("")
    if curves:
        lines += [f"![learning curves: loss and top-1 error per epoch]({curves})", ""]
    if hist:
        rows = []
        for h in hist:
            mem = "not measured" if h["peak_mem_bytes"] is None else ", ".join(
                f"{d}: {b / 2**30:.2f} GiB" for d, b in h["peak_mem_bytes"].items())
            rows.append([h["epoch"], f"{h['train_loss']:.4f}", pct(h["train_top1_err"]), f"{h['val_loss']:.4f}",
                         pct(h["val_top1_err"]), f"{h['lr']:.3g}", f"{h['grad_norm']:.3g}", f"{h['images_per_s']:.1f}",
                         mem])
        lines += report_kit.table(["epoch", "train loss", "train top-1 err", "val loss", "val top-1 err", "lr",
                                   "grad norm", "images/s", "peak memory"], rows)
        lines.append("")
    keys = ("kernels", "layout", "width", "devices", "data", "image_size", "crop_size", "batch_size", "lr", "epochs",
            "max_steps", "amp", "init", "seed", "num_parameters", "train_images", "val_images")
    lines += ["## Config", "", *[f"- {k}: `{cfg.get(k)}`" for k in keys], f"- model: `{json.dumps(cfg['model'])}`", "",
              "## Machine", "", *[f"- {k}: {v}" for k, v in summary["machine"].items()], ""]
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
