"""The command line of ``python -m alexnet.train``: the parser, the defaults that depend on the machine
(filled by ``resolve_config``, which also checks the flags), and what a resolved config decides: the
model's config, the run's data, and the typed ``TrainOptions`` the training loop reads."""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch

import kernels
from alexnet.data import DataBundle, build_data
from alexnet.model import MIN_INPUT_SIZE, PRESETS, AlexNetConfig
from infra.errors import UsageError, check_output_folder

# Defaults that depend on the machine (None in the parser means "resolve here").
GPU_DEFAULTS = dict(image_size=256, crop_size=227, batch_size=128, workers=min(8, os.cpu_count() or 1))
CPU_DEFAULTS = dict(image_size=76, crop_size=67, batch_size=32, workers=0, synthetic_train=384, synthetic_val=128)
EPOCHS_DEFAULT = {"synthetic": {"gpu": 10, "cpu": 3}, "real": {"gpu": 90, "cpu": 3}}


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
