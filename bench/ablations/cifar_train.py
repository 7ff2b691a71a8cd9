"""One training run of the paper's 4-layer CIFAR-10 CNN (``alexnet.cifar_cnn``), sized for a CPU.

``load_cifar_tensors`` decodes the images once (``alexnet.data``'s uint8 cache) and keeps both splits as
whole float32 tensors, already normalised (training mean image, per-channel std) and channels-last,
so the inner loop is one gather, an optional flip, forward, backward and the SGD step. A run's
``input_scale`` decides what the net sees: ``"unit"`` those tensors (unit variance), ``"pixels"`` them
times the per-channel std again, i.e. mean-subtracted 0-255 pixels as cuda-convnet fed its nets (one
multiply per batch; equal to the unscaled pixels to float32 rounding).

A validation split (``val_images`` > 0) is held out of the training set, never the test set: a fixed
seeded draw (``holdout_indices``: NumPy's ``default_rng(VAL_SEED)``, stable across releases) of that many
training images, the same in every run and every process. The remaining images are the training set, and
the normalisation (mean image, per-channel std) is computed from them alone. Learning rates are chosen on
this split (``bench.ablations.cifar``); a run made with ``val_images = 0`` trains on all 50,000 images as
the first records did.

``train_run(spec, data)`` trains one net and returns its record:

* the training-error curve: every point is the running top-1 error over the same number of batches
  (``steps_per_epoch // points_per_epoch``, 97 batches = 12,416 images for CIFAR-10 at batch 128),
  windows run on across epoch boundaries, and each point sits at its window's middle (in epochs and in
  training seconds), where a running average measures a falling error without lag;
* the test error after every epoch (or, for ``test_every_epoch=False``, after the last one; none at all
  for ``test_at_end=False``: a learning-rate trial never sees the test set), and with a validation split
  the validation error at the same moments (``val_curve``, ``val_top1_err``);
* for a ``threshold`` (Figure 1), the interpolated crossing in epochs and training seconds; the run stops
  ``epochs_past_threshold`` epochs after both the running error and the whole-epoch error
  (``stats.whole_epoch_errors``) have crossed it, so that both measures exist for every run that trains
  (``threshold_stop`` in the record), or at ``give_up_after`` epochs without a running crossing (a
  learning-rate grid stops a run that is already slower than the best rate found);
* images/s of the training steps alone (evaluation excluded);
* for an LRN net, ``lrn_terms``: at the start (before the first step), the middle (after epoch
  ``max_epochs // 2``) and the end, percentiles of ``alpha * sum a_j^2`` at each LRN layer over a fixed
  batch (the first ``LRN_PROBE_IMAGES`` training images), the term LRN sets against ``k``.

After every epoch the full state (model, optimiser, curve so far) is saved atomically to
``state_path``, so a stopped run resumes at its last finished epoch with the same batches: each epoch's
order and flips come from a generator seeded by (seed, epoch), and the weights from ``seed``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from alexnet.cifar_cnn import CifarCNN
from alexnet.data import build_data
from alexnet.train_step import autocast, sgd_step
from bench.ablations.stats import epochs_to_threshold, whole_epoch_errors
from infra.atomic_io import atomic_write

STATE_FORMAT = "alexnet-kernels/cifar-run-state-v1"
INPUT_SCALES = ("unit", "pixels")
INITS = ("default", "cuda-convnet")
# switches added after the first records were written: a record (or state file) without the key was made
# with this value, which is the default, so those records stay valid and are never rerun
LATER_SPEC_KEYS = {"input_scale": "unit", "init": "default", "chance_stop_epochs": None, "val_images": 0,
                   "test_at_end": True, "widths": [32, 32, 64], "layout": "one-gpu"}
VAL_SEED = 0  # the validation split's draw: one fixed split for every run
CHANCE_MARGIN = 0.02  # "at chance": running training error within 2 pp of 1 - 1/classes
LRN_PROBE_IMAGES = 512
LRN_PROBE_QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides what one run computes (two runs with equal specs are the same run)."""

    activation: str = "relu"
    lrn: bool = False
    pool: str = "3/2"  # max-pool kernel/stride: 3/2 overlapping (paper) or 2/2
    lr: float = 0.01
    seed: int = 0
    max_epochs: int = 8
    lr_drop_epochs: tuple = ()  # the learning rate is divided by 10 from each of these epochs on
    weight_decay: float = 0.0
    flip: bool = False
    batch_size: int = 128
    momentum: float = 0.9
    points_per_epoch: int = 4
    threshold: float | None = None  # Figure 1: stop epochs_past_threshold epochs after reaching it
    epochs_past_threshold: int = 1
    test_every_epoch: bool = True
    max_steps: int | None = None  # tiny runs (tests); None = whole epochs
    amp: str = "off"  # "bf16": bfloat16 autocast for the convolutions and the classifier (LRN stays float32)
    input_scale: str = "unit"  # "unit": per-channel unit variance; "pixels": mean-subtracted 0-255 (cuda-convnet)
    init: str = "default"  # "default": PyTorch's; "cuda-convnet": Gaussian std 1e-4 conv1, 1e-2 others, biases 0
    chance_stop_epochs: int | None = None  # stop ("at-chance") a run still at chance error after this many epochs
    val_images: int = 0  # training images held out as the validation split (0: none, train on all)
    test_at_end: bool = True  # False: never evaluate on the test set (learning-rate trials)
    widths: tuple = (32, 32, 64)  # total kernels of conv1..conv3
    layout: str = "one-gpu"  # "one-gpu" | "two-gpu" (alexnet.cifar_cnn: towers joined at conv3 and the classifier)

    def __post_init__(self):
        if self.pool not in ("3/2", "2/2"):
            raise ValueError(f"pool must be '3/2' or '2/2', got {self.pool!r}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.points_per_epoch < 1:
            raise ValueError("batch_size, max_epochs and points_per_epoch must be at least 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.amp not in ("off", "bf16"):
            raise ValueError(f"amp must be 'off' or 'bf16', got {self.amp!r}")
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"input_scale must be one of {INPUT_SCALES}, got {self.input_scale!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.val_images < 0:
            raise ValueError(f"val_images must be at least 0, got {self.val_images}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr_drop_epochs"] = list(self.lr_drop_epochs)
        d["widths"] = list(self.widths)
        return d

    def lr_at(self, epoch: int) -> float:
        return self.lr * 0.1 ** sum(1 for e in self.lr_drop_epochs if epoch >= e)

    def matches(self, stored: dict | None) -> bool:
        """Whether a spec read from a record or state file is this one (keys it lacks take their old value)."""
        return isinstance(stored, dict) and with_later_keys(stored) == self.to_dict()


def with_later_keys(stored: dict) -> dict:
    """A stored spec with the switches added since it was written filled in with the value it was made with."""
    return {**LATER_SPEC_KEYS, **stored}


@dataclass
class CifarTensors:
    """Both splits as normalised float32 tensors (N x 3 x 32 x 32, channels-last) and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list
    source: str
    info: dict = field(default_factory=dict)
    pixel_std: torch.Tensor | None = None  # 1 x 3 x 1 x 1, the per-channel std the tensors were divided by
    val_x: torch.Tensor | None = None  # the validation split, held out of the training set (None: no split)
    val_y: torch.Tensor | None = None

    def inputs(self, x: torch.Tensor, input_scale: str) -> torch.Tensor:
        """``x`` (stored, unit variance) as a run with ``input_scale`` feeds it to the net."""
        if input_scale == "unit":
            return x
        if self.pixel_std is None:
            raise ValueError("these tensors carry no pixel std, so they cannot be scaled back to pixels")
        return x * self.pixel_std

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        val = {} if self.val_y is None else {"val_images": len(self.val_y), "val_seed": VAL_SEED}
        return {"data": self.source, "train_images": len(self.train_y), "test_images": len(self.test_y),
                "num_classes": self.num_classes, **val, **self.info}


def holdout_indices(n: int, val_images: int, seed: int = VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices of a split of ``n`` training images: ``val_images`` drawn by a fixed
    seeded permutation, both sorted; the same for the same arguments on every machine."""
    if not 0 < val_images < n:
        raise ValueError(f"the validation split must hold between 1 and {n - 1} of the {n} training images, "
                         f"got {val_images}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_images:]), np.sort(order[:val_images])


def load_cifar_tensors(data: str, *, limit_per_class: int | None = None, synthetic_train: int | None = None,
                       synthetic_test: int | None = None, val_images: int = 0) -> CifarTensors:
    """Decode ``data`` (as ``alexnet.data.build_data``: 'cifar10', an archive, a folder, 'synthetic') at 32 px;
    ``val_images`` > 0 holds that many training images out as the validation split (``holdout_indices``)."""
    kwargs = {"image_size": 32, "seed": 0, "limit_per_class": limit_per_class}
    if synthetic_train is not None:
        kwargs["synthetic_train"] = synthetic_train
    if synthetic_test is not None:
        kwargs["synthetic_val"] = synthetic_test
    t0 = time.perf_counter()
    bundle = build_data(data, **kwargs)
    train_images, train_labels = bundle.train.images, np.asarray(bundle.train.labels, np.int64)
    val = None
    if val_images:
        keep, held = holdout_indices(len(train_labels), val_images)
        val = (np.asarray(train_images[held]), train_labels[held])
        train_images, train_labels = np.asarray(train_images[keep]), train_labels[keep]
        mean = torch.from_numpy(train_images).float().mean(dim=0)  # the remaining training images only
    else:
        mean = bundle.stats.mean.float()  # 3 x 32 x 32, training split only

    def prepared(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(images, dtype=np.uint8)).float().sub_(mean)  # a copy: the cache is read-only

    train_x = prepared(train_images)
    std = train_x.transpose(0, 1).reshape(3, -1).std(dim=1).clamp_min(1e-3).view(1, 3, 1, 1)
    train_x = train_x.div_(std).contiguous(memory_format=torch.channels_last)
    test_x = prepared(bundle.val.images).div_(std).contiguous(memory_format=torch.channels_last)
    val_x = None if val is None else prepared(val[0]).div_(std).contiguous(memory_format=torch.channels_last)
    return CifarTensors(train_x=train_x, train_y=torch.from_numpy(train_labels),
                        test_x=test_x, test_y=torch.from_numpy(np.asarray(bundle.val.labels, np.int64)),
                        classes=list(bundle.classes), source=str(bundle.source), pixel_std=std,
                        val_x=val_x, val_y=None if val is None else torch.from_numpy(val[1]),
                        info={"prepare_seconds": round(time.perf_counter() - t0, 2), "skipped_images": bundle.skipped,
                              "pixel_std": [round(float(v), 3) for v in std.flatten()]})


def build_model(spec: RunSpec, num_classes: int) -> CifarCNN:
    kernel, stride = (int(v) for v in spec.pool.split("/"))
    torch.manual_seed(spec.seed)  # same seed -> same initial weights in every arm (equal parameter shapes)
    model = CifarCNN(num_classes=num_classes, activation=spec.activation, lrn=spec.lrn, pool_kernel=kernel,
                     pool_stride=stride, init=spec.init, widths=spec.widths, layout=spec.layout)
    return model.to(memory_format=torch.channels_last)


@torch.no_grad()
def lrn_regime(data: CifarTensors, images: int = 1024, seed: int = 0) -> dict:
    """How much LRN normalises here: at each LRN layer of the freshly initialised net, ``alpha * sum a_j^2``
    over the window (mean and 99th percentile over positions and channels) against ``k``, on the first
    ``images`` training images. Far below ``k``, LRN is nearly the constant factor ``k^-beta``."""
    from alexnet.cifar_cnn import ChannelLRN

    model = build_model(RunSpec(lrn=True, seed=seed), data.num_classes).eval()
    layers = []

    def probe(module, inputs, output):
        x = inputs[0].float()
        sums = torch.einsum("nchw,cd->ndhw", x * x, module.window.float()).flatten()
        sample = sums[torch.randperm(sums.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
        layers.append({"layer": f"LRN{len(layers) + 1}", "mean_alpha_sum": float(sums.mean()),
                       "p99_alpha_sum": float(sample.quantile(0.99)), "k": module.k, "beta": module.beta})

    hooks = [m.register_forward_hook(probe) for m in model.modules() if isinstance(m, ChannelLRN)]
    try:
        model(data.train_x[:images])
    finally:
        for h in hooks:
            h.remove()
    return {"images": min(images, len(data.train_y)), "seed": seed, "layers": layers,
            "input": "mean image subtracted, divided by the per-channel std", "pixel_std": data.info.get("pixel_std")}


@torch.no_grad()
def lrn_terms(model: CifarCNN, x: torch.Tensor, spec: RunSpec) -> list[dict]:
    """At each LRN layer, for the batch ``x`` (already at the run's input scale, under its precision):
    ``alpha * sum a_j^2`` over the window at every position and channel - mean, percentiles, max - and ``k``."""
    from alexnet.cifar_cnn import ChannelLRN

    layers = []

    def probe(module, inputs, output):
        sums = module.alpha_sums(inputs[0]).flatten().float()
        qs = torch.quantile(sums, torch.tensor(LRN_PROBE_QUANTILES)) if sums.numel() <= 1 << 24 else None
        layers.append({"layer": f"LRN{len(layers) + 1}", "k": module.k, "beta": module.beta,
                       "mean": float(sums.mean()), "max": float(sums.max()),
                       **({f"p{100 * q:g}": float(v) for q, v in zip(LRN_PROBE_QUANTILES, qs)} if qs is not None else {})})

    hooks = [m.register_forward_hook(probe) for m in model.modules() if isinstance(m, ChannelLRN)]
    was_training = model.training
    model.eval()
    try:
        with autocast("cpu", spec.amp):
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return layers


@torch.no_grad()
def test_error(model: CifarCNN, data: CifarTensors, batch_size: int = 1000, input_scale: str = "unit",
               split: str = "test") -> dict:
    """Top-1 error and loss on ``split``: "test" (the test set) or "val" (the validation split)."""
    x, ys = (data.test_x, data.test_y) if split == "test" else (data.val_x, data.val_y)
    if x is None:
        raise ValueError("these tensors hold no validation split (load them with val_images > 0)")
    model.eval()
    wrong, loss, n = 0, 0.0, len(ys)
    for i in range(0, n, batch_size):
        logits = model(data.inputs(x[i:i + batch_size], input_scale)).float()
        y = ys[i:i + batch_size]
        wrong += int((logits.argmax(1) != y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    model.train()
    return {f"{split}_top1_err": wrong / max(n, 1), f"{split}_loss": loss / max(n, 1)}


@dataclass
class RunProgress:
    """What a run has done so far; saved with the weights after every epoch (the state file's "record"), so
    that a stopped run resumes where it stopped."""

    curve: list = field(default_factory=list)  # training-error points (_close_window)
    test_curve: list = field(default_factory=list)  # {"epoch", "test_top1_err", "test_loss"} per evaluation
    val_curve: list = field(default_factory=list)  # the same on the validation split
    step: int = 0
    epochs_run: int = 0
    train_seconds: float = 0.0  # the training steps alone
    wall_seconds: float = 0.0  # with evaluation and probes
    stop_reason: str | None = None
    window: dict = field(default_factory=lambda: _Window().state())  # the open curve window
    lrn_terms: list | None = None  # LRN nets: the alpha-sum-vs-k probes so far

    def state(self) -> dict:
        """As saved; ``lrn_terms`` only where probed (the states of runs without LRN never had the key)."""
        saved = asdict(self)
        if saved["lrn_terms"] is None:
            del saved["lrn_terms"]
        return saved


class _Window:
    """Running error of the batches since the last curve point."""

    def __init__(self, start_step: int = 0, start_seconds: float = 0.0, wrong: int = 0, seen: int = 0,
                 loss_sum: float = 0.0):
        self.start_step, self.start_seconds = start_step, start_seconds
        self.wrong, self.seen, self.loss_sum = wrong, seen, loss_sum

    def state(self) -> dict:
        return dict(vars(self))


def train_run(spec: RunSpec, data: CifarTensors, *, state_path: str | os.PathLike | None = None,
              give_up_after: float | None = None, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one net (resuming from ``state_path`` when it holds this spec's state); return its record."""
    if spec.val_images and (data.val_y is None or len(data.val_y) != spec.val_images):
        raise ValueError(f"the run holds out {spec.val_images} validation images, the tensors "
                         f"{0 if data.val_y is None else len(data.val_y)}: load them with val_images={spec.val_images}")
    model = build_model(spec, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    n = len(data.train_y)
    steps_per_epoch = max(n // spec.batch_size, 1)  # the last partial batch is dropped, as batch 128 training does
    window_steps = max(steps_per_epoch // spec.points_per_epoch, 1)
    progress = RunProgress()
    state_path = Path(state_path) if state_path is not None else None
    if state_path is not None and state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if saved.get("format") == STATE_FORMAT and spec.matches(saved.get("spec")):
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            progress = RunProgress(**saved["record"])
    window = _Window(**progress.window)
    flip_dim = 3  # W of N x C x H x W
    probe_x = data.inputs(data.train_x[:LRN_PROBE_IMAGES], spec.input_scale) if spec.lrn else None
    probe_epochs = {0, spec.max_epochs // 2}  # and the last epoch run, whenever the run stops
    if spec.lrn and progress.lrn_terms is None:
        progress.lrn_terms = [{"epoch": 0, "layers": lrn_terms(model, probe_x, spec)}]

    for epoch in range(progress.epochs_run, spec.max_epochs):
        if progress.stop_reason is not None:
            break
        wall0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = spec.lr_at(epoch)
        gen = torch.Generator().manual_seed(spec.seed * 1000 + epoch)
        order = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5
        wrong = torch.zeros((), dtype=torch.int64)
        loss_sum = torch.zeros(())
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            if spec.max_steps is not None and progress.step >= spec.max_steps:
                progress.stop_reason = "max-steps"
                break
            idx = order[i * spec.batch_size:(i + 1) * spec.batch_size]
            x, y = data.inputs(data.train_x[idx], spec.input_scale), data.train_y[idx]
            if spec.flip:
                f = flips[idx]
                x[f] = x[f].flip(flip_dim)
            logits, loss = sgd_step(model, opt, x, y, amp=spec.amp)
            wrong += (logits.argmax(1) != y).sum()
            loss_sum += loss
            window.seen += len(y)
            progress.step += 1
            if progress.step - window.start_step == window_steps:
                seconds = progress.train_seconds + (time.perf_counter() - t0)
                window.wrong += int(wrong)
                window.loss_sum += float(loss_sum)
                wrong.zero_()
                loss_sum.zero_()
                point = _close_window(window, progress.step, seconds, steps_per_epoch)
                progress.curve.append(point)
                window = _Window(progress.step, seconds)
                if not math.isfinite(point["train_loss"]):
                    progress.stop_reason = "diverged"
                    break
        progress.train_seconds += time.perf_counter() - t0
        window.wrong += int(wrong)
        window.loss_sum += float(loss_sum)
        progress.epochs_run = epoch + 1
        crossing = _crossing(progress.curve, spec.threshold, data.num_classes, "epoch")
        stop_at = threshold_stop_epoch(progress.curve, spec.threshold, data.num_classes, spec.epochs_past_threshold)
        if progress.stop_reason is None:
            if stop_at is not None and progress.epochs_run >= stop_at:
                progress.stop_reason = "threshold-reached"
            elif (spec.chance_stop_epochs is not None and progress.epochs_run >= spec.chance_stop_epochs
                  and progress.curve and at_chance(progress.curve[-1]["train_top1_err"], data.num_classes)):
                progress.stop_reason = "at-chance"
            elif crossing is None and give_up_after is not None and progress.epochs_run >= give_up_after:
                progress.stop_reason = "slower-than-best"
            elif progress.epochs_run >= spec.max_epochs:
                progress.stop_reason = "budget"
        if spec.test_every_epoch or progress.stop_reason is not None:
            with autocast("cpu", spec.amp):
                if spec.test_at_end:
                    progress.test_curve.append({"epoch": progress.epochs_run,
                                              **test_error(model, data, input_scale=spec.input_scale)})
                if spec.val_images:
                    progress.val_curve.append({"epoch": progress.epochs_run,
                                             **test_error(model, data, input_scale=spec.input_scale, split="val")})
        if spec.lrn and (progress.epochs_run in probe_epochs or progress.stop_reason is not None):
            progress.lrn_terms.append({"epoch": progress.epochs_run, "layers": lrn_terms(model, probe_x, spec)})
        progress.wall_seconds += time.perf_counter() - wall0
        progress.window = window.state()
        if state_path is not None:
            state = {"format": STATE_FORMAT, "spec": spec.to_dict(), "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "record": progress.state()}
            atomic_write(state_path, lambda f: torch.save(state, f))
        if on_epoch is not None:
            on_epoch({"epoch": progress.epochs_run, "curve": progress.curve, "test_curve": progress.test_curve,
                      "train_seconds": progress.train_seconds, "steps": progress.step})
    return _record(spec, progress, data, steps_per_epoch, window_steps)


def at_chance(err: float, num_classes: int) -> bool:
    """Whether a running training error is still at chance (within ``CHANCE_MARGIN`` of ``1 - 1/classes``)."""
    return err >= 1.0 - 1.0 / num_classes - CHANCE_MARGIN


def _close_window(window: _Window, step: int, seconds: float, steps_per_epoch: int) -> dict:
    batches = step - window.start_step
    return {"epoch": (window.start_step + step) / 2 / steps_per_epoch,  # the window's middle
            "seconds": (window.start_seconds + seconds) / 2,
            "epoch_end": step / steps_per_epoch, "step": step, "images": window.seen,
            "train_top1_err": window.wrong / max(window.seen, 1), "train_loss": window.loss_sum / max(batches, 1)}


def _crossing(curve: list, threshold: float | None, num_classes: int, axis: str) -> float | None:
    if threshold is None:
        return None
    return epochs_to_threshold([(p[axis], p["train_top1_err"]) for p in curve], threshold,
                               start=(0.0, 1.0 - 1.0 / num_classes))


def threshold_stop_epoch(curve: list, threshold: float | None, num_classes: int, epochs_past: int) -> float | None:
    """The epoch count from which a threshold run stops: ``epochs_past`` epochs after the later of its running
    error's and its whole-epoch error's crossings; None while either has not crossed (or without a threshold)."""
    if threshold is None:
        return None
    running = _crossing(curve, threshold, num_classes, "epoch")
    whole = epochs_to_threshold(whole_epoch_errors(curve), threshold, start=(0.0, 1.0 - 1.0 / num_classes))
    return None if running is None or whole is None else max(running, whole) + epochs_past


# How a threshold run decides it has crossed (records written before this field stopped after the running
# error's crossing alone, so some lack a whole-epoch crossing).
THRESHOLD_STOP = "running and whole-epoch error"


def _record(spec: RunSpec, progress: RunProgress, data: CifarTensors, steps_per_epoch: int, window_steps: int) -> dict:
    curve, tests, vals = progress.curve, progress.test_curve, progress.val_curve
    images = progress.step * spec.batch_size
    return {
        "spec": spec.to_dict(), "data": data.describe(),
        "stop_reason": progress.stop_reason, "diverged": progress.stop_reason == "diverged",
        "at_chance": bool(curve) and at_chance(curve[-1]["train_top1_err"], data.num_classes),
        "epochs_run": progress.epochs_run, "steps": progress.step, "steps_per_epoch": steps_per_epoch,
        "window_batches": window_steps,
        "epochs_to_threshold": _crossing(curve, spec.threshold, data.num_classes, "epoch"),
        "seconds_to_threshold": _crossing(curve, spec.threshold, data.num_classes, "seconds"),
        **({"threshold_stop": THRESHOLD_STOP} if spec.threshold is not None else {}),
        "final_train_err": curve[-1]["train_top1_err"] if curve else None,
        "final_train_loss": curve[-1]["train_loss"] if curve else None,
        "test_top1_err": tests[-1]["test_top1_err"] if tests else None,
        **({"val_top1_err": vals[-1]["val_top1_err"] if vals else None, "val_curve": vals} if spec.val_images else {}),
        "train_seconds": progress.train_seconds, "wall_seconds": progress.wall_seconds,
        "images_per_s": images / progress.train_seconds if progress.train_seconds > 0 else None,
        "threads": torch.get_num_threads(),
        **({"lrn_impl": _lrn_impl(spec), "lrn_terms": progress.lrn_terms or [],
            "lrn_probe_images": min(LRN_PROBE_IMAGES, len(data.train_y))} if spec.lrn else {}),
        "curve": curve, "test_curve": tests,
    }


def _lrn_impl(spec: RunSpec) -> str:
    from alexnet.cifar_cnn import lrn_backend

    if spec.activation != "relu":  # inputs can be negative: ChannelLRN's einsum, not relu_lrn
        return "ChannelLRN einsum (float32)"
    return f"kernels.relu_lrn, backend {lrn_backend()!r} (float32)"
