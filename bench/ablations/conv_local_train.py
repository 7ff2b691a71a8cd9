"""One run of cuda-convnet's conv-local recipe (``alexnet.conv_local``) on CIFAR-10, resumable per epoch.

The recipe, from cuda-convnet (``github.com/dnouri/cuda-convnet`` commit ``e4ac0c1f``):

* data (``convdata.py`` ``CroppedCIFARDataProvider``, ``crop_border=4``): training cases are random 24x24
  crops of the 32x32 image (offsets 0..8 each way), mirrored with probability 1/2; the centre 24x24 of the
  training-set mean image (0-255 scale) is subtracted from every crop; no other scaling. The images come
  from this project's uint8 cache (``alexnet.data.build_data``, the same cache ``load_cifar_tensors``
  reads), kept as uint8; crops are gathered per batch.
* batches: minibatch 128 (``convnet.py --mini``), the last partial minibatch of an epoch kept (cuda-convnet
  also trains on the 16-case tail of each 10,000-image batch file); the order is reshuffled every epoch
  from ``(seed, epoch)`` (cuda-convnet reads its batch files in a fixed order; a documented difference).
* splits: "batches 1-4" / "batch 5" are a fixed 80/20 split of the training images, stratified by class
  (10,000 validation images for CIFAR-10; the JPEG archive does not keep cuda-convnet's batch files).
  Phase ``train`` fits on batches 1-4; phase ``fold-in`` and the two drops on all five.
* update: ``alexnet.convnet_sgd.ConvnetSGD`` with the cfg's per-layer epsW/epsB/momW/momB/wc (cuda-convnet's
  gradient is summed over the minibatch and scaled by ``eps / numCases``: a mean gradient, so ``eps`` is
  used as the learning rate unchanged). The drops (layer-params comment, steps 5-6) divide the rates by 10
  and by 100; both epsW and epsB are scaled.
* test: single-view = the centre crop; multi-view (``--multiview-test=1``, ``MultiviewTestWorker``) = the
  softmax averaged over 10 views, the four corner and the centre crops and their mirror images.

Recorded after every epoch: training error and loss (running, on the augmented crops), validation error
(batch 5, centre crop), test error (centre crop), images/s of the training steps, wall seconds. For the
11pct net the LRN probe (``alpha * sum a^2`` over the window, against ``k``) on a fixed batch at the
start, after the middle epoch and at the end. After every epoch the whole state is written atomically,
so a killed run resumes at its last finished epoch with the same batches.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alexnet.conv_local import ARMS, CMRNORM, CROP, LAYER_PARAMS, ConvLocalConfig, ConvLocalNet
from alexnet.convnet_sgd import ConvnetSGD, convnet_param_groups
from alexnet.data import build_data
from alexnet.train_step import autocast, sgd_step
from infra.atomic_io import atomic_write
from infra.errors import UsageError

STATE_FORMAT = "alexnet-kernels/conv-local-state-v1"
BORDER = (32 - CROP) // 2
PHASES = ("train", "fold-in", "drop10", "drop100")
LR_SCALE = {"train": 1.0, "fold-in": 1.0, "drop10": 0.1, "drop100": 0.01}
PROBE_IMAGES = 256
PROBE_QUANTILES = (0.5, 0.9, 0.99)
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class ConvLocalSpec:
    """Everything that decides what one run computes."""

    arm: str = "11pct"
    seed: int = 0
    schedule: str = "full"
    epochs: tuple = (350, 150, 10, 10)  # per phase: train on 1-4, fold in 5, lr/10, lr/100
    batch_size: int = 128
    amp: str = "off"  # "bf16": bfloat16 autocast (slower on a CPU without bf16 matrix units)
    backend: str = "cpp"  # kernels backend of the pooling / normalisation ops
    eval_every: int = 1  # validation + test error every this many epochs (and at each phase's end)
    data: str = "cifar10"
    limit_per_class: int | None = None  # tiny runs (tests)

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")
        if len(self.epochs) != len(PHASES) or any(int(e) < 0 for e in self.epochs) or sum(self.epochs) < 1:
            raise ValueError(f"epochs must be {len(PHASES)} non-negative counts ({', '.join(PHASES)}), got {self.epochs}")
        if self.amp not in ("off", "bf16"):
            raise ValueError(f"amp must be 'off' or 'bf16', got {self.amp!r}")
        if self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("batch_size and eval_every must be at least 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["epochs"] = [int(e) for e in self.epochs]
        return d

    @property
    def total_epochs(self) -> int:
        return int(sum(self.epochs))

    def phase_at(self, epoch: int) -> str:
        """The phase of 0-based ``epoch``."""
        end = 0
        for phase, count in zip(PHASES, self.epochs):
            end += count
            if epoch < end:
                return phase
        raise ValueError(f"epoch {epoch} is past the schedule ({self.total_epochs} epochs)")

    def phase_ends(self) -> set[int]:
        ends, end = set(), 0
        for count in self.epochs:
            end += count
            if count:
                ends.add(end)
        return ends


@dataclass
class CifarImages:
    """uint8 images (N x 3 x 32 x 32) of both splits, labels, the batch-5 mask and the mean crop."""

    train: torch.Tensor
    train_y: torch.Tensor
    test: torch.Tensor
    test_y: torch.Tensor
    val_mask: torch.Tensor  # bool, over train: the "batch 5" images
    mean_crop: torch.Tensor  # 3 x 24 x 24 float32, the centre of the training mean image (0-255)
    source: str

    def describe(self) -> dict:
        return {"data": self.source, "train_images": int((~self.val_mask).sum()), "val_images": int(self.val_mask.sum()),
                "test_images": len(self.test_y)}


def load_images(data: str = "cifar10", limit_per_class: int | None = None) -> CifarImages:
    """The 32 px uint8 cache of ``data``; a missing CIFAR-10 archive is a ``UsageError`` naming it."""
    try:
        bundle = build_data(data, image_size=32, seed=0, limit_per_class=limit_per_class)
    except FileNotFoundError as exc:
        raise UsageError(f"CIFAR-10 data not found ({exc}); put the archive where alexnet.data.cifar10_archive() "
                         "looks, or pass --data PATH") from exc
    train_y = torch.from_numpy(np.asarray(bundle.train.labels, np.int64))
    rng = np.random.default_rng(5)  # "batch 5": fixed, whatever the run's seed
    val_mask = np.zeros(len(train_y), dtype=bool)
    for label in np.unique(train_y.numpy()):
        members = np.flatnonzero(train_y.numpy() == label)
        val_mask[rng.permutation(members)[:round(VAL_FRACTION * len(members))]] = True
    mean = bundle.stats.mean.float()[:, BORDER:BORDER + CROP, BORDER:BORDER + CROP].contiguous()
    return CifarImages(train=torch.from_numpy(np.array(bundle.train.images, dtype=np.uint8)), train_y=train_y,
                       test=torch.from_numpy(np.array(bundle.val.images, dtype=np.uint8)),
                       test_y=torch.from_numpy(np.asarray(bundle.val.labels, np.int64)),
                       val_mask=torch.from_numpy(val_mask), mean_crop=mean, source=str(bundle.source))


def crops(images: torch.Tensor, mean_crop: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor,
          flip: torch.Tensor) -> torch.Tensor:
    """24x24 crops at offsets ``(oy, ox)`` (mirrored where ``flip``), minus ``mean_crop``: N x 3 x 24 x 24 float32,
    channels_last. One gather: advanced indices over (image, row, column) put the channel last."""
    n = images.shape[0]
    r = torch.arange(CROP)
    rows = (oy.view(n, 1) + r).view(n, CROP, 1)
    cols = torch.where(flip.view(n, 1), CROP - 1 - r, r) + ox.view(n, 1)
    picked = images[torch.arange(n).view(n, 1, 1), :, rows, cols.view(n, 1, CROP)]  # N x 24 x 24 x 3
    out = picked.permute(0, 3, 1, 2).float()  # channels_last strides
    return out.sub_(mean_crop)


def view_crops(images: torch.Tensor, mean_crop: torch.Tensor, view: int) -> torch.Tensor:
    """cuda-convnet's test view ``view`` (0-9) of every image: 0-4 = corners (0,0), (0,8), centre, (8,0), (8,8);
    5-9 the same mirrored. View 2 is the single-view test (the centre crop)."""
    starts = [(0, 0), (0, 2 * BORDER), (BORDER, BORDER), (2 * BORDER, 0), (2 * BORDER, 2 * BORDER)]
    oy, ox = starts[view % 5]
    n = images.shape[0]
    return crops(images, mean_crop, torch.full((n,), oy), torch.full((n,), ox), torch.full((n,), view >= 5))


@torch.no_grad()
def evaluate(model: ConvLocalNet, images: torch.Tensor, labels: torch.Tensor, mean_crop: torch.Tensor, spec: ConvLocalSpec,
             views: tuple = (2,), batch_size: int = 500) -> float:
    """Top-1 error of the softmax averaged over ``views`` (``(2,)`` single-view, ``range(10)`` multi-view)."""
    model.eval()
    wrong = 0
    for i in range(0, len(labels), batch_size):
        chunk = images[i:i + batch_size]
        probs = 0
        for v in views:
            with autocast("cpu", spec.amp):
                probs = probs + F.softmax(model(view_crops(chunk, mean_crop, v)).float(), dim=1)
        wrong += int((probs.argmax(1) != labels[i:i + batch_size]).sum())
    model.train()
    return wrong / max(len(labels), 1)


@torch.no_grad()
def lrn_probe(model: ConvLocalNet, x: torch.Tensor, spec: ConvLocalSpec) -> list[dict]:
    """At each normalisation layer's input (post-ReLU; rnorm2 before pooling): percentiles of
    ``alpha * sum_{window} a^2`` against ``k`` (=1): the share of the divisor that the sum makes."""
    alpha, size = CMRNORM["alpha"], CMRNORM["size"]
    model.eval()
    with autocast("cpu", spec.amp):
        a1 = model._pool(model.conv1(x), model.pad1).float().relu()
        n1 = model.conv2(_lrn(a1))
    a2 = n1.float().relu()
    model.train()
    layers = []
    for name, a in (("rnorm1", a1), ("rnorm2", a2)):
        sq = (a * a).transpose(0, 1).flatten(1)  # C x positions
        padded = F.pad(sq, (0, 0, size // 2, size // 2))
        sums = alpha * padded.unfold(0, size, 1).sum(-1).flatten()
        qs = torch.quantile(sums[:1 << 24], torch.tensor(PROBE_QUANTILES, dtype=sums.dtype))
        layers.append({"layer": name, "k": CMRNORM["k"], "mean": float(sums.mean()), "max": float(sums.max()),
                       **{f"p{int(q * 100)}": float(v) for q, v in zip(PROBE_QUANTILES, qs)}})
    return layers


def _lrn(a: torch.Tensor) -> torch.Tensor:
    import kernels

    return kernels.relu_lrn(a.float(), **CMRNORM, backend="eager")


def build(spec: ConvLocalSpec, cmrnorm: bool | None = None) -> tuple[ConvLocalNet, ConvnetSGD]:
    """The spec's net (``cmrnorm``: as ``ConvLocalConfig``'s) in channels_last, and its optimizer."""
    torch.manual_seed(spec.seed)
    model = ConvLocalNet(ConvLocalConfig(spec.arm, cmrnorm=cmrnorm), backend=spec.backend).to(
        memory_format=torch.channels_last)
    opt = ConvnetSGD(convnet_param_groups(model.weight_layers(), LAYER_PARAMS[spec.arm]))
    return model, opt


def train_run(spec: ConvLocalSpec, data: CifarImages, state_path: str | os.PathLike | None = None,
              stop_after: int | None = None, log=None) -> dict:
    """Train (resuming from ``state_path`` when it holds this spec's state); return the record so far.
    ``stop_after``: return after that many epochs in total (a test of resuming; the record is then partial)."""
    model, opt = build(spec)
    rec = {"epochs": [], "train_seconds": 0.0, "wall_seconds": 0.0, "lrn_probe": []}
    state_path = Path(state_path) if state_path is not None else None
    if state_path is not None and state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if saved.get("format") != STATE_FORMAT or saved.get("spec") != spec.to_dict():
            raise UsageError(f"state file {state_path} was made with other settings ({saved.get('spec')}); "
                             "move it away or run with the settings it was made with")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        rec = saved["record"]
    probe_x = view_crops(data.train[:PROBE_IMAGES], data.mean_crop, 2)
    probe_at = {0, spec.total_epochs // 2, spec.total_epochs}
    if spec.arm == "11pct" and not rec["lrn_probe"]:
        rec["lrn_probe"].append({"epoch": 0, "layers": lrn_probe(model, probe_x, spec)})
    val_idx = torch.nonzero(data.val_mask).flatten()
    fit_idx = torch.nonzero(~data.val_mask).flatten()
    all_idx = torch.arange(len(data.train_y))
    val_images, val_y = data.train[val_idx], data.train_y[val_idx]

    for epoch in range(len(rec["epochs"]), spec.total_epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        wall0 = time.perf_counter()
        phase = spec.phase_at(epoch)
        for group in opt.param_groups:
            group["lr_scale"] = LR_SCALE[phase]
        pool = fit_idx if phase == "train" else all_idx
        gen = torch.Generator().manual_seed(spec.seed * 100_003 + epoch)
        order = pool[torch.randperm(len(pool), generator=gen)]
        oy = torch.randint(0, 2 * BORDER + 1, (len(pool),), generator=gen)
        ox = torch.randint(0, 2 * BORDER + 1, (len(pool),), generator=gen)
        flip = torch.rand(len(pool), generator=gen) < 0.5
        wrong = torch.zeros((), dtype=torch.int64)
        loss_sum = torch.zeros((), dtype=torch.float64)
        t0 = time.perf_counter()
        for i in range(0, len(order), spec.batch_size):
            sl = slice(i, i + spec.batch_size)
            x = crops(data.train[order[sl]], data.mean_crop, oy[sl], ox[sl], flip[sl])
            y = data.train_y[order[sl]]
            logits, loss = sgd_step(model, opt, x, y, amp=spec.amp)
            wrong += (logits.argmax(1) != y).sum()
            loss_sum += loss * len(y)
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "phase": phase, "lr_scale": LR_SCALE[phase], "images": len(order),
               "train_err": int(wrong) / len(order), "train_loss": float(loss_sum) / len(order),
               "train_seconds": train_seconds, "images_per_s": len(order) / train_seconds}
        if not math.isfinite(row["train_loss"]):
            row["diverged"] = True
        if (epoch + 1) % spec.eval_every == 0 or (epoch + 1) in spec.phase_ends():
            row["val_err"] = evaluate(model, val_images, val_y, data.mean_crop, spec)
            row["test_err"] = evaluate(model, data.test, data.test_y, data.mean_crop, spec)
        if epoch + 1 == spec.total_epochs:
            row["test_err_multiview"] = evaluate(model, data.test, data.test_y, data.mean_crop, spec, views=tuple(range(10)))
        if spec.arm == "11pct" and (epoch + 1) in probe_at:
            rec["lrn_probe"].append({"epoch": epoch + 1, "layers": lrn_probe(model, probe_x, spec)})
        row["wall_seconds"] = time.perf_counter() - wall0
        rec["epochs"].append(row)
        rec["train_seconds"] += train_seconds
        rec["wall_seconds"] += row["wall_seconds"]
        if state_path is not None:
            state = {"format": STATE_FORMAT, "spec": spec.to_dict(), "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "record": rec}
            atomic_write(state_path, lambda f: torch.save(state, f))
        if log is not None:
            log(row)
        if row.get("diverged"):
            break
    return rec
