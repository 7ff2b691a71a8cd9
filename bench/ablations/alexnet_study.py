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

The paper's CIFAR-10 claims on its four-layer CNN (Figure 1, LRN) are a separate, CPU-sized study:
``python -m bench.ablations.cifar``.

Runs live in ``runs/ablations/<study>/<recipe>/<variant>/seed<k>/``; a run whose ``summary.json`` (AlexNet)
exists is not redone, a run with only a checkpoint is resumed, and a run
directory made with other flags is an error (use another ``--study``). Results go to
``<study dir>/results.json``; the report (``bench.ablations.alexnet_report``) to ``--report-dir``.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path


from bench.ablations import alexnet_report
from infra.atomic_io import write_json_atomic
from infra.errors import UsageError, parse_and_run
from infra.machine import machine_info

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


# ----------------------------------------------------------------------------------------------------
# small helpers


def _check_or_record_flags(run_dir: Path, flags: list[str]) -> None:
    """Refuse to reuse a run directory that was made with different flags (stale results)."""
    record = run_dir / "ablation_flags.json"
    if record.exists():
        old = json.loads(record.read_text())
        if old != flags:
            raise UsageError(f"{run_dir} was made with flags {shlex.join(old)!r}, now asked for "
                f"{shlex.join(flags)!r}; choose another --study or delete that directory")
    else:
        write_json_atomic(record, flags)


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
        raise UsageError(f"--seeds must be a count or a comma list, got {spec!r}") from None
    if n < 1:
        raise UsageError(f"--seeds must be at least 1, got {n}")
    return list(range(n))


def parse_floats(spec: str, name: str) -> list[float]:
    try:
        vals = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {spec!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise UsageError(f"{name} must be positive numbers, got {spec!r}")
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
# the study


def alexnet_study(args, study_dir: Path, seeds: list[int], log) -> tuple[dict, dict, dict]:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    if "baseline" not in variants:
        variants.insert(0, "baseline")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in recipes if r not in ("base", "warmup")]
    if bad:
        raise UsageError(f"unknown recipe(s) {bad}; choose from base, warmup "
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
    p.add_argument("--no-ten-crop", action="store_true", help="skip the centre vs 10-crop evaluation")
    g = p.add_argument_group("shared with alexnet.train (passed to every AlexNet run; None = its default)")
    for name, typ in (("max_steps", int), ("batch_size", int), ("image_size", int), ("crop_size", int), ("lr", float),
                      ("synthetic_train", int), ("synthetic_val", int), ("limit_per_class", int), ("workers", int)):
        g.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None)
    g.add_argument("--synthetic-classes", type=int, default=10)
    g.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    g.add_argument("--kernels", default="eager")
    g.add_argument("--train-arg", action="append", help="extra alexnet.train flags for every run (repeatable)")
    return p


def main(args: argparse.Namespace) -> dict:
    """Run (or resume) the whole study; write results.json and the report; return the results."""
    seeds = parse_seeds(args.seeds)
    name = args.study or f"{Path(str(args.data)).name.replace('.tar.gz', '')}-e{args.epochs if args.epochs else 'default'}"
    study_dir = Path(args.runs_dir) / name
    study_dir.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    start = time.perf_counter()
    results: dict = {"study": name, "study_dir": str(study_dir), "seeds": seeds,
                     "command": shlex.join([sys.executable, "-m", "bench.ablations", *sys.argv[1:]]),
                     "settings": {k: v for k, v in vars(args).items()}, "machine": machine_info()}
    runs, crops, extra = alexnet_study(args, study_dir, seeds, log)
    results.update(alexnet=runs, crops=crops, **extra)
    results["seconds"] = time.perf_counter() - start
    results["claims"] = [row.to_dict() for row in alexnet_report.claims(results)]
    write_json_atomic(study_dir / "results.json", results)
    paths = alexnet_report.write_report(results, Path(args.report_dir))
    log("wrote " + ", ".join(str(p) for p in [study_dir / "results.json", *paths]))
    return results


def cli(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
