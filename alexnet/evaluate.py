"""Evaluate a finished training run's checkpoint: ``python -m alexnet.evaluate RUN_DIR [--ten-crop]``.

Rebuilds the run's validation data exactly as ``alexnet.train`` did (the same data flags and seed,
read from the run's ``summary.json``), loads its checkpoint, and reports validation loss and top-1 /
top-5 error with the centre crop or the paper's 10 crops (4 corners + centre, and their flips; the
softmax averaged). The model runs on one device (the first GPU, else the CPU) with any kernels
backend, eager by default: the weights do not depend on the backend that trained them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import kernels

from alexnet.augment import EvalTransform
from alexnet.checkpoint import load_checkpoint
from alexnet.data import make_loader
from alexnet.model import AlexNetConfig, build_model
from infra.errors import UsageError, run_cli


def evaluate_run(run_dir: Path, ten_crop: bool, kernels: str = "eager", device: torch.device | None = None) -> dict:
    """``{"val_loss", "val_top1_err", "val_top5_err"}`` of ``run_dir``'s checkpoint."""
    from alexnet import train

    run_dir = Path(run_dir)
    summary = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a folder; pass the --out folder of an alexnet.train run")
    if not summary.exists():
        raise UsageError(f"{summary} does not exist: {run_dir} is not a finished alexnet.train run")
    try:
        cfg = json.loads(summary.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{summary} is not an alexnet.train summary ({type(exc).__name__}: {exc})") from None
    state = load_checkpoint(run_dir, map_location="cpu")
    model_config = dict(state["model_config"], conv_widths=tuple(state["model_config"]["conv_widths"]), kernels=kernels)
    model = build_model(AlexNetConfig(**model_config))
    model.load_state_dict(state["model"])
    device = device or (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    model.to(device)
    data = train.build_run_data(cfg)
    loader = make_loader(data.val, cfg["batch_size"], shuffle=False, seed=cfg["seed"], num_workers=cfg["workers"],
                         drop_last=False)
    transform = EvalTransform(data.stats, crop_size=cfg["crop_size"], ten_crop=ten_crop,
                              normalize=cfg.get("input_scale", "unit") == "unit").to(device)
    return train.evaluate(model, loader, device, transform=transform, amp=cfg["amp"])


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexnet.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the --out directory of an alexnet.train run")
    parser.add_argument("--ten-crop", action="store_true", help="average the softmax over the paper's 10 crops")
    parser.add_argument("--kernels", default="eager", choices=kernels.BACKENDS)
    args = parser.parse_args(argv)

    def body():
        status = kernels.backend_status([args.kernels])[args.kernels]
        if status is not None:
            raise UsageError(f"--kernels {args.kernels} is unavailable here: {status}")
        result = evaluate_run(args.run_dir, args.ten_crop, args.kernels)
        crops = "10 crops" if args.ten_crop else "centre crop"
        print(f"{args.run_dir} ({crops}): val loss {result['val_loss']:.4f}, top-1 error "
              f"{100 * result['val_top1_err']:.2f}%, top-5 error {100 * result['val_top5_err']:.2f}%")
        print(json.dumps(result))
    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(cli())
