"""The paper's ablation study, one command: ``python -m bench.ablations --data PATH --epochs E --seeds S``.

What runs (each configuration differs from its baseline in one switch only, with the same seeds, data,
data order, schedule and budget):

* AlexNet (``alexnet.train.main``), per recipe and seed: ``baseline`` (paper: two towers, LRN, 3/2
  pooling, PCA lighting, dropout 0.5) and one run per switched-off feature (``VARIANTS``). Recipes:
  ``base`` = the flags given; ``warmup`` = the same plus ``--warmup-epochs W`` for every variant alike, so
  a variant that diverges under ``base`` is also measured where it trains ("harder to train" vs "less
  accurate once trained"). ``--lr-grid`` adds a recipe ``lr-best``: the baseline's best learning rate
  from the grid (first seed), applied to every variant alike.
* 10-crop test: the baseline checkpoints re-evaluated with the centre crop and with 10 crops.
* The paper's 4-layer CIFAR CNN (``alexnet.cifar_cnn``) in a compact loop on 32 px images: ReLU vs tanh
  (Figure 1: epochs and seconds to 25 % training error; each activation gets its fastest learning rate of
  ``--cifar-lrs``, as the paper chose its rates per net), and with vs without LRN (test error).

Runs live in ``runs/ablations/<study>/<recipe>/<variant>/seed<k>/``; a run whose ``summary.json`` (AlexNet)
or ``result.json`` (CIFAR CNN) exists is not redone, a run with only a checkpoint is resumed, and a run
directory made with other flags is an error (use another ``--study``). Results go to
``<study dir>/results.json``; the report (``bench.ablation_report``) to ``--report-dir``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Variants of AlexNet: name -> flags added to the baseline's (exactly one switch each).
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "no-lrn": ["--no-lrn"],
    "pool-2x2": ["--pool", "2/2"],
    "one-gpu-half": ["--layout", "one-gpu", "--width", "half"],
    "no-pca": ["--no-pca-lighting"],
    "no-dropout": ["--dropout", "0"],
}
RECIPES = ("base", "warmup", "lr-best")
# Run settings copied into the results (they describe the scale of what was measured).
SETTING_KEYS = ("data", "image_size", "crop_size", "epochs", "max_steps", "batch_size", "lr", "warmup_epochs", "amp",
                "train_images", "val_images", "num_classes", "layout", "width", "devices")
FIG1_THRESHOLD = 0.25


# ----------------------------------------------------------------------------------------------------
# small helpers


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _check_or_record_flags(run_dir: Path, flags: list[str]) -> None:
    """Refuse to reuse a run directory that was made with different flags (stale results)."""
    record = run_dir / "ablation_flags.json"
    if record.exists():
        old = json.loads(record.read_text())
        if old != flags:
            raise SystemExit(
                f"bench.ablations: error: {run_dir} was made with flags {shlex.join(old)!r}, now asked for "
                f"{shlex.join(flags)!r}; choose another --study or delete that directory")
    else:
        write_json_atomic(record, flags)


def chance_error(num_classes: int) -> float:
    return 1.0 - 1.0 / num_classes


def run_status(final_train_loss: float | None, final_val_err: float | None, diverged: bool, num_classes: int) -> str:
    """Status of a finished run; only 'ok' runs enter the deltas, the others are reported as such.

    'diverged': non-finite loss (training stopped). 'exploded': finite but final training loss above
    10 ln C (worse than guessing by far). 'at-chance': final val top-1 error >= 1 - 1.5/C (accuracy at most
    1.5x chance: collapsed, or not learning yet at this budget). Otherwise 'ok'.
    """
    if diverged or final_train_loss is None or not math.isfinite(final_train_loss):
        return "diverged"
    if final_train_loss > 10.0 * math.log(num_classes):
        return "exploded"
    if final_val_err is None or final_val_err >= 1.0 - 1.5 / num_classes:
        return "at-chance"
    return "ok"


def parse_seeds(spec: str) -> list[int]:
    """'3' -> [0, 1, 2]; '0,4,7' -> [0, 4, 7]."""
    try:
        if "," in spec:
            return [int(s) for s in spec.split(",") if s.strip()]
        n = int(spec)
    except ValueError:
        raise SystemExit(f"bench.ablations: error: --seeds must be a count or a comma list, got {spec!r}") from None
    if n < 1:
        raise SystemExit(f"bench.ablations: error: --seeds must be at least 1, got {n}")
    return list(range(n))


def parse_floats(spec: str, name: str) -> list[float]:
    try:
        vals = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"bench.ablations: error: {name} must be comma-separated numbers, got {spec!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise SystemExit(f"bench.ablations: error: {name} must be positive numbers, got {spec!r}")
    return vals


# ----------------------------------------------------------------------------------------------------
# AlexNet runs through alexnet.train


def common_train_flags(args) -> list[str]:
    """Flags every AlexNet run of the study shares (data, budget, schedule, precision)."""
    flags = ["--data", args.data, "--no-progress"]
    for name in ("epochs", "max_steps", "batch_size", "image_size", "crop_size", "lr", "synthetic_train",
                 "synthetic_val", "synthetic_classes", "limit_per_class", "workers"):
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    flags += ["--amp", args.amp, "--kernels", args.kernels]
    for extra in args.train_arg or []:
        flags += shlex.split(extra)
    return flags


def recipe_flags(recipe: str, args, best_lr: float | None = None) -> list[str]:
    if recipe == "base":
        return []
    if recipe == "warmup":
        return ["--warmup-epochs", str(args.warmup_epochs)]
    if recipe == "lr-best":
        if best_lr is None:
            raise ValueError("recipe lr-best needs the learning rate chosen on the grid")
        return ["--lr", str(best_lr)]  # argparse keeps the last --lr
    raise ValueError(f"unknown recipe {recipe!r}; choose from {RECIPES}")


def run_alexnet(run_dir: Path, flags: list[str], seed: int, log) -> dict:
    """One training run (skipped if finished, resumed if interrupted); return its summary."""
    from alexnet import train

    run_flags = [*flags, "--seed", str(seed), "--out", str(run_dir)]
    summary_path = run_dir / "summary.json"
    _check_or_record_flags(run_dir, run_flags)
    if summary_path.exists():
        log(f"  done already: {run_dir}")
        return json.loads(summary_path.read_text())
    if (run_dir / "checkpoint.pt").exists():
        run_flags = [*run_flags, "--resume", str(run_dir)]
        log(f"  resuming: {run_dir}")
    log(f"  python -m alexnet.train {shlex.join(run_flags)}")
    return train.main(train.build_parser().parse_args(run_flags))


def summarize_alexnet_run(summary: dict) -> dict:
    """The numbers the study uses from one run: final-epoch errors, the train/val gap, and its status."""
    hist = summary.get("history") or []
    last = hist[-1] if hist else {}
    num_classes = summary.get("config", {}).get("num_classes") or 10
    val1, train1 = last.get("val_top1_err"), last.get("train_top1_err")
    return {
        "status": run_status(last.get("train_loss"), val1, bool(summary.get("diverged")), num_classes),
        "val_top1_err": val1, "val_top5_err": last.get("val_top5_err"),
        "train_top1_err": train1, "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
        "gap_top1": None if val1 is None or train1 is None else val1 - train1,
        "epochs_run": len(hist), "steps": summary.get("steps"), "seconds": summary.get("seconds"),
        "diverged_at": summary.get("diverged_at"), "out_dir": summary.get("out_dir"),
        "num_classes": num_classes,
        "config": {k: summary.get("config", {}).get(k) for k in SETTING_KEYS},
        "history": [{k: h.get(k) for k in ("epoch", "train_loss", "train_top1_err", "val_top1_err", "val_top5_err",
                                            "lr", "seconds")} for h in hist],
    }


# ----------------------------------------------------------------------------------------------------
# 10-crop re-evaluation of finished checkpoints


def crops_for_run(run_dir: Path, log) -> dict:
    """Centre vs 10-crop errors of one finished run (cached in ``crops_eval.json``)."""
    path = run_dir / "crops_eval.json"
    if path.exists():
        return json.loads(path.read_text())
    log(f"  10-crop evaluation of {run_dir}")
    from alexnet.evaluate import evaluate_run

    result = {"centre": evaluate_run(run_dir, ten_crop=False), "ten_crop": evaluate_run(run_dir, ten_crop=True)}
    write_json_atomic(path, result)
    return result


# ----------------------------------------------------------------------------------------------------
# the paper's 4-layer CIFAR CNN: a compact training loop


_TENSOR_CACHE: dict = {}


def cifar_tensors(args) -> dict:
    """The CIFAR CNN's data as whole tensors on the device (built once per process): 32 px, normalised
    per channel with the training split's mean image and per-channel standard deviation."""
    key = (args.cifar_data, args.synthetic_classes, args.synthetic_train, args.synthetic_val, args.limit_per_class)
    if key in _TENSOR_CACHE:
        return _TENSOR_CACHE[key]
    from alexnet.data import build_data

    kwargs = dict(image_size=32, seed=0, synthetic_classes=args.synthetic_classes,
                  limit_per_class=args.limit_per_class)
    for name in ("synthetic_train", "synthetic_val"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    data = build_data(args.cifar_data, **kwargs)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")

    def stack(ds):
        if hasattr(ds, "images") and hasattr(ds, "labels"):  # alexnet.data.UInt8ImageDataset: whole arrays
            return torch.from_numpy(np.ascontiguousarray(ds.images)), torch.from_numpy(np.asarray(ds.labels, np.int64))
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        return torch.stack(list(xs)), torch.tensor(ys, dtype=torch.int64)

    xtr, ytr = stack(data.train)
    xva, yva = stack(data.val)
    mean = data.stats.mean.float()
    std = (xtr.float() - mean).transpose(0, 1).reshape(3, -1).std(dim=1).clamp_min(1e-3).view(3, 1, 1)
    out = {"train_x": xtr.to(device), "train_y": ytr.to(device), "val_x": xva.to(device), "val_y": yva.to(device),
           "mean": mean.to(device), "std": std.to(device), "num_classes": len(data.classes), "device": device,
           "train_images": len(ytr), "val_images": len(yva), "classes": list(data.classes)}
    _TENSOR_CACHE[key] = out
    return out


def train_cifar_cnn(tensors: dict, *, activation: str, lrn: bool, seed: int, epochs: int, lr: float,
                    batch_size: int = 128, momentum: float = 0.9, weight_decay: float = 0.0, flip: bool = False,
                    max_steps: int | None = None, points_per_epoch: int = 4, amp: str = "off") -> dict:
    """Train the 4-layer CNN; return its training-error curve and final errors.

    The curve has ``points_per_epoch`` points per epoch: (epochs done, running training top-1 error of the
    batches since the previous point, training seconds so far). Seconds count training steps only
    (synchronised), not evaluation. Same ``seed`` -> same initial weights and batch order for both
    activations (their parameter shapes are identical).
    """
    from alexnet.cifar_cnn import CifarCNN

    device = tensors["device"]
    torch.manual_seed(seed)
    model = CifarCNN(num_classes=tensors["num_classes"], activation=activation, lrn=lrn).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = tensors["train_images"]
    steps_per_epoch = max(n // batch_size, 1)
    chunk = max(steps_per_epoch // points_per_epoch, 1)
    curve, test_curve, step, train_seconds, diverged = [], [], 0, 0.0, False
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if amp == "bf16" and device.type == "cuda" else None)

    def normalise(x):
        return (x.float() - tensors["mean"]) / tensors["std"]

    for epoch in range(epochs):
        if max_steps is not None and step >= max_steps:
            break
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(n, generator=gen).to(device)
        flips = torch.rand(n, generator=gen).to(device) < 0.5
        model.train()
        wrong, seen = torch.zeros((), device=device), 0
        _sync(device)
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            if max_steps is not None and step >= max_steps:
                break
            idx = order[i * batch_size:(i + 1) * batch_size]
            x, y = normalise(tensors["train_x"][idx]), tensors["train_y"][idx]
            if flip:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(-1), x)
            with autocast if autocast is not None else _null():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += (logits.argmax(1) != y).sum()
            seen += y.numel()
            step += 1
            if (i + 1) % chunk == 0 or i + 1 == steps_per_epoch or (max_steps is not None and step >= max_steps):
                _sync(device)
                train_seconds += time.perf_counter() - t0
                err, loss_v = float(wrong) / seen, loss.item()
                if not math.isfinite(loss_v):
                    diverged = True
                    break
                curve.append({"epoch": epoch + (i + 1) / steps_per_epoch, "train_top1_err": err,
                              "train_loss": loss_v, "seconds": train_seconds, "step": step})
                wrong, seen = torch.zeros((), device=device), 0
                t0 = time.perf_counter()
        if diverged:
            break
        test_curve.append({"epoch": epoch + 1, **_cifar_eval(model, tensors, normalise)})

    return {"curve": curve, "test_curve": test_curve, "diverged": diverged, "steps": step,
            "train_seconds": train_seconds, "lr": lr, "activation": activation, "lrn": lrn, "seed": seed,
            "weight_decay": weight_decay, "flip": flip, "batch_size": batch_size, "epochs": epochs,
            "num_classes": tensors["num_classes"]}


@torch.no_grad()
def _cifar_eval(model, tensors, normalise, batch_size: int = 1000) -> dict:
    model.eval()
    wrong, loss, n = 0, 0.0, tensors["val_y"].numel()
    for i in range(0, n, batch_size):
        x, y = normalise(tensors["val_x"][i:i + batch_size]), tensors["val_y"][i:i + batch_size]
        logits = model(x).float()
        wrong += int((logits.argmax(1) != y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    model.train()
    return {"test_top1_err": wrong / max(n, 1), "test_loss": loss / max(n, 1)}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def summarize_cifar_run(result: dict, threshold: float = FIG1_THRESHOLD) -> dict:
    """Epochs and seconds to ``threshold`` training error (interpolated, from (0, chance) at the start),
    final training and test error, and the run's status."""
    from bench.ablations.stats import epochs_to_threshold

    curve, tests = result["curve"], result["test_curve"]
    chance = chance_error(result["num_classes"])
    last_loss = curve[-1]["train_loss"] if curve else None
    final_test = tests[-1]["test_top1_err"] if tests else None
    return {
        "status": run_status(last_loss, final_test, result["diverged"], result["num_classes"]),
        "epochs_to_threshold": epochs_to_threshold([(p["epoch"], p["train_top1_err"]) for p in curve], threshold,
                                                   start=(0.0, chance)),
        "seconds_to_threshold": epochs_to_threshold([(p["seconds"], p["train_top1_err"]) for p in curve], threshold,
                                                    start=(0.0, chance)),
        "final_train_err": curve[-1]["train_top1_err"] if curve else None,
        "test_top1_err": final_test, "lr": result["lr"], "threshold": threshold,
    }


def run_cifar(run_dir: Path, spec: dict, tensors_fn, log) -> dict:
    """One CIFAR-CNN run, cached in ``result.json`` (skipped when present)."""
    path = run_dir / "result.json"
    _check_or_record_flags(run_dir, [f"{k}={v}" for k, v in sorted(spec.items())])
    if path.exists():
        log(f"  done already: {run_dir}")
        return json.loads(path.read_text())
    log(f"  CIFAR CNN {spec} -> {run_dir}")
    result = train_cifar_cnn(tensors_fn(), **spec)
    write_json_atomic(path, result)
    return result


def cifar_study(args, study_dir: Path, seeds: list[int], log) -> dict:
    """Figure 1 (ReLU vs tanh, per-activation best lr of the grid) and LRN on/off on the CIFAR CNN."""
    lrs = parse_floats(args.cifar_lrs, "--cifar-lrs")
    common = dict(epochs=args.cifar_epochs, batch_size=args.cifar_batch_size, max_steps=args.cifar_max_steps,
                  points_per_epoch=args.cifar_points_per_epoch, amp=args.amp)
    tensors_fn = lambda: cifar_tensors(args)  # noqa: E731  (data are loaded only if some run is not cached)
    fig1: dict = {}
    for act in ("relu", "tanh"):
        grid = {}
        for lr in lrs:
            runs = {}
            for seed in seeds:
                spec = dict(activation=act, lrn=False, seed=seed, lr=lr, **common)
                res = run_cifar(study_dir / "cifar" / "fig1" / f"{act}-lr{lr:g}" / f"seed{seed}", spec, tensors_fn, log)
                runs[str(seed)] = {**summarize_cifar_run(res, args.cifar_threshold), "curve": res["curve"],
                                   "test_curve": res["test_curve"]}
            grid[f"{lr:g}"] = runs
        fig1[act] = {"grid": grid, "best_lr": _fastest_lr(grid)}
        fig1[act]["runs"] = grid[fig1[act]["best_lr"]]

    lrn_lr = args.cifar_lrn_lr if args.cifar_lrn_lr is not None else float(fig1["relu"]["best_lr"])
    lrn_runs: dict = {}
    for lrn in (True, False):
        name = "lrn" if lrn else "no-lrn"
        runs = {}
        for seed in seeds:
            spec = dict(activation="relu", lrn=lrn, seed=seed, lr=lrn_lr, weight_decay=5e-4, flip=True, **common)
            res = run_cifar(study_dir / "cifar" / "lrn" / f"{name}-lr{lrn_lr:g}" / f"seed{seed}", spec, tensors_fn, log)
            runs[str(seed)] = {**summarize_cifar_run(res, args.cifar_threshold), "test_curve": res["test_curve"]}
        lrn_runs[name] = runs
    info = {}
    if _TENSOR_CACHE:
        t = next(iter(_TENSOR_CACHE.values()))
        info = {"train_images": t["train_images"], "val_images": t["val_images"], "num_classes": t["num_classes"]}
    return {"fig1": fig1, "lrn": {"lr": lrn_lr, "runs": lrn_runs}, "lrs": [f"{lr:g}" for lr in lrs],
            "epochs": args.cifar_epochs, "max_steps": args.cifar_max_steps, "data": args.cifar_data,
            "threshold": args.cifar_threshold, "batch_size": args.cifar_batch_size, **info}


def _fastest_lr(grid: dict) -> str:
    """The lr whose runs reach the threshold soonest on average (never = infinity); ties and 'never
    anywhere' broken by the lowest mean final training error."""
    def key(lr):
        runs = list(grid[lr].values())
        ep = [r["epochs_to_threshold"] if r["epochs_to_threshold"] is not None and r["status"] == "ok" else math.inf
              for r in runs]
        fin = [r["final_train_err"] if r["final_train_err"] is not None else math.inf for r in runs]
        return (sum(ep) / len(ep), sum(fin) / len(fin))
    return min(grid, key=key)


# ----------------------------------------------------------------------------------------------------
# the study


def alexnet_study(args, study_dir: Path, seeds: list[int], log) -> tuple[dict, dict, dict]:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench.ablations: error: unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    if "baseline" not in variants:
        variants.insert(0, "baseline")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in recipes if r not in ("base", "warmup")]
    if bad:
        raise SystemExit(f"bench.ablations: error: unknown recipe(s) {bad}; choose from base, warmup "
                         "(lr-best is added by --lr-grid)")
    common = common_train_flags(args)
    runs: dict = {}
    extra: dict = {}
    best_lr = None
    if args.lr_grid:
        grid = {}
        for lr in parse_floats(args.lr_grid, "--lr-grid"):
            s = run_alexnet(study_dir / "lr-grid" / f"lr{lr:g}" / f"seed{seeds[0]}", [*common, "--lr", str(lr)],
                            seeds[0], log)
            grid[f"{lr:g}"] = summarize_alexnet_run(s)
        ok = {lr: r for lr, r in grid.items() if r["status"] == "ok"}
        best_lr = float(min(ok, key=lambda lr: ok[lr]["val_top1_err"])) if ok else None
        extra["lr_grid"] = {"seed": seeds[0], "runs": grid, "best_lr": best_lr}
        if best_lr is not None:
            recipes.append("lr-best")
        else:
            log("  lr grid: no learning rate trained the baseline; recipe lr-best skipped")
    for recipe in recipes:
        flags = [*common, *recipe_flags(recipe, args, best_lr)]
        runs[recipe] = {}
        for variant in variants:
            runs[recipe][variant] = {}
            for seed in seeds:
                log(f"[{recipe}] {variant} seed {seed}")
                s = run_alexnet(study_dir / recipe / variant / f"seed{seed}", [*flags, *VARIANTS[variant]], seed, log)
                runs[recipe][variant][str(seed)] = summarize_alexnet_run(s)
    crops: dict = {}
    if not args.no_ten_crop:
        for recipe in recipes:
            crops[recipe] = {}
            for seed in seeds:
                r = runs[recipe]["baseline"][str(seed)]
                if r["status"] == "diverged" or not r["epochs_run"]:
                    crops[recipe][str(seed)] = {"status": r["status"]}
                    continue
                res = crops_for_run(study_dir / recipe / "baseline" / f"seed{seed}", log)
                crops[recipe][str(seed)] = {"status": r["status"], **res}
    return runs, crops, extra


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ablations", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="synthetic", help="synthetic | cifar10 | ImageFolder dir or .tar.gz (as alexnet.train)")
    p.add_argument("--epochs", type=int, default=None, help="AlexNet epochs per run (default: alexnet.train's)")
    p.add_argument("--seeds", default="3", help="number of seeds (0..S-1) or a comma list")
    p.add_argument("--study", default=None, help="study name (default: <data>-e<epochs>); runs/ablations/<study>")
    p.add_argument("--runs-dir", default="runs/ablations", help="where study directories live")
    p.add_argument("--report-dir", default="reports", help="where the Markdown report and plots go")
    p.add_argument("--variants", default=",".join(VARIANTS), help="AlexNet variants to run (baseline always runs)")
    p.add_argument("--recipes", default="base,warmup", help="base (flags as given) and/or warmup (+ --warmup-epochs)")
    p.add_argument("--warmup-epochs", type=float, default=2.0, help="warm-up length of the warmup recipe")
    p.add_argument("--lr-grid", default=None, help="comma list of lrs: adds recipe lr-best (baseline's best lr, first seed)")
    p.add_argument("--no-alexnet", action="store_true", help="skip the AlexNet ablations")
    p.add_argument("--no-cifar", action="store_true", help="skip the 4-layer CIFAR CNN experiments")
    p.add_argument("--no-ten-crop", action="store_true", help="skip the centre vs 10-crop evaluation")
    g = p.add_argument_group("shared with alexnet.train (passed to every AlexNet run; None = its default)")
    for name, typ in (("max_steps", int), ("batch_size", int), ("image_size", int), ("crop_size", int), ("lr", float),
                      ("synthetic_train", int), ("synthetic_val", int), ("limit_per_class", int), ("workers", int)):
        g.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None)
    g.add_argument("--synthetic-classes", type=int, default=10)
    g.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    g.add_argument("--kernels", default="eager")
    g.add_argument("--train-arg", action="append", help="extra alexnet.train flags for every run (repeatable)")
    g = p.add_argument_group("4-layer CIFAR CNN")
    g.add_argument("--cifar-data", default=None, help="its data (default: --data), loaded at 32 px")
    g.add_argument("--cifar-epochs", type=int, default=30)
    g.add_argument("--cifar-lrs", default="0.005,0.01,0.02,0.04",
                   help="lr grid; each activation uses its fastest to the threshold (the paper tuned each net)")
    g.add_argument("--cifar-lrn-lr", type=float, default=None, help="lr of the LRN on/off runs (default: ReLU's best)")
    g.add_argument("--cifar-batch-size", type=int, default=128)
    g.add_argument("--cifar-max-steps", type=int, default=None)
    g.add_argument("--cifar-points-per-epoch", type=int, default=4)
    g.add_argument("--cifar-threshold", type=float, default=FIG1_THRESHOLD)
    return p


def main(args: argparse.Namespace) -> dict:
    """Run (or resume) the whole study; write results.json and the report; return the results."""
    from bench import ablation_report

    seeds = parse_seeds(args.seeds)
    if args.cifar_data is None:
        args.cifar_data = args.data
    name = args.study or f"{Path(str(args.data)).name.replace('.tar.gz', '')}-e{args.epochs if args.epochs else 'default'}"
    study_dir = Path(args.runs_dir) / name
    study_dir.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    start = time.perf_counter()
    results: dict = {"study": name, "study_dir": str(study_dir), "seeds": seeds,
                     "command": shlex.join([sys.executable, "-m", "bench.ablations", *sys.argv[1:]]),
                     "settings": {k: v for k, v in vars(args).items()}, "machine": _machine()}
    if not args.no_alexnet:
        runs, crops, extra = alexnet_study(args, study_dir, seeds, log)
        results.update(alexnet=runs, crops=crops, **extra)
    if not args.no_cifar:
        results["cifar"] = cifar_study(args, study_dir, seeds, log)
    results["seconds"] = time.perf_counter() - start
    results["claims"] = ablation_report.claims(results)
    write_json_atomic(study_dir / "results.json", results)
    paths = ablation_report.write_report(results, Path(args.report_dir))
    log("wrote " + ", ".join(str(p) for p in [study_dir / "results.json", *paths]))
    return results


def _machine() -> dict:
    info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cli(argv: list[str] | None = None) -> int:
    main(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
