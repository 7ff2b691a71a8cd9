"""One epoch of training and one evaluation of a (placed, maybe distributed) AlexNet: ``train_one_epoch``
with its lr ``Warmup``, the run's machinery it uses (``StepContext``) and the counters it advances
(``LoopState``); ``evaluate`` (centre crop or 10 crops); and the devices' peak memory per epoch."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from alexnet import distributed
from alexnet.augment import EvalTransform, TrainAugment, predict_averaged
from alexnet.distributed import DistContext
from alexnet.metrics import RunningSums, topk_wrong
from alexnet.train_config import TrainOptions
from alexnet.train_step import autocast, logits_and_loss


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


def peak_memory(devices) -> dict | None:
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


def reset_peak_memory(devices) -> None:
    for d in {d for d in devices if d.type == "cuda"}:
        torch.cuda.reset_peak_memory_stats(d)

